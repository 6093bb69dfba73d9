"""``ThresholdConsistentMarginLoss``: penalise only pairs on the wrong side of a threshold."""

from __future__ import annotations

from typing import Any

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import pair_set_losses as F
from ..functional import tuples as T
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class ThresholdConsistentMarginLoss(BaseMetricLossFunction):
    """Threshold-consistent margin (TCM) regulariser.

    Zhang et al., "Threshold-Consistent Margin Loss for Open-World Deep Metric Learning",
    ICLR 2024, https://arxiv.org/abs/2307.04047 (eq. 5). With cosine similarities ``s``::

        TCM = lambda_plus  * mean_{pos pairs, s <= margin_plus}(margin_plus - s)
            + lambda_minus * mean_{neg pairs, s >= margin_minus}(s - margin_minus)

    (an empty set contributes 0). Meant to be added to another metric loss. Already reduced.

    Pairs come from the labels or a miner's ``indices_tuple``. Positives and negatives index
    ``ref_emb`` when one is given (pytorch-metric-learning indexes the query batch instead).

    Args:
        lambda_plus, lambda_minus: weights of the positive / negative parts.
        margin_plus: positive pairs with similarity at or below it are penalised.
        margin_minus: negative pairs with similarity at or above it are penalised.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (must be ``CosineSimilarity``, the
            default; the similarity is always the plain cosine), ``embedding_regularizer``,
            ``embedding_reg_weight``.
    """

    def __init__(
        self,
        lambda_plus: float = 1.0,
        lambda_minus: float = 1.0,
        margin_plus: float = 0.9,
        margin_minus: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.lambda_plus = lambda_plus
        self.lambda_minus = lambda_minus
        self.margin_plus = margin_plus
        self.margin_minus = margin_minus

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def check_distance(self, distance: BaseDistance) -> None:
        if not isinstance(distance, CosineSimilarity):
            V.fail(type(self).__name__, "`distance` to be a CosineSimilarity", repr(distance))

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        a1, p, a2, n = T.convert_to_pairs(indices_tuple, labels, ref_labels)
        query = torch.nn.functional.normalize(embeddings, dim=1)
        ref = query if ref_emb is embeddings else torch.nn.functional.normalize(ref_emb, dim=1)
        sim = query @ ref.T  # [N, M] cosine similarities
        value = F.threshold_consistent_margin(
            sim[a1, p],
            sim[a2, n],
            lambda_plus=self.lambda_plus,
            lambda_minus=self.lambda_minus,
            margin_plus=self.margin_plus,
            margin_minus=self.margin_minus,
        )
        if value is None:
            return self.zero_losses()
        return {"loss": {"losses": value, "indices": None, "reduction_type": "already_reduced"}}

    def extra_repr(self) -> str:
        return (
            f"lambda_plus={self.lambda_plus!r}, lambda_minus={self.lambda_minus!r}, "
            f"margin_plus={self.margin_plus!r}, margin_minus={self.margin_minus!r}"
        )
