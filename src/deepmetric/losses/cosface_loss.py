"""``CosFaceLoss``: softmax over learnable class vectors with an additive cosine margin."""

from __future__ import annotations

from typing import Any

import torch

from .._registry import LOSSES
from .._types import Tensor
from ..functional import margin_softmax as F
from .large_margin_softmax_loss import LargeMarginSoftmaxLoss


@LOSSES.register
class CosFaceLoss(LargeMarginSoftmaxLoss):
    """CosFace (large margin cosine loss): subtract ``margin`` from the target cosine.

    Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018,
    https://arxiv.org/abs/1801.09414 (eq. 4)::

        logits_ij = scale * (cos(theta_ij) - margin * 1[j == y_i])
        L_i       = w_i^miner * CE(logits_i, y_i)

    ``margin`` is in cosine units (not an angle). As in PML, ``margin`` and ``scale`` are
    keyword-only.

    **The class vectors ``W`` (``Tensor[embedding_size, num_classes]``, float32, initialised by
    ``weight_init_func``, default ``torch.nn.init.normal_``) are learnable parameters of the
    loss: give them to an optimizer** (``torch.optim.SGD(loss_fn.parameters(), ...)``, or add
    them to the model's optimizer), or they never train. ``loss_fn.has_trainable_parameters()``
    lets a trainer check this.

    Everything else (miner weights, ``get_logits`` = ``scale * cos``, weight regularizer on
    ``W.t()``, float32 compute for half inputs, no ``ref_emb``) is as in
    :class:`LargeMarginSoftmaxLoss`.

    Args:
        num_classes: ``C``; labels must lie in ``[0, C)``.
        embedding_size: ``D``; embeddings must have ``D`` columns.
        margin: subtracted from the target cosine.
        scale: multiplies every logit (the paper's ``s``).
        **kwargs: ``weight_regularizer``, ``weight_reg_weight``, ``weight_init_func``,
            ``collect_stats`` (stat ``avg_angle``, degrees), ``reducer`` (default MeanReducer),
            ``distance`` (CosineSimilarity only), ``embedding_regularizer``,
            ``embedding_reg_weight``.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        *,
        margin: float = 0.35,
        scale: float = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, embedding_size, margin=margin, scale=scale, **kwargs)

    def init_margin(self) -> None:
        """The margin is used as given."""

    def modify_cosine_of_target_classes(self, cosine_of_target_classes: Tensor) -> Tensor:
        if self.collect_stats:
            with torch.no_grad():
                self.get_angles(cosine_of_target_classes)
        return F.cosface_target(cosine_of_target_classes, margin=self.margin)

    def scale_logits(self, logits: Tensor, *_: Any) -> Tensor:
        return logits * self.scale

    def _constant_logit_scale(self) -> float | None:
        # a subclass that overrides scale_logits takes the general path
        return self.scale if type(self).scale_logits is CosFaceLoss.scale_logits else None
