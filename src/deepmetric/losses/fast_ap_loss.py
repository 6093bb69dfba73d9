"""``FastAPLoss``: one minus a histogram-based, differentiable average precision per anchor."""

from __future__ import annotations

from typing import Any, cast

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, LpDistance
from ..functional import ranking_losses as F
from ..functional import tuples as T
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class FastAPLoss(BaseMetricLossFunction):
    """FastAP: average precision estimated from soft histograms of the distances.

    Cakir, He, Xia, Kulis, Sclaroff, "Deep Metric Learning to Rank", CVPR 2019,
    https://arxiv.org/abs/1906.08590.

    Distances to the other batch samples are soft-binned into ``num_bins + 1`` triangular kernels
    on ``[0, 2 ** power]`` (``h+``/``h-``: positives/negatives of the anchor, ``H+``/``H``: their
    cumulative sums) and, for every anchor ``i`` with at least one positive::

        FastAP_i = (1 / N+_i) sum_z h+_z H+_z / H_z,        L_i = (1 - FastAP_i) w_i

    where ``w`` are the miner weights (how often each sample occurs in ``indices_tuple``, over the
    maximum; all ones without a tuple). Reduced with ``MeanReducer`` by default.

    Memory: O(N^2 + N * num_bins); pytorch-metric-learning builds ``(num_bins + 1) x N x N``.

    Args:
        num_bins: number of histogram bins (a positive int).
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (must be an ``LpDistance`` with
            ``normalize_embeddings=True, p=2``; default ``LpDistance(power=2)``, squared
            Euclidean), ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("num_bins",)
    requires_labels = True
    supports_ref_emb = False

    def __init__(self, num_bins: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(num_bins, bool) or int(num_bins) != num_bins or int(num_bins) < 1:
            V.fail(type(self).__name__, "`num_bins` to be a positive int", repr(num_bins))
        self.num_bins = int(num_bins)
        self.num_edges = self.num_bins + 1

    def get_default_distance(self) -> BaseDistance:
        return LpDistance(power=2)

    def check_distance(self, distance: BaseDistance) -> None:
        ok = isinstance(distance, LpDistance) and distance.normalize_embeddings and distance.p == 2
        if not ok:
            got = (
                f"{type(distance).__name__}(normalize_embeddings="
                f"{distance.normalize_embeddings}, p={distance.p})"
            )
            V.fail(
                type(self).__name__,
                "`distance` to be an LpDistance with normalize_embeddings=True and p=2",
                got,
                "Omit `distance` to use the default LpDistance(power=2).",
            )

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        labels = cast(Tensor, labels)  # guaranteed by `requires_labels`
        weights = T.convert_to_weights(indices_tuple, labels, dtype=embeddings.dtype)
        pos, neg = T.get_matches_and_diffs(labels)
        has_pos = pos.any(dim=1)
        if not bool(has_pos.any()):
            return self.zero_losses()
        mat = self.distance(embeddings)
        ap = F.fast_ap(mat, pos, neg, num_bins=self.num_bins, max_value=2**self.distance.power)
        anchors = has_pos.nonzero(as_tuple=True)[0]
        losses = (1 - ap[anchors]) * weights[anchors]
        return {"loss": {"losses": losses, "indices": anchors, "reduction_type": "element"}}
