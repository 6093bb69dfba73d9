"""``MatchFinder``: decide which embedding pairs match under a distance threshold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._types import Tensor
from .._validation import fail
from ..distances.base_distance import BaseDistance
from ..distances.resolve import resolve_distance


class MatchFinder:
    """Pairs match when ``distance <= threshold`` (``>=`` for similarities such as cosine).

    Args:
        distance: a distance (instance, class or registered name).
        threshold: the default threshold; each call may pass its own.
    """

    def __init__(self, distance: BaseDistance | type | str, threshold: float | None = None) -> None:
        self.distance = resolve_distance(distance, "MatchFinder")
        self.threshold = threshold

    def _threshold(self, threshold: float | None) -> float:
        value = self.threshold if threshold is None else threshold
        if value is None:
            fail("MatchFinder", "a `threshold` (here or in the constructor)", "None")
        return value

    def _matches(self, values: Tensor, threshold: float) -> Tensor:
        return values >= threshold if self.distance.is_inverted else values <= threshold

    def operate_on_emb(
        self,
        input_func: Callable[..., Any],
        query_emb: Tensor,
        ref_emb: Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """``input_func(query_emb, ref_emb or query_emb, *args, **kwargs)``."""
        return input_func(query_emb, query_emb if ref_emb is None else ref_emb, *args, **kwargs)

    def get_matching_pairs(
        self,
        query_emb: Tensor,
        ref_emb: Tensor | None = None,
        threshold: float | None = None,
        return_tuples: bool = False,
    ) -> np.ndarray | list[tuple[int, int]]:
        """Bool ``numpy`` matrix ``[N, M]`` of matching (query, reference) pairs, or the list
        of matching ``(i, j)`` index pairs with ``return_tuples``."""
        thr = self._threshold(threshold)
        with torch.no_grad():
            return self.operate_on_emb(self._matching_pairs, query_emb, ref_emb, thr, return_tuples)

    def _matching_pairs(
        self, query_emb: Tensor, ref_emb: Tensor, threshold: float, return_tuples: bool
    ) -> np.ndarray | list[tuple[int, int]]:
        matches = self._matches(self.distance(query_emb, ref_emb), threshold).cpu().numpy()
        if return_tuples:
            return [(int(i), int(j)) for i, j in zip(*np.nonzero(matches), strict=True)]
        return matches

    def is_match(self, x: Tensor, y: Tensor, threshold: float | None = None) -> bool | np.ndarray:
        """Whether row ``i`` of ``x`` matches row ``i`` of ``y``: a bool for one pair, else a
        bool ``numpy`` array."""
        thr = self._threshold(threshold)
        with torch.no_grad():
            out = self._matches(self.distance.pairwise_distance(x, y), thr)
        if out.numel() == 1:
            return bool(out.item())
        return out.cpu().numpy()

    def __repr__(self) -> str:
        return f"MatchFinder(distance={self.distance!r}, threshold={self.threshold!r})"
