"""``BatchedDistance``: stream a distance matrix block by block to a callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._types import Tensor
from .base_distance import BaseDistance

IterFn = Callable[[Tensor, int, int], Any]


class BatchedDistance(torch.nn.Module):
    """Computes ``distance(query[s:e], ref)`` for consecutive query blocks and calls
    ``iter_fn(mat, s, e)`` on each, so the full ``N x M`` matrix never exists at once.

    Attributes not found here (``is_inverted``, ``p``, ``power``, ...) read through to ``distance``.

    Args:
        distance: the distance to apply block by block.
        iter_fn: called with each block ``Tensor[e - s, M]`` and its query range.
        batch_size: query rows per block.
    """

    def __init__(self, distance: BaseDistance, iter_fn: IterFn | None = None, batch_size: int = 32):
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"BatchedDistance: expected `batch_size` >= 1, got {batch_size!r}.")
        self.distance = distance
        self.iter_fn = iter_fn
        self.batch_size = batch_size

    def forward(self, query_emb: Tensor, ref_emb: Tensor | None = None) -> None:
        if self.iter_fn is None:
            raise RuntimeError(
                "BatchedDistance: expected an `iter_fn` to receive each block, got None. "
                "Pass iter_fn=... to the constructor."
            )
        ref = query_emb if ref_emb is None else ref_emb
        for start in range(0, len(query_emb), self.batch_size):
            end = min(start + self.batch_size, len(query_emb))
            self.iter_fn(self.distance(query_emb[start:end], ref), start, end)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("distance"), name)
