"""``SignalToNoiseRatioContrastiveLoss``: the contrastive loss on SNR distances."""

from __future__ import annotations

from typing import Any

from .. import _validation as V
from .._registry import LOSSES
from ..distances import BaseDistance, SNRDistance
from .contrastive_loss import ContrastiveLoss


@LOSSES.register
class SignalToNoiseRatioContrastiveLoss(ContrastiveLoss):
    """Contrastive loss with the signal-to-noise-ratio distance ``Var(x_i - x_j) / Var(x_i)``.

    Yuan et al., "Signal-to-Noise Ratio: A Robust Distance Metric for Deep Metric Learning",
    CVPR 2019, https://arxiv.org/abs/1904.02616 (eq. 7)::

        pos_loss = [d_ap - pos_margin]_+        neg_loss = [neg_margin - d_an]_+

    Each sub-loss is reduced on its own (default :class:`AvgNonZeroReducer`) and the two summed.
    The paper's regulariser on the embedding mean is not built in (pass an
    ``embedding_regularizer``).

    Args:
        pos_margin: positive pairs below this SNR distance cost nothing.
        neg_margin: negative pairs above this SNR distance cost nothing.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (must be an ``SNRDistance``, the
            default), ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    def __init__(self, pos_margin: float = 0, neg_margin: float = 1, **kwargs: Any) -> None:
        super().__init__(pos_margin=pos_margin, neg_margin=neg_margin, **kwargs)

    def get_default_distance(self) -> BaseDistance:
        return SNRDistance()

    def check_distance(self, distance: BaseDistance) -> None:
        if not isinstance(distance, SNRDistance):
            V.fail(type(self).__name__, "`distance` to be an SNRDistance", repr(distance))
