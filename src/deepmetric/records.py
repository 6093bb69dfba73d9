"""``ModuleWithRecords``: the root of every component, holding declared hyperparameters and stats.

Hyperparameters worth logging are *recordable*; diagnostics computed during ``forward`` are *stats*.
As in PML, stat attributes exist only when the component collects stats, so
``getattr(obj, "pos_pair_dist", None) is None`` tells that stats are off.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from . import config


class ModuleWithRecords(torch.nn.Module):
    """Base module with declared recordable attributes and stats.

    Subclasses declare ``recordable: ClassVar[tuple[str, ...]]`` and ``stats`` the same way;
    declarations accumulate along the class hierarchy. ``collect_stats=None`` reads
    :func:`deepmetric.config.default_collect_stats` at construction time.
    """

    recordable: ClassVar[tuple[str, ...]] = ()
    stats: ClassVar[tuple[str, ...]] = ()

    def __init__(self, collect_stats: bool | None = None) -> None:
        super().__init__()
        self.collect_stats = (
            config.default_collect_stats() if collect_stats is None else collect_stats
        )
        self._record_these: list[str] = []
        self._record_these_stats: list[str] = []
        for cls in reversed(type(self).__mro__):
            self.add_to_recordable_attributes(
                list_of_names=list(cls.__dict__.get("recordable", ()))
            )
            self.add_to_recordable_attributes(
                list_of_names=list(cls.__dict__.get("stats", ())), is_stat=True
            )

    def add_to_recordable_attributes(
        self, name: str | None = None, list_of_names: list[str] | None = None, is_stat: bool = False
    ) -> None:
        """Register names to record; a name not yet assigned reads 0 (PML semantics)."""
        if is_stat and not self.collect_stats:
            return
        target = self._record_these_stats if is_stat else self._record_these
        for n in ([name] if name is not None else []) + list(list_of_names or []):
            if n not in target:
                target.append(n)
            if not hasattr(self, n):
                setattr(self, n, 0)

    def reset_stats(self) -> None:
        for name in self._record_these_stats:
            setattr(self, name, 0)

    def record_stat(self, name: str, value: Any) -> None:
        """Store a stat (detached) when stats are on; an undeclared name is a bug and raises."""
        if not self.collect_stats:
            return
        if name not in self._record_these_stats:
            raise AttributeError(
                f"{type(self).__name__}: stat {name!r} was not declared in `stats`."
            )
        setattr(self, name, value.detach() if isinstance(value, torch.Tensor) else value)

    def extra_repr(self) -> str:
        shown = []
        for name in self._record_these:
            value = getattr(self, name, None)
            if value is None or isinstance(value, (int, float, bool, str)):
                shown.append(f"{name}={value!r}")
        return ", ".join(shown)
