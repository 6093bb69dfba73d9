"""``ThresholdReducer``: the mean of the terms strictly between two thresholds."""

from __future__ import annotations

from typing import Any

from .._registry import REDUCERS
from .._types import Tensor
from ..functional.reductions import IntervalMean, interval_reduce
from .base_reducer import BaseReducer, IntervalCounter, zero_loss


@REDUCERS.register
class ThresholdReducer(BaseReducer):
    """Mean of the loss terms with ``low < loss < high``; 0 when none is left.

    Args:
        low: lower bound (exclusive), or None for no lower bound.
        high: upper bound (exclusive), or None for no upper bound. At least one bound is required.
    """

    recordable = ("low", "high")
    stats = ("num_past_filter", "num_above_low", "num_below_high")

    def __init__(
        self, low: float | None = None, high: float | None = None, collect_stats: bool | None = None
    ) -> None:
        if low is None and high is None:
            raise ValueError(
                f"{type(self).__name__}: expected at least one of `low` and `high`, got neither."
            )
        if low is not None and high is not None and not low < high:
            raise ValueError(
                f"{type(self).__name__}: expected low < high, got low={low}, high={high}."
            )
        super().__init__(collect_stats=collect_stats)
        self.low = low
        self.high = high

    def element_reduction(
        self,
        losses: Tensor,
        loss_indices: Any,
        embeddings: Tensor,
        labels: Tensor | None,
        **kwargs: Any,
    ) -> Tensor:
        spec = self.interval_form()
        if self.collect_stats:
            self.record_interval_stats(lambda lo, hi: IntervalMean(lo, hi).keep_mask(losses).sum())
        if not bool(spec.keep_mask(losses).any()):
            return zero_loss(embeddings)
        return interval_reduce(losses, spec)

    def interval_form(self) -> IntervalMean:
        return IntervalMean(self.low, self.high, divide=True)

    def record_interval_stats(self, count: IntervalCounter) -> None:
        if not self.collect_stats:
            return
        super().record_interval_stats(count)
        self.record_stat("num_past_filter", count(self.low, self.high))
        if self.low is not None:
            self.record_stat("num_above_low", count(self.low, None))
        if self.high is not None:
            self.record_stat("num_below_high", count(None, self.high))
