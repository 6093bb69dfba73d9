"""``SumReducer``: the sum of all loss terms."""

from __future__ import annotations

from typing import Any

from .._registry import REDUCERS
from .._types import Tensor
from ..functional.reductions import IntervalMean
from .mean_reducer import MeanReducer


@REDUCERS.register
class SumReducer(MeanReducer):
    """Sum over every element, pair or triplet term."""

    def element_reduction(
        self,
        losses: Tensor,
        loss_indices: Any,
        embeddings: Tensor,
        labels: Tensor | None,
        **kwargs: Any,
    ) -> Tensor:
        return losses.sum()

    def interval_form(self) -> IntervalMean | None:
        return IntervalMean(divide=False)
