"""``GenericPairLoss``: base of losses defined on positive and negative pairs."""

from __future__ import annotations

from typing import Any

import torch

from .._types import IndicesTuple, LossDict, PairIndices, Tensor
from ..functional import tuples as T
from .base_metric_loss_function import BaseMetricLossFunction


class GenericPairLoss(BaseMetricLossFunction):
    """Converts labels or a miner's output to pairs ``(a1, p, a2, n)``, computes the distance
    matrix and calls ``_compute_loss`` with either masks or gathered pair values.

    Args:
        mat_based_loss: True → ``_compute_loss(mat, pos_mask, neg_mask)`` with float 0/1 masks;
            False → ``_compute_loss(pos_pair_values, neg_pair_values, indices_tuple)``.
    """

    def __init__(self, mat_based_loss: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loss_method = self.mat_based_loss if mat_based_loss else self.pair_based_loss

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        pairs = T.convert_to_pairs(indices_tuple, labels, ref_labels)
        if all(len(x) <= 1 for x in pairs):
            return self.zero_losses()
        mat = self.distance(embeddings, None if ref_emb is embeddings else ref_emb)
        return self.loss_method(mat, pairs)

    def _compute_loss(self, *args: Any) -> LossDict:
        raise NotImplementedError

    def mat_based_loss(self, mat: Tensor, indices_tuple: PairIndices) -> LossDict:
        a1, p, a2, n = indices_tuple
        pos_mask = torch.zeros_like(mat)
        neg_mask = torch.zeros_like(mat)
        pos_mask[a1, p] = 1
        neg_mask[a2, n] = 1
        return self._compute_loss(mat, pos_mask, neg_mask)

    def pair_based_loss(self, mat: Tensor, indices_tuple: PairIndices) -> LossDict:
        a1, p, a2, n = indices_tuple
        pos_pair = mat[a1, p]
        neg_pair = mat[a2, n]
        return self._compute_loss(pos_pair, neg_pair, indices_tuple)
