"""``SphereFaceLoss``: L-Softmax with normalised class vectors (angular softmax, A-Softmax)."""

from __future__ import annotations

from typing import Any

from .._registry import LOSSES
from .._types import Tensor
from .large_margin_softmax_loss import LargeMarginSoftmaxLoss


@LOSSES.register
class SphereFaceLoss(LargeMarginSoftmaxLoss):
    """SphereFace (A-Softmax): the L-Softmax margin with the class-vector norms left out.

    Liu et al., "SphereFace: Deep Hypersphere Embedding for Face Recognition", CVPR 2017,
    https://arxiv.org/abs/1704.08063 (eq. 7)::

        psi(theta) = (-1)^k cos(m theta) - 2k,   k = floor(m theta / pi)
        logits_ij  = ||x_i|| * scale * (psi(theta_ij) if j == y_i else cos(theta_ij))
        L_i        = w_i^miner * CE(logits_i, y_i)

    ``margin`` is the integer multiplier ``m`` (truncated to ``int``).

    **The class vectors ``W`` (``Tensor[embedding_size, num_classes]``, float32, initialised by
    ``weight_init_func``, default ``torch.nn.init.normal_``) are learnable parameters of the
    loss: give them to an optimizer** (``torch.optim.SGD(loss_fn.parameters(), ...)``, or add
    them to the model's optimizer), or they never train. ``loss_fn.has_trainable_parameters()``
    lets a trainer check this.

    Everything else (miner weights, weight regularizer on ``W.t()``, float32 compute for half
    inputs, no ``ref_emb``) is as in :class:`LargeMarginSoftmaxLoss`; ``get_logits`` gives
    ``||x_i|| * scale * cos``.

    Args:
        num_classes: ``C``; labels must lie in ``[0, C)``.
        embedding_size: ``D``; embeddings must have ``D`` columns.
        margin: the angular multiplier ``m >= 1``.
        scale: multiplies every logit.
        **kwargs: as for :class:`LargeMarginSoftmaxLoss`.
    """

    def scale_logits(self, logits: Tensor, embeddings: Tensor, *_: Any) -> Tensor:
        x_norms = self.distance.get_norm(embeddings.to(logits.dtype))  # [N]
        return logits * (x_norms * self.scale)[:, None]
