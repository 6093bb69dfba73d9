"""Reductions that kernels can apply on the fly, without materialising every loss term.

:class:`IntervalMean` describes "the mean (or sum) of the loss terms that lie strictly inside
``(low, high)``". ``MeanReducer``, ``SumReducer``, ``ThresholdReducer`` and ``AvgNonZeroReducer``
are all of this form, so a kernel that can count and sum terms inside an interval (e.g. the
all-triplets margin loss) can reduce without building the terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._types import Tensor


@dataclass(frozen=True)
class IntervalMean:
    """Keep terms with ``low < loss < high`` (a ``None`` bound is open); return their mean,
    or their sum when ``divide`` is False. No kept term gives zero."""

    low: float | None = None
    high: float | None = None
    divide: bool = True

    def keep_mask(self, losses: Tensor) -> Tensor:
        keep = torch.ones_like(losses, dtype=torch.bool)
        if self.low is not None:
            keep &= losses > self.low
        if self.high is not None:
            keep &= losses < self.high
        return keep


def interval_reduce(losses: Tensor, spec: IntervalMean) -> Tensor:
    """Reference reduction of explicit ``losses`` according to ``spec`` (0-dim tensor)."""
    keep = spec.keep_mask(losses)
    total = torch.where(keep, losses, torch.zeros_like(losses)).sum()
    if not spec.divide:
        return total
    count = keep.sum()
    return torch.where(count > 0, total / count.clamp_min(1), total * 0)
