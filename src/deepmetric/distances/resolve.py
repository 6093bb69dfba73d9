"""Resolve a ``distance=`` argument given as an instance, a class or a registered name."""

from __future__ import annotations

from typing import Any

from .._registry import DISTANCES
from .base_distance import BaseDistance


def resolve_distance(value: Any, owner: str) -> BaseDistance:
    """``LpDistance()``, ``LpDistance`` and ``"LpDistance"`` all give an ``LpDistance`` instance."""
    if isinstance(value, str):
        value = DISTANCES.get(value)
    if isinstance(value, type) and issubclass(value, BaseDistance):
        value = value()
    if not isinstance(value, BaseDistance):
        raise TypeError(
            f"{owner}: expected `distance` to be a BaseDistance instance, class or name, "
            f"got {type(value).__name__}."
        )
    return value


def attach_distance(owner: Any, distance: Any) -> None:
    """Set ``owner.distance`` from a ``distance=`` argument (None: ``owner.get_default_distance()``)
    and let ``owner.check_distance`` reject distances it cannot work with."""
    if distance is None:
        owner.distance = owner.get_default_distance()
    else:
        owner.distance = resolve_distance(distance, type(owner).__name__)
    owner.check_distance(owner.distance)
