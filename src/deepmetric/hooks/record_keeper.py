"""``RecordKeeper``: walks objects for their declared records and hands scalars to the writers.

Naming follows PML's record-keeper: an object under key ``k`` of a dict is the group
``"<k>_<ClassName>"`` (``"metric_loss_TripletMarginLoss"``); a child module ``m`` of a recorded
``nn.Module`` is ``"<parent>_modules_<m>_<ClassName>"``
(``"metric_loss_TripletMarginLoss_modules_distance_LpDistance"``). An object's records are the
attributes named in its ``_record_these`` and ``_record_these_stats`` lists. Plain values (numbers,
one-element tensors) of a dict are recorded under ``input_group_name_for_non_objects``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .._validation import fail
from ..records import RECORDABLE_LIST_NAMES
from .record_writer import RecordWriter

DEFAULT_ATTRIBUTES = RECORDABLE_LIST_NAMES


def to_scalar(value: Any) -> float | int | None:
    """A loggable scalar for ``value``, or None when it is not one (strings, big tensors, None)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        out = value.detach().reshape(()).item()
        return int(out) if isinstance(out, bool) else out
    if hasattr(value, "item") and getattr(value, "size", None) == 1:  # numpy scalars
        out = value.item()
        return out if isinstance(out, (int, float)) else None
    return None


class RecordKeeper:
    """Collects records from objects and writes them to a :class:`RecordWriter` and TensorBoard.

    Args:
        record_writer: CSV/SQLite writer (None: keep nothing on disk).
        tensorboard_writer: anything with ``add_scalar(tag, value, step)`` (e.g. ``SummaryWriter``).
        attributes_to_search_for: list attributes naming what to record on each object.
    """

    def __init__(
        self,
        record_writer: RecordWriter | None = None,
        tensorboard_writer: Any = None,
        attributes_to_search_for: Sequence[str] = DEFAULT_ATTRIBUTES,
    ) -> None:
        self.record_writer = record_writer
        self.tensorboard_writer = tensorboard_writer
        self.attributes_to_search_for = list(attributes_to_search_for)

    # ------------------------------------------------------------------ collecting
    def update_records(
        self,
        record_these: Mapping[str, Any],
        global_iteration: int,
        custom_attr_func: Callable[[Any], Mapping[str, Any]] | None = None,
        input_group_name_for_non_objects: str | None = None,
        recursive_types: Sequence[type] = (torch.nn.Module,),
    ) -> None:
        """Record every object (and plain value) of ``record_these`` at ``global_iteration``."""
        if not isinstance(record_these, Mapping):
            fail(
                "RecordKeeper",
                "`record_these` to be a dict",
                type(record_these).__name__,
                exc=TypeError,
            )
        plain: dict[str, Any] = {}
        for key, obj in record_these.items():
            scalar = to_scalar(obj)
            if scalar is not None:
                plain[key] = scalar
            elif obj is not None and not isinstance(obj, str):
                group = f"{key}_{type(obj).__name__}"
                self._record_object(
                    group, obj, global_iteration, custom_attr_func, tuple(recursive_types)
                )
        if plain:
            if input_group_name_for_non_objects is None:
                fail(
                    "RecordKeeper",
                    "`input_group_name_for_non_objects` when recording plain values",
                    f"values for {sorted(plain)}",
                )
            self.append(input_group_name_for_non_objects, global_iteration, plain)

    def _record_object(
        self,
        group: str,
        obj: Any,
        iteration: int,
        custom_attr_func: Callable[[Any], Mapping[str, Any]] | None,
        recursive_types: tuple[type, ...],
    ) -> None:
        values: dict[str, Any] = {}
        for attr in self.attributes_to_search_for:
            for name in getattr(obj, attr, None) or ():
                scalar = to_scalar(getattr(obj, name, None))
                if scalar is not None:
                    values[name] = scalar
        if custom_attr_func is not None:
            for name, value in custom_attr_func(obj).items():
                scalar = to_scalar(value)
                if scalar is not None:
                    values[name] = scalar
        if values:
            self.append(group, iteration, values)
        if (
            recursive_types
            and isinstance(obj, recursive_types)
            and isinstance(obj, torch.nn.Module)
        ):
            for child_name, child in obj.named_children():
                child_group = f"{group}_modules_{child_name}_{type(child).__name__}"
                self._record_object(child_group, child, iteration, None, recursive_types)

    def append(self, group: str, iteration: int, values: Mapping[str, Any]) -> None:
        """Write already-scalar ``values`` to every writer."""
        clean = dict(values)
        if self.record_writer is not None:
            self.record_writer.append(group, iteration, clean)
        if self.tensorboard_writer is not None:
            for name, value in clean.items():
                self.tensorboard_writer.add_scalar(f"{group}/{name}", value, iteration)

    # ------------------------------------------------------------------ reading / saving
    def save_records(self) -> None:
        if self.record_writer is not None:
            self.record_writer.save()
        if self.tensorboard_writer is not None:
            self.tensorboard_writer.flush()

    def get_record(self, group: str) -> dict[str, list[Any]]:
        if self.record_writer is None:
            return {}
        return self.record_writer.get_record(group)

    def table_exists(self, group: str) -> bool:
        return self.record_writer is not None and group in self.record_writer.records

    def query(
        self, sql: str, values: tuple[Any, ...] = (), use_global_db: bool = False
    ) -> list[dict[str, Any]]:
        if self.record_writer is None:
            fail("RecordKeeper", "a record_writer to query", "None")
        return self.record_writer.query(sql, values, use_global_db)

    def close(self) -> None:
        self.save_records()
        if self.tensorboard_writer is not None:
            self.tensorboard_writer.close()
