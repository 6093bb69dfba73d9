"""``LiftedStructureLoss``: each positive pair against the negatives of both of its members."""

from __future__ import annotations

from typing import Any

from .._registry import LOSSES
from .._types import LossDict, Tensor
from ..functional import lse_pair_losses as F
from ._positive_pair_loss import PositivePairLoss


@LOSSES.register
class LiftedStructureLoss(PositivePairLoss):
    """Lifted structured embedding loss, one term per positive pair.

    Oh Song et al., "Deep Metric Learning via Lifted Structured Feature Embedding", CVPR 2016,
    https://arxiv.org/abs/1511.06452 (eq. 4). For distances ``d`` and the positive pair
    ``(i, j)``::

        J_ij = LSE_{(k, l) negative, k in {i, j}}(neg_margin - d_kl) + d_ij - pos_margin
        L_ij = [J_ij]_+^2 / 2

    (``s_kl - neg_margin`` and ``pos_margin - s_ij`` for similarities). As in
    pytorch-metric-learning, the negatives are the negative pairs whose anchor index is ``i`` or
    ``j``. Zero loss without a positive or without a negative pair. Terms are ``"pos_pair"``,
    reduced by default with :class:`MeanReducer`. O(N M) time and memory.

    Args:
        neg_margin: negatives should be farther than this.
        pos_margin: positives should be closer than this.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default ``LpDistance()``),
            ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("pos_margin", "neg_margin")

    def __init__(self, neg_margin: float = 1, pos_margin: float = 0, **kwargs: Any) -> None:
        super().__init__(mat_based_loss=False, **kwargs)
        self.neg_margin = neg_margin
        self.pos_margin = pos_margin

    def _pair_loss(self, mat: Tensor, a1: Tensor, p: Tensor, negatives: Tensor) -> LossDict:
        losses = F.lifted_structure_terms(
            mat,
            a1,
            p,
            negatives,
            pos_margin=self.pos_margin,
            neg_margin=self.neg_margin,
            is_inverted=self.distance.is_inverted,
        )
        return {"loss": {"losses": losses, "indices": (a1, p), "reduction_type": "pos_pair"}}
