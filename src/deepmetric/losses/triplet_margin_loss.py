"""``TripletMarginLoss``: anchors closer to positives than to negatives by a margin."""

from __future__ import annotations

from typing import Any, Literal, cast

from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, PairMasks, Tensor
from ..functional import triplet_losses as F
from ..functional import tuples as T
from ..functional.reductions import IntervalMean
from ..reducers import AvgNonZeroReducer, BaseReducer
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class TripletMarginLoss(BaseMetricLossFunction):
    """Triplet margin loss ``L = [d_ap - d_an + margin]_+`` over triplets (a, p, n).

    Weinberger & Saul, "Distance Metric Learning for Large Margin Nearest Neighbor
    Classification", JMLR 2009; Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832.
    For similarities ``s``: ``[s_an - s_ap + margin]_+``.

    Without a miner every triplet of the batch is used. With the default reducer (or Mean, Sum,
    Threshold) that case is computed in O(N*M log M) time and O(N*M) memory, never building the
    N*P*M triplets; other reducers receive explicit triplets.

    Args:
        margin: the desired gap between negative and positive distances.
        swap: use ``min(d_an, d_pn)`` as the negative distance (Balntas et al., BMVC 2016).
        smooth_loss: ``softplus`` instead of the hinge ``[.]_+``.
        triplets_per_anchor: ``"all"`` or the number of random triplets per anchor.
        **kwargs: ``collect_stats``, ``reducer`` (default :class:`AvgNonZeroReducer`),
            ``distance`` (default ``LpDistance()``), ``embedding_regularizer``,
            ``embedding_reg_weight``.
    """

    recordable = ("margin",)
    supports_pair_masks = True

    def __init__(
        self,
        margin: float = 0.05,
        swap: bool = False,
        smooth_loss: bool = False,
        triplets_per_anchor: int | Literal["all"] = "all",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if triplets_per_anchor != "all" and not (
            isinstance(triplets_per_anchor, int) and triplets_per_anchor > 0
        ):
            raise ValueError(
                f"TripletMarginLoss: expected `triplets_per_anchor` to be 'all' or a positive int, "
                f"got {triplets_per_anchor!r}."
            )
        self.margin = margin
        self.swap = swap
        self.smooth_loss = smooth_loss
        self.triplets_per_anchor = triplets_per_anchor

    def get_default_reducer(self) -> BaseReducer:
        return AvgNonZeroReducer()

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        if self.swap and ref_emb is not embeddings:
            raise ValueError(
                "TripletMarginLoss: expected no `ref_emb` with swap=True (the swap compares "
                "positives and negatives within one set), got a separate ref_emb."
            )
        reducer = self.reducer_for("loss")
        spec = None if reducer is None else reducer.interval_form()
        if isinstance(indices_tuple, PairMasks):  # every triplet of the masks
            if spec is not None:
                return self._all_triplets_reduced(embeddings, ref_emb, indices_tuple, spec)
            indices_tuple = T.triplets_from_masks(indices_tuple.pos, indices_tuple.neg)
        if indices_tuple is None and self.triplets_per_anchor == "all" and spec is not None:
            # validation guarantees labels whenever there is no indices_tuple
            masks = PairMasks(*T.get_matches_and_diffs(cast(Tensor, labels), ref_labels))
            return self._all_triplets_reduced(embeddings, ref_emb, masks, spec)
        triplets = T.convert_to_triplets(
            indices_tuple, labels, ref_labels, t_per_anchor=self.triplets_per_anchor
        )
        if len(triplets[0]) == 0:
            return self.zero_losses()
        a, p, n = triplets
        mat = self._distance_matrix(embeddings, ref_emb)
        losses = F.triplet_margin_terms(mat, a, p, n, **self._kernel_options())
        return {"loss": {"losses": losses, "indices": triplets, "reduction_type": "triplet"}}

    def _all_triplets_reduced(
        self, embeddings: Tensor, ref_emb: Tensor, masks: PairMasks, spec: IntervalMean
    ) -> LossDict:
        pos, neg = masks.pos, masks.neg
        if not bool(((pos.sum(1) > 0) & (neg.sum(1) > 0)).any()):
            return self.zero_losses()
        mat = self._distance_matrix(embeddings, ref_emb)
        options = self._kernel_options()
        value = F.all_triplets_margin_loss(mat, pos, neg, reduction=spec, **options)
        detached = mat.detach()

        def count(low: float | None, high: float | None) -> Tensor:
            return F.count_triplets_in(detached, pos, neg, low=low, high=high, **options)

        sub_loss = {
            "losses": value,
            "indices": None,
            "reduction_type": "already_reduced",
            "interval_counter": count,
        }
        return {"loss": sub_loss}  # type: ignore[dict-item]

    def _distance_matrix(self, embeddings: Tensor, ref_emb: Tensor) -> Tensor:
        return self.distance(embeddings, None if ref_emb is embeddings else ref_emb)

    def _kernel_options(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "is_inverted": self.distance.is_inverted,
            "swap": self.swap,
            "smooth_loss": self.smooth_loss,
        }
