"""Label bookkeeping: indices per label, label ranks, and a mapper to contiguous class ids.

Accepts torch tensors or numpy arrays (strings too, where noted); returns numpy, as PML does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _validation as V
from .tensors import numpy_to_torch, to_numpy

#: ``label_map(labels_of_one_level, level) -> mapped labels`` (e.g. ``LabelMapper(...).map``).
LabelMapFn = Callable[[Any, int], Any]


def get_labels_to_indices(labels: Any) -> defaultdict[Any, Any]:
    """``{label: int64 array of the positions holding it}``, labels in order of first appearance.

    Args:
        labels: 1-D tensor or array-like of N labels.
    """
    arr = np.asarray(to_numpy(labels))
    uniq, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
    positions = np.argsort(inverse.reshape(-1), kind="stable")
    groups = np.split(positions, np.cumsum(np.bincount(inverse.reshape(-1)))[:-1])
    out: defaultdict[Any, Any] = defaultdict(list)
    for label_idx in np.argsort(first, kind="stable"):
        out[uniq[label_idx]] = groups[label_idx]
    return out


def make_label_to_rank_dict(label_set: Any) -> dict[Any, int]:
    """``{label: rank}``, 0-based ranks in sorted order; ``label_set`` must hold no duplicates."""
    arr = np.asarray(to_numpy(label_set)).reshape(-1)
    uniq = np.unique(arr)
    if len(uniq) != len(arr):
        V.fail(
            "make_label_to_rank_dict",
            "a label set without duplicates",
            f"{len(arr)} labels with {len(uniq)} distinct",
        )
    return {label: rank for rank, label in enumerate(uniq)}


def get_label_map(labels: Any) -> dict[int, dict[Any, int]]:
    """``{level: {label: rank}}`` for labels of shape (N,) (level 0) or (N, levels)."""
    arr = np.asarray(to_numpy(labels))
    if arr.ndim == 1:
        arr = arr[:, None]
    levels = range(arr.shape[1])
    return {level: make_label_to_rank_dict(np.unique(arr[:, level])) for level in levels}


def get_hierarchy_label(batch_labels: Any, hierarchy_level: int | list[int] | str) -> Any:
    """Select hierarchy level(s) (columns) of labels of shape (N, levels); ``"all"`` keeps every
    level, and 1-D labels have only level 0."""
    if hierarchy_level == "all":
        return batch_labels
    if batch_labels.ndim == 1:
        if hierarchy_level != 0:
            V.fail("get_hierarchy_label", "level 0 for 1-D labels", repr(hierarchy_level))
        return batch_labels
    return batch_labels[:, hierarchy_level]


def map_labels(label_map: LabelMapFn, labels: Any) -> Any:
    """Apply ``label_map`` to each level of ``labels`` (1-D: level 0); returns numpy."""
    arr = np.asarray(to_numpy(labels))
    if arr.ndim == 1:
        return label_map(arr, 0)
    return np.stack([label_map(arr[:, h], h) for h in range(arr.shape[1])], axis=1)


def process_label(
    labels: Any, hierarchy_level: int | list[int] | str, label_map: LabelMapFn
) -> Any:
    """Map the labels, select the level(s), and return a tensor."""
    return numpy_to_torch(get_hierarchy_label(map_labels(label_map, labels), hierarchy_level))


class LabelMapper:
    """Maps dataset labels to ``0 .. C-1`` (by sorted rank) per hierarchy level, when
    ``set_min_label_to_zero``; otherwise :meth:`map` returns its input unchanged."""

    def __init__(self, set_min_label_to_zero: bool = False, dataset_labels: Any = None) -> None:
        self.set_min_label_to_zero = set_min_label_to_zero
        if set_min_label_to_zero:
            if dataset_labels is None:
                V.fail("LabelMapper", "`dataset_labels` with set_min_label_to_zero=True", "None")
            self.label_map = get_label_map(dataset_labels)

    def map(self, labels: Any, hierarchy_level: int) -> Any:
        """Ranks of ``labels`` at ``hierarchy_level``, an int64 array (or ``labels`` unchanged)."""
        if not self.set_min_label_to_zero:
            return labels
        keys = np.array(list(self.label_map[hierarchy_level]))  # sorted: ranks are positions
        arr = np.asarray(to_numpy(labels))
        pos = np.searchsorted(keys, arr).clip(max=len(keys) - 1)
        unknown = keys[pos] != arr
        if unknown.any():
            V.fail(
                "LabelMapper",
                f"labels seen in `dataset_labels` (level {hierarchy_level})",
                f"unknown label {arr[unknown].reshape(-1)[0].item()!r}",
            )
        return pos.astype(np.int64)
