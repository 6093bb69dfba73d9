"""Library-wide defaults, scoped with context managers instead of module globals.

``collect_stats`` decides whether components created while it is active record statistics
(the PML default for ``collect_stats=None``). ``utils.common_functions.COLLECT_STATS`` reads and
writes the same default for code written against PML.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_COLLECT_STATS: ContextVar[bool] = ContextVar("deepmetric_collect_stats", default=False)


def default_collect_stats() -> bool:
    """The value a component uses when constructed with ``collect_stats=None``."""
    return _COLLECT_STATS.get()


def set_default_collect_stats(value: bool) -> None:
    """Set the default for the current context (prefer the :func:`collect_stats` block)."""
    _COLLECT_STATS.set(bool(value))


@contextlib.contextmanager
def collect_stats(enabled: bool = True) -> Iterator[None]:
    """Components constructed inside this block record stats unless told otherwise.

    >>> from deepmetric import config, miners
    >>> with config.collect_stats():
    ...     miner = miners.TripletMarginMiner()  # doctest: +SKIP
    """
    token = _COLLECT_STATS.set(bool(enabled))
    try:
        yield
    finally:
        _COLLECT_STATS.reset(token)
