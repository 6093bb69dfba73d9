"""``PairMarginMiner``: positive pairs too far apart and negative pairs too close."""

from __future__ import annotations

from typing import Any

import torch

from .._registry import MINERS
from .._types import PairIndices, Tensor
from ..functional import mining as F
from ..functional import tuples as T
from .base_tuple_miner import BaseTupleMiner


@MINERS.register
class PairMarginMiner(BaseTupleMiner):
    """Positive pairs with ``d > pos_margin`` and negative pairs with ``d < neg_margin``
    (``s < pos_margin`` and ``s > neg_margin`` for similarities): the pairs a contrastive loss
    with these margins would penalise.

    Hadsell et al., "Dimensionality Reduction by Learning an Invariant Mapping", CVPR 2006
    (the contrastive margins).

    Args:
        pos_margin, neg_margin: in the distance's units.
        **kwargs: ``distance`` (default ``LpDistance()``), ``collect_stats``.

    Stats: ``pos_pair_dist`` and ``neg_pair_dist``, the mean value over every positive (negative)
    pair before selection; 0 when there is none.
    """

    recordable = ("pos_margin", "neg_margin")
    stats = ("pos_pair_dist", "neg_pair_dist")

    def __init__(self, pos_margin: float = 0.2, neg_margin: float = 0.8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
    ) -> PairIndices:
        mat = self.distance_matrix(embeddings, ref_emb)
        pos, neg = T.get_matches_and_diffs(labels, ref_labels)
        if self.collect_stats:
            self.record_stat("pos_pair_dist", _masked_mean(mat, pos))
            self.record_stat("neg_pair_dist", _masked_mean(mat, neg))
        return F.pair_margin_select(
            mat,
            pos,
            neg,
            pos_margin=self.pos_margin,
            neg_margin=self.neg_margin,
            is_inverted=self.distance.is_inverted,
        )


def _masked_mean(mat: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``mat`` over ``mask`` (0 when empty), accumulated in float64."""
    count = mask.sum()
    total = torch.where(mask, mat, mat.new_zeros(())).sum(dtype=torch.float64)
    return torch.where(count > 0, total / count.clamp_min(1), 0.0).to(mat.dtype)
