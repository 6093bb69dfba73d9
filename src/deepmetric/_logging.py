"""The library logger. Its name defaults to ``"deepmetric"``; :func:`set_logger_name` changes it
for the current context (a ``ContextVar``, like :mod:`deepmetric.config`), which is what
``utils.common_functions.LOGGER_NAME`` / ``LOGGER`` read."""

from __future__ import annotations

import logging
from contextvars import ContextVar

from ._validation import fail

DEFAULT_LOGGER_NAME = "deepmetric"
_LOGGER_NAME: ContextVar[str] = ContextVar("deepmetric_logger_name", default=DEFAULT_LOGGER_NAME)


def logger_name() -> str:
    return _LOGGER_NAME.get()


def set_logger_name(name: str) -> None:
    """Log under ``name`` from now on (in the current context)."""
    if not isinstance(name, str):
        fail("set_logger_name", "a str", type(name).__name__, exc=TypeError)
    if not name:
        fail("set_logger_name", "a non-empty name", "''")
    _LOGGER_NAME.set(name)


def get_logger() -> logging.Logger:
    """The library logger under the current name."""
    return logging.getLogger(_LOGGER_NAME.get())
