"""``ArcFaceLoss``: softmax over learnable class vectors with an additive angular margin."""

from __future__ import annotations

import math
from typing import Any

import torch

from .._registry import LOSSES
from .._types import Tensor
from ..functional import margin_softmax as F
from .large_margin_softmax_loss import LargeMarginSoftmaxLoss


@LOSSES.register
class ArcFaceLoss(LargeMarginSoftmaxLoss):
    """ArcFace: additive angular margin on the target class.

    Deng, Guo, Xue, Zafeiriou, "ArcFace: Additive Angular Margin Loss for Deep Face Recognition",
    CVPR 2019, https://arxiv.org/abs/1801.07698 (eq. 3). With ``theta_ij`` the angle between
    embedding ``x_i`` and class vector ``w_j`` (columns of ``W``) and ``m`` the margin::

        psi(theta) = cos(theta + m)           if theta <= pi - m
                     cos(theta) - m sin(m)    otherwise (keeps psi decreasing)
        logits_ij  = scale * (psi(theta_ij) if j == y_i else cos(theta_ij))
        L_i        = w_i^miner * CE(logits_i, y_i)

    **``margin`` is given in degrees** (28.6 degrees ~ 0.5 rad, the paper's value) and stored in
    radians: after construction ``loss_fn.margin == math.radians(28.6)``.

    Numerics: ``cos(theta + m)`` is computed as ``cos cos(m) - sin(theta) sin(m)`` with
    ``sin(theta) = sqrt(max(1 - cos^2, eps))`` on the clamped cosine, so embeddings that coincide
    with (or oppose) their class vector give finite gradients (PML 2.9.0 returns NaN there).

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
        margin: the additive angular margin in **degrees**.
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
        margin: float = 28.6,
        scale: float = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, embedding_size, margin=margin, scale=scale, **kwargs)

    def init_margin(self) -> None:
        """Degrees -> radians."""
        self.margin = math.radians(self.margin)

    def modify_cosine_of_target_classes(self, cosine_of_target_classes: Tensor) -> Tensor:
        if self.collect_stats:
            with torch.no_grad():
                self.get_angles(cosine_of_target_classes)
        return F.arcface_target(cosine_of_target_classes, margin=self.margin)

    def scale_logits(self, logits: Tensor, *_: Any) -> Tensor:
        return logits * self.scale

    def _constant_logit_scale(self) -> float | None:
        # a subclass that overrides scale_logits takes the general path
        return self.scale if type(self).scale_logits is ArcFaceLoss.scale_logits else None
