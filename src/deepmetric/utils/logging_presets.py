"""PML-compatible ``utils.logging_presets``: re-exports of :mod:`deepmetric.hooks` only.

No ``record_keeper`` package is needed: records are written by deepmetric itself.
"""

from __future__ import annotations

from ..hooks.hook_container import EmptyContainer, HookContainer
from ..hooks.presets import get_hook_container, get_record_keeper

__all__ = ["EmptyContainer", "HookContainer", "get_hook_container", "get_record_keeper"]
