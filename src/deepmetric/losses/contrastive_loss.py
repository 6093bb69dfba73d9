"""``ContrastiveLoss``: pull positive pairs within a margin, push negatives beyond one."""

from __future__ import annotations

from typing import Any, Literal

from .._registry import LOSSES
from .._types import LossDict, PairIndices, Tensor
from ..functional import pair_losses as F
from ..reducers import AvgNonZeroReducer, BaseReducer
from .generic_pair_loss import GenericPairLoss


@LOSSES.register
class ContrastiveLoss(GenericPairLoss):
    """Contrastive loss over positive and negative pairs.

    Hadsell, Chopra, LeCun, "Dimensionality Reduction by Learning an Invariant Mapping",
    CVPR 2006, http://yann.lecun.com/exdb/publis/pdf/hadsell-chopra-lecun-06.pdf.

    For distances ``d``: ``pos_loss = [d_ap - pos_margin]_+``, ``neg_loss = [neg_margin - d_an]_+``
    (for similarities ``s``: ``[pos_margin - s_ap]_+`` and ``[s_an - neg_margin]_+``).
    Each sub-loss is reduced on its own (default :class:`AvgNonZeroReducer`) and the two are summed.

    Args:
        pos_margin: positives closer than this cost nothing.
        neg_margin: negatives farther than this cost nothing.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default ``LpDistance()``),
            ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("pos_margin", "neg_margin")

    def __init__(self, pos_margin: float = 0, neg_margin: float = 1, **kwargs: Any) -> None:
        super().__init__(mat_based_loss=False, **kwargs)
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin

    def get_default_reducer(self) -> BaseReducer:
        return AvgNonZeroReducer()

    def _sub_loss_names(self) -> list[str]:
        return ["pos_loss", "neg_loss"]

    def _compute_loss(
        self, pos_pair_dist: Tensor, neg_pair_dist: Tensor, indices_tuple: PairIndices
    ) -> LossDict:
        a1, p, a2, n = indices_tuple
        pos_loss = self.get_per_pair_loss(pos_pair_dist, "pos") if len(pos_pair_dist) else 0
        neg_loss = self.get_per_pair_loss(neg_pair_dist, "neg") if len(neg_pair_dist) else 0
        return {
            "pos_loss": {"losses": pos_loss, "indices": (a1, p), "reduction_type": "pos_pair"},
            "neg_loss": {"losses": neg_loss, "indices": (a2, n), "reduction_type": "neg_pair"},
        }

    def get_per_pair_loss(self, pair_dists: Tensor, pos_or_neg: Literal["pos", "neg"]) -> Tensor:
        if pos_or_neg == "pos":
            return self.pos_calc(pair_dists, self.pos_margin)
        return self.neg_calc(pair_dists, self.neg_margin)

    def pos_calc(self, pos_pair_dist: Tensor, margin: float) -> Tensor:
        return F.contrastive_pos_terms(
            pos_pair_dist, pos_margin=margin, is_inverted=self.distance.is_inverted
        )

    def neg_calc(self, neg_pair_dist: Tensor, margin: float) -> Tensor:
        return F.contrastive_neg_terms(
            neg_pair_dist, neg_margin=margin, is_inverted=self.distance.is_inverted
        )
