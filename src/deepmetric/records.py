"""``ModuleWithRecords``: the root of every component, holding declared hyperparameters and stats.

Hyperparameters worth logging are *recordable*; diagnostics computed during ``forward`` are *stats*.
As in PML, stat attributes exist only when the component collects stats, so
``getattr(obj, "pos_pair_dist", None) is None`` tells that stats are off.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from . import config

#: the list attributes naming what to record on an object: hyperparameters, then stats
RECORDABLE_LIST_NAMES = ("_record_these", "_record_these_stats")


def list_of_recordable_attributes_list_names() -> list[str]:
    return list(RECORDABLE_LIST_NAMES)


def add_to_recordable_attributes(
    input_obj: Any,
    name: str | None = None,
    list_of_names: list[str] | None = None,
    is_stat: bool = False,
) -> None:
    """Append ``name`` / ``list_of_names`` to ``input_obj``'s ``_record_these`` (or, for stats,
    ``_record_these_stats``) list, creating it if needed; a name not yet assigned reads 0."""
    list_name = RECORDABLE_LIST_NAMES[1 if is_stat else 0]
    if not isinstance(getattr(input_obj, list_name, None), list):
        setattr(input_obj, list_name, [])
    target = getattr(input_obj, list_name)
    for n in ([name] if name is not None else []) + list(list_of_names or []):
        if n not in target:
            target.append(n)
        if not hasattr(input_obj, n):
            setattr(input_obj, n, 0)


def reset_stats(input_obj: Any) -> None:
    """Set every stat named in ``input_obj._record_these_stats`` back to 0."""
    for name in getattr(input_obj, RECORDABLE_LIST_NAMES[1], None) or ():
        setattr(input_obj, name, 0)


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
        add_to_recordable_attributes(self, name, list_of_names, is_stat)

    def reset_stats(self) -> None:
        reset_stats(self)

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
