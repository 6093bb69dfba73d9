"""``ClassWeightedReducer``: a mean with each term weighted by its anchor's class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._registry import REDUCERS
from .._types import Tensor
from .base_reducer import BaseReducer


@REDUCERS.register
class ClassWeightedReducer(BaseReducer):
    """``mean(losses * weights[labels[anchor]])``; pair and triplet terms use their anchor.

    Args:
        weights: one weight per class, indexed by label value (e.g. inverse class frequency).
    """

    def __init__(
        self, weights: Tensor | Sequence[float], collect_stats: bool | None = None
    ) -> None:
        super().__init__(collect_stats=collect_stats)
        weights = torch.as_tensor(weights)
        if weights.ndim != 1:
            raise ValueError(
                f"{type(self).__name__}: expected `weights` of shape (num_classes,), "
                f"got shape {tuple(weights.shape)}."
            )
        self.weights = weights

    def element_reduction(
        self,
        losses: Tensor,
        loss_indices: Tensor,
        embeddings: Tensor,
        labels: Tensor | None,
        **kwargs: Any,
    ) -> Tensor:
        if labels is None:
            raise ValueError(
                f"{type(self).__name__}: expected `labels` to weight by class, got None."
            )
        anchor_labels = labels.to(losses.device)[loss_indices]
        if anchor_labels.numel():
            lowest, highest = int(anchor_labels.min()), int(anchor_labels.max())
            if lowest < 0 or highest >= len(self.weights):
                raise ValueError(
                    f"{type(self).__name__}: expected labels in [0, {len(self.weights)}) to "
                    f"index `weights`, got label {lowest if lowest < 0 else highest}."
                )
        weights = self.weights.to(device=losses.device, dtype=losses.dtype)
        return torch.mean(losses * weights[anchor_labels])
