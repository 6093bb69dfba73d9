"""``AvgNonZeroReducer``: the mean of the strictly positive loss terms."""

from __future__ import annotations

from .._registry import REDUCERS
from .threshold_reducer import ThresholdReducer


@REDUCERS.register
class AvgNonZeroReducer(ThresholdReducer):
    """Mean over terms ``> 0`` (and ``< high`` when given); 0 when every term is 0.

    The default for triplet and contrastive losses: easy tuples, whose loss is 0, do not dilute
    the average.
    """

    def __init__(self, high: float | None = None, collect_stats: bool | None = None) -> None:
        super().__init__(low=0, high=high, collect_stats=collect_stats)
