"""Training/testing hooks and the record keeper that logs to CSV, SQLite and TensorBoard."""

from __future__ import annotations

from .hook_container import EmptyContainer, HookContainer
from .presets import get_hook_container, get_record_keeper
from .record_keeper import RecordKeeper
from .record_writer import RecordWriter

__all__ = [
    "EmptyContainer",
    "HookContainer",
    "RecordKeeper",
    "RecordWriter",
    "get_hook_container",
    "get_record_keeper",
]
