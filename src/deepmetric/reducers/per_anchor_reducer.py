"""``PerAnchorReducer``: aggregate pair losses per anchor, then reduce the per-anchor values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._registry import REDUCERS
from .._types import Tensor
from .base_reducer import BaseReducer
from .mean_reducer import MeanReducer

AggregationFunc = Callable[[Tensor, Tensor], Tensor]


def aggregation_func(x: Tensor, num_per_row: Tensor) -> Tensor:
    """Row sum divided by the number of pairs in the row; 0 for rows without pairs.

    ``x: Tensor[N, M]`` holds each anchor's pair losses (0 where there is no pair).
    """
    total = x.sum(dim=1)
    return torch.where(num_per_row > 0, total / num_per_row.clamp_min(1), torch.zeros_like(total))


@REDUCERS.register
class PerAnchorReducer(BaseReducer):
    """Turns pair losses into one value per anchor with ``aggregation_func``, then applies
    ``reducer`` (default :class:`MeanReducer`) to those N values. Element losses go straight to
    ``reducer``; triplet losses are not supported.
    """

    def __init__(
        self,
        reducer: BaseReducer | None = None,
        aggregation_func: AggregationFunc = aggregation_func,
        collect_stats: bool | None = None,
    ) -> None:
        super().__init__(collect_stats=collect_stats)
        self.reducer = MeanReducer() if reducer is None else reducer
        self.aggregation_func = aggregation_func

    def element_reduction(
        self,
        losses: Tensor,
        loss_indices: Tensor,
        embeddings: Tensor,
        labels: Tensor | None,
        **kwargs: Any,
    ) -> Tensor:
        sub_loss = {"losses": losses, "indices": loss_indices, "reduction_type": "element"}
        return self.reducer({"loss": sub_loss}, embeddings, labels)  # type: ignore[dict-item]

    def pos_pair_reduction(
        self,
        losses: Tensor,
        loss_indices: tuple[Tensor, ...],
        embeddings: Tensor,
        labels: Tensor | None,
        **kwargs: Any,
    ) -> Tensor:
        anchors, others = loss_indices[0], loss_indices[1]
        n = embeddings.shape[0]
        m = max(n, int(others.max()) + 1) if others.numel() else n
        per_pair = torch.zeros(n, m, dtype=losses.dtype, device=losses.device)
        present = torch.zeros(n, m, dtype=torch.bool, device=losses.device)
        per_pair[anchors, others] = losses
        present[anchors, others] = True
        per_anchor = self.aggregation_func(per_pair, present.sum(dim=1))
        arange = torch.arange(n, device=losses.device)
        return self.element_reduction(per_anchor, arange, embeddings, labels)

    neg_pair_reduction = pos_pair_reduction

    def triplet_reduction(self, *args: Any, **kwargs: Any) -> Tensor:
        raise NotImplementedError(
            f"{type(self).__name__}: triplet losses are not supported; use a pair loss or "
            "another reducer."
        )
