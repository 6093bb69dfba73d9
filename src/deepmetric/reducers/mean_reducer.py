"""``MeanReducer``: the plain mean of all loss terms."""

from __future__ import annotations

from typing import Any

from .._registry import REDUCERS
from .._types import Tensor
from ..functional.reductions import IntervalMean
from .base_reducer import BaseReducer


@REDUCERS.register
class MeanReducer(BaseReducer):
    """Mean over every element, pair or triplet term (zeros included)."""

    def element_reduction(
        self,
        losses: Tensor,
        loss_indices: Any,
        embeddings: Tensor,
        labels: Tensor | None,
        **kwargs: Any,
    ) -> Tensor:
        return losses.mean()

    def interval_form(self) -> IntervalMean | None:
        return IntervalMean(divide=True)
