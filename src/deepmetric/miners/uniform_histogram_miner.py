"""``UniformHistogramMiner``: pairs drawn evenly across the histogram of pair distances."""

from __future__ import annotations

from typing import Any

import torch

from .. import _validation as V
from .._registry import MINERS
from .._types import PairIndices, Tensor
from ..functional import mining as F
from ..functional import tuples as T
from .base_tuple_miner import BaseTupleMiner, check_generator


@MINERS.register
class UniformHistogramMiner(BaseTupleMiner):
    """Positive and negative pairs sampled so that every range of distances is equally present.

    Separately for the positive and the negative pairs: ``num_bins`` equal-width bins span the
    values from the smallest to the largest (half-open, the last one closed); from every non-empty
    bin ``pos_per_bin`` (``neg_per_bin``) pairs are drawn uniformly with replacement. Output is
    bin after bin, ascending.

    Args:
        num_bins: number of bins (>= 1).
        pos_per_bin, neg_per_bin: draws per non-empty bin (>= 1).
        generator: ``torch.Generator`` for the draws (None: torch's global generator).
        **kwargs: ``distance`` (default ``LpDistance()``), ``collect_stats``.
    """

    recordable = ("pos_per_bin", "neg_per_bin")

    def __init__(
        self,
        num_bins: int = 100,
        pos_per_bin: int = 10,
        neg_per_bin: int = 10,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        for name, value in (
            ("num_bins", num_bins),
            ("pos_per_bin", pos_per_bin),
            ("neg_per_bin", neg_per_bin),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                V.fail(owner, f"`{name}` to be an int >= 1", repr(value))
        self.num_bins = num_bins
        self.pos_per_bin = pos_per_bin
        self.neg_per_bin = neg_per_bin
        self.generator = check_generator(owner, generator)

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
    ) -> PairIndices:
        mat = self.distance_matrix(embeddings, ref_emb)
        pos, neg = T.get_matches_and_diffs(labels, ref_labels)
        a1, p = self._sample(mat, pos, self.pos_per_bin)
        a2, n = self._sample(mat, neg, self.neg_per_bin)
        return a1, p, a2, n

    def _sample(self, mat: Tensor, mask: Tensor, per_bin: int) -> tuple[Tensor, Tensor]:
        anchors, others = torch.where(mask)
        if len(anchors) == 0:
            return anchors, others
        idx = F.uniform_histogram_select(
            mat[mask], num_bins=self.num_bins, per_bin=per_bin, generator=self.generator
        )
        return anchors[idx], others[idx]
