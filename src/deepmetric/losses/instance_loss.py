"""``InstanceLoss``: classify every sample into its class column of the batch similarity."""

from __future__ import annotations

from typing import Any, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import softmax_pair_losses as F
from ..reducers import BaseReducer, MeanReducer
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class InstanceLoss(BaseMetricLossFunction):
    """Instance loss in pytorch-metric-learning's batch form.

    Zheng et al., "Dual-Path Convolutional Image-Text Embeddings with Instance Loss",
    ACM TOMM 2020, https://arxiv.org/abs/1711.05535. Logits ``gamma * cos(x_i, x_j)`` over the
    batch; the target of sample ``i`` is the rank of its label among the sorted distinct labels
    of the batch (used as a column index); ``L_i`` = cross-entropy. Reduced per sample
    (``"element"``, default mean).

    Args:
        gamma: logit scale.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (must be ``CosineSimilarity``, the
            default), ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    requires_labels = True
    supports_indices_tuple = False
    supports_ref_emb = False
    recordable = ("gamma",)

    def __init__(self, gamma: float = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gamma = gamma

    def get_default_reducer(self) -> BaseReducer:
        return MeanReducer()

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
        sim = self.distance(embeddings)  # [N, N]
        losses = F.instance_terms(sim, cast(Tensor, labels), gamma=self.gamma)
        indices = torch.arange(embeddings.shape[0], device=embeddings.device)
        return {"loss": {"losses": losses, "indices": indices, "reduction_type": "element"}}
