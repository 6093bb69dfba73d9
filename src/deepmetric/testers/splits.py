"""Argument checks shared by the testers: which splits to evaluate against which, and which
label levels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._validation import fail

#: ``(query_split, [reference_splits])``
SplitSpec = tuple[str, list[str]]


def is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def check_label_level(owner: str, level: Any) -> None:
    """An int >= 0, a non-empty list of them, or ``"all"``."""
    if level == "all" or (is_int(level) and int(level) >= 0):
        return
    if isinstance(level, (list, tuple)) and level and all(is_int(x) and int(x) >= 0 for x in level):
        return
    fail(
        owner,
        "`label_hierarchy_level` to be an int >= 0, a non-empty list of them, or 'all'",
        repr(level),
    )


def check_splits(
    owner: str, dataset_dict: Mapping[str, Any], splits_to_eval: Any
) -> list[SplitSpec]:
    """``splits_to_eval`` checked against ``dataset_dict`` (None: each split against itself);
    a query split among its own references is moved first, since the queries must be the first
    reference rows."""
    if splits_to_eval is None:
        return [(k, [k]) for k in dataset_dict]
    if not isinstance(splits_to_eval, (list, tuple)):
        fail(
            owner,
            "`splits_to_eval` to be a list of (query_split, [reference_splits])",
            type(splits_to_eval).__name__,
            exc=TypeError,
        )
    out: list[SplitSpec] = []
    for item in splits_to_eval:
        if (
            not isinstance(item, (list, tuple))
            or len(item) != 2
            or not isinstance(item[1], (list, tuple))
        ):
            fail(
                owner,
                "each `splits_to_eval` item to be (query_split, [reference_splits])",
                repr(item),
                exc=TypeError,
            )
        query, refs = item[0], list(item[1])
        if not refs:
            fail(owner, f"at least one reference split for query split {query!r}", "[]")
        for name in [query, *refs]:
            if name not in dataset_dict:
                fail(
                    owner,
                    f"split names from dataset_dict {list(dataset_dict)}",
                    repr(name),
                )
        if query in refs:  # the queries must be the first reference rows
            refs = [query] + [r for r in refs if r != query]
        out.append((query, refs))
    queries = [q for q, _ in out]
    if len(set(queries)) != len(queries):
        fail(owner, "each query split at most once in `splits_to_eval`", repr(queries))
    return out
