"""PML's ``logging_presets`` functions: build a record keeper and a hook container in one call."""

from __future__ import annotations

import os
from typing import Any

from .._logging import get_logger
from .._optional import optional_import
from ..distributed.runtime import is_main_process
from .hook_container import EmptyContainer, HookContainer
from .record_keeper import RecordKeeper
from .record_writer import RecordWriter


def get_record_keeper(
    csv_folder: str,
    tensorboard_folder: str | None = None,
    global_db_path: str | None = None,
    experiment_name: str | None = None,
    is_new_experiment: bool = True,
    save_figures: bool = False,
    save_lists: bool = False,
) -> tuple[RecordKeeper, RecordWriter | None, Any]:
    """``(record_keeper, record_writer, tensorboard_writer_or_None)``.

    Records go to ``<csv_folder>/<group>.csv``, ``<csv_folder>/logs.db`` (and ``global_db_path``),
    and to TensorBoard event files in ``tensorboard_folder`` (needs ``deepmetric[tensorboard]``).
    ``save_figures`` and ``save_lists`` are accepted for PML compatibility; figures are not drawn
    and only scalars are recorded (a warning says so when either is True).

    Under ``torch.distributed`` only rank 0 writes: the other ranks get a record keeper without
    writers, ``(RecordKeeper(), None, None)``, and no file or folder is created there.
    """
    if not is_main_process():
        return RecordKeeper(), None, None
    if save_figures or save_lists:
        get_logger().warning(
            "get_record_keeper: save_figures/save_lists are not supported; "
            "only scalars are recorded."
        )
    writer = RecordWriter(
        csv_folder,
        global_db_path=global_db_path,
        experiment_name=experiment_name,
        is_new_experiment=is_new_experiment,
    )
    tensorboard_writer = None
    if tensorboard_folder is not None:
        tb = optional_import("torch.utils.tensorboard", "Logging to TensorBoard")
        os.makedirs(tensorboard_folder, exist_ok=True)
        tensorboard_writer = tb.SummaryWriter(log_dir=tensorboard_folder)
    keeper = RecordKeeper(writer, tensorboard_writer)
    return keeper, writer, tensorboard_writer


def get_hook_container(record_keeper: RecordKeeper | None, **kwargs: Any) -> Any:
    """``HookContainer(record_keeper, **kwargs)``, or a warning and an ``EmptyContainer``."""
    if record_keeper:
        return HookContainer(record_keeper, **kwargs)
    get_logger().warning("No record_keeper: hooks will do nothing (EmptyContainer).")
    return EmptyContainer()
