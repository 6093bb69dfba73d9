"""``HistogramLoss``: the probability that a negative pair is more similar than a positive one."""

from __future__ import annotations

import math
from typing import Any

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import histogram_loss as F
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class HistogramLoss(BaseMetricLossFunction):
    """Histogram loss over the pairs of all triplets of the batch (or of a miner's tuple).

    Ustinova & Lempitsky, "Learning Deep Embeddings with Histogram Loss", NeurIPS 2016,
    https://arxiv.org/abs/1611.00822.

    Similarities of the positive and negative pairs are soft-binned on ``[-1, 1]`` with node
    spacing ``delta`` into densities ``p+`` and ``p-``; ``L = sum_r p-_r Phi+_r`` with
    ``Phi+ = cumsum(p+)``. Each unordered pair ``{a, b}`` that occurs in some triplet counts once
    (as in pytorch-metric-learning), found in O(N^2) time and memory without building the
    triplets. Zero (connected to the graph) when there is no triplet.

    Args:
        n_bins: number of bins; ``delta = 2 / n_bins``. Default 100 when ``delta`` is None too.
        delta: node spacing in ``(0, 2]``; if both are given, ``delta`` must equal ``2 / n_bins``.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (a similarity, default
            ``CosineSimilarity()``), ``embedding_regularizer``, ``embedding_reg_weight``.

    Similarities slightly outside ``[-1, 1]`` (rounding) fall into the outermost bins; PML
    raises an index error for them.
    """

    recordable = ("delta",)
    supports_ref_emb = False

    def __init__(
        self, n_bins: int | None = None, delta: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        if n_bins is not None and (
            isinstance(n_bins, bool) or int(n_bins) != n_bins or int(n_bins) < 1
        ):
            V.fail(owner, "`n_bins` to be a positive int", repr(n_bins))
        if delta is not None and not 0 < delta <= 2:
            V.fail(owner, "`delta` in (0, 2]", repr(delta))
        if delta is not None and n_bins is not None and not math.isclose(delta, 2 / n_bins):
            V.fail(
                owner,
                "`delta == 2 / n_bins` when both are given",
                f"delta={delta!r} and n_bins={n_bins!r}",
                "Pass only one of them.",
            )
        if delta is None:
            delta = 2 / (100 if n_bins is None else n_bins)
        self.delta = delta

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def check_distance(self, distance: BaseDistance) -> None:
        if not distance.is_inverted:
            V.fail(
                type(self).__name__,
                "a similarity `distance` (is_inverted=True) with values in [-1, 1]",
                type(distance).__name__,
                "Use CosineSimilarity (the default).",
            )

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        ap, an, any_triplet = F.triplet_pair_masks(len(embeddings), labels, indices_tuple)
        if not any_triplet:
            return self.zero_losses()
        mat = self.distance(embeddings)
        pos_values = mat[F.unordered_pairs(ap)]
        neg_values = mat[F.unordered_pairs(an)]
        loss = F.histogram_loss(pos_values, neg_values, delta=self.delta)
        return {"loss": {"losses": loss, "indices": None, "reduction_type": "already_reduced"}}
