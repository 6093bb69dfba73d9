"""``NPairsLoss``: one positive pair per class; each anchor must pick out its own positive."""

from __future__ import annotations

from typing import Any, cast

from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, DotProductSimilarity
from ..functional import softmax_pair_losses as F
from ..functional import tuples as T
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class NPairsLoss(BaseMetricLossFunction):
    """Multi-class N-pair loss.

    Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss Objective", NeurIPS 2016,
    https://papers.nips.cc/paper/6200 (eq. 3). From the positive pairs (all of them, or a miner's)
    one pair ``(a_i, p_i)`` per anchor label is kept (the first one, pairs ordered by label);
    then ``L_i = -log softmax_j(s(a_i, p_j))[i]`` (``s = -d`` for distances). Reduced per anchor
    (``"element"``, default mean). The paper's L2 regulariser is not built in (pass an
    ``embedding_regularizer``).

    Args:
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default
            ``DotProductSimilarity()``, which normalises; any distance), ``embedding_regularizer``,
            ``embedding_reg_weight``.

    ``num_pairs`` (the number of pairs used) is set by every call, as in PML.
    """

    requires_labels = True
    supports_ref_emb = False
    stats = ("num_pairs",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def get_default_distance(self) -> BaseDistance:
        return DotProductSimilarity()

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        labels = cast(Tensor, labels)  # validated: required
        anchors, positives = T.convert_to_pos_pairs_with_unique_labels(indices_tuple, labels)
        self.num_pairs = len(anchors)
        if self.num_pairs == 0:
            return self.zero_losses()
        sim = self.distance(embeddings[anchors], embeddings[positives])  # [K, K]
        if not self.distance.is_inverted:
            sim = -sim
        losses = F.npairs_terms(sim)
        return {"loss": {"losses": losses, "indices": anchors, "reduction_type": "element"}}
