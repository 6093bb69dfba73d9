"""``LossTracker``: the current value of each named loss of a trainer and their weighted sum."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class LossTracker:
    """Holds ``losses[name]`` for each loss name plus ``losses["total_loss"]``, the sum of the
    losses times their weights (computed by :meth:`update`)."""

    def __init__(self, loss_names: list[str]) -> None:
        self.loss_names = list(loss_names)
        if "total_loss" not in self.loss_names:
            self.loss_names.append("total_loss")
        self.losses: dict[str, Any] = {name: 0 for name in self.loss_names}

    def update(self, loss_weights: Mapping[str, float]) -> None:
        """Weight each loss (in place) and store their sum as ``total_loss``."""
        total: Any = 0
        for name in self.losses:
            if name == "total_loss":
                continue
            self.losses[name] = self.losses[name] * loss_weights.get(name, 1)
            total = total + self.losses[name]
        self.losses["total_loss"] = total

    def zero_losses(self) -> None:
        for name in self.losses:
            self.losses[name] = 0
