"""``HookContainer``: the trainer/tester hooks that log, evaluate, save models and stop early.

Models are saved as ``<model_folder>/<key>_<suffix>.pth`` for every entry of the trainer's
``models``, ``optimizers``, ``lr_schedulers``, ``loss_funcs`` and ``mining_funcs`` dicts, where the
suffix is the epoch (only the latest kept) or ``best<epoch>`` (only the best kept). Every file is
written to a temporary name and renamed, so an interrupted save never leaves a truncated file.

Under ``torch.distributed`` only rank 0 records, saves models and picks the best epoch; every
rank runs the tester (a tester with ``distributed=True`` shares the work) and receives rank 0's
decision, so the plateau schedulers step alike and all ranks stop at the same epoch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .._logging import get_logger
from .._validation import fail
from ..distributed.runtime import broadcast_object, is_main_process
from ..model_files import (
    delete_dict_of_models,
    latest_version,
    load_dict_of_models,
    save_dict_of_models,
)
from .record_keeper import RecordKeeper

_OWNER = "HookContainer"
SAVEABLE_TRAINER_OBJECTS = ["models", "optimizers", "lr_schedulers", "loss_funcs", "mining_funcs"]


class HookContainer:
    """Hooks for PML-style trainers and testers, recording to a :class:`RecordKeeper`.

    Args:
        record_keeper: where records go.
        record_group_name_prefix: prefix of the accuracy group names.
        primary_metric: the accuracy that picks the best epoch (an ``AccuracyCalculator`` metric).
        validation_split_name: the split whose primary metric picks the best epoch.
        save_models: save the trainer's models at each test.
        log_freq: record training values every ``log_freq`` iterations.
    """

    def __init__(
        self,
        record_keeper: RecordKeeper,
        record_group_name_prefix: str | None = None,
        primary_metric: str = "mean_average_precision_at_r",
        validation_split_name: str = "val",
        save_models: bool = True,
        log_freq: int = 50,
    ) -> None:
        if not isinstance(record_keeper, RecordKeeper):
            fail(_OWNER, "a RecordKeeper", type(record_keeper).__name__, exc=TypeError)
        if isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1:
            fail(_OWNER, "`log_freq` to be an int >= 1", repr(log_freq))
        self.record_keeper = record_keeper
        self.record_group_name_prefix = record_group_name_prefix
        self.saveable_trainer_objects = list(SAVEABLE_TRAINER_OBJECTS)
        self.primary_metric = primary_metric
        self.validation_split_name = validation_split_name
        self.do_save_models = save_models
        self.log_freq = log_freq

    # ------------------------------------------------------------------ training
    def end_of_iteration_hook(self, trainer: Any) -> None:
        """Every ``log_freq`` iterations: losses, loss weights, loss/miner/model records, lr."""
        if trainer.iteration % self.log_freq != 0 or not is_main_process():
            return
        step = self._global_iteration(trainer)
        keeper = self.record_keeper
        source = getattr(trainer, "loss_tracker", trainer)  # PML 2.x trainers keep a loss_tracker
        keeper.update_records(
            dict(getattr(source, "losses", {}) or {}),
            step,
            input_group_name_for_non_objects="loss_histories",
        )
        weights = getattr(source, "loss_weights", None)
        if weights:
            keeper.update_records(
                dict(weights), step, input_group_name_for_non_objects="loss_weights"
            )
        keeper.update_records(dict(getattr(trainer, "loss_funcs", {}) or {}), step)
        keeper.update_records(dict(getattr(trainer, "mining_funcs", {}) or {}), step)
        keeper.update_records(dict(getattr(trainer, "models", {}) or {}), step)
        keeper.update_records(
            dict(getattr(trainer, "optimizers", {}) or {}),
            step,
            custom_attr_func=self.optimizer_custom_attr_func,
        )

    @staticmethod
    def _global_iteration(trainer: Any) -> int:
        getter = getattr(trainer, "get_global_iteration", None)
        return int(getter()) if callable(getter) else int(trainer.iteration)

    def end_of_epoch_hook(
        self,
        tester: Any,
        dataset_dict: Mapping[str, Any],
        model_folder: str,
        test_interval: int = 1,
        patience: int | None = None,
        splits_to_eval: Sequence[tuple[str, list[str]]] | None = None,
        test_collate_fn: Callable[..., Any] | None = None,
    ) -> Callable[[Any], bool]:
        """The hook ``hook(trainer) -> bool`` (False: stop training) that tests every
        ``test_interval`` epochs, saves the latest and best models and counts ``patience``."""
        metrics = tester.accuracy_calculator.get_curr_metrics()
        if self.primary_metric not in metrics:
            fail(
                _OWNER,
                f"`primary_metric` among the tester's metrics {metrics}",
                repr(self.primary_metric),
                fix="pass primary_metric=... or include it in the AccuracyCalculator",
            )
        if (
            isinstance(test_interval, bool)
            or not isinstance(test_interval, int)
            or test_interval < 1
        ):
            fail(_OWNER, "`test_interval` to be an int >= 1", repr(test_interval))
        if patience is not None and (
            isinstance(patience, bool) or not isinstance(patience, int) or patience < 0
        ):
            fail(_OWNER, "`patience` to be None or an int >= 0", repr(patience))
        if is_main_process():
            os.makedirs(model_folder, exist_ok=True)

        def actual_hook(trainer: Any) -> bool:
            if trainer.epoch % test_interval != 0:
                return True
            best_epoch = self.save_models_and_eval(
                trainer,
                dataset_dict,
                model_folder,
                test_interval,
                tester,
                splits_to_eval,
                test_collate_fn,
            )
            return self.patience_remaining(trainer.epoch, best_epoch, patience)

        return actual_hook

    def end_of_testing_hook(self, tester: Any) -> None:
        """Record each split's accuracies, with ``best_epoch`` and ``best_accuracy``."""
        if not is_main_process():
            return
        for split_name, accuracies in tester.all_accuracies.items():
            epoch = accuracies["epoch"]
            group = self.record_group_name(tester, split_name)
            self.record_keeper.update_records(
                dict(accuracies), epoch, input_group_name_for_non_objects=group
            )
            _, _, best_epoch, best_accuracy = self.is_new_best_accuracy(tester, split_name, epoch)
            best: dict[str, Any] = {"best_epoch": best_epoch, "best_accuracy": best_accuracy}
            self.record_keeper.update_records(best, epoch, input_group_name_for_non_objects=group)

    # ------------------------------------------------------------------ evaluation
    def save_models_and_eval(
        self,
        trainer: Any,
        dataset_dict: Mapping[str, Any],
        model_folder: str,
        test_interval: int,
        tester: Any,
        splits_to_eval: Sequence[tuple[str, list[str]]] | None = None,
        collate_fn: Callable[..., Any] | None = None,
    ) -> int | None:
        """Test, save records and models (latest and, on a new best, best); the best epoch."""
        epoch = trainer.epoch
        tester.test(
            dataset_dict,
            epoch,
            trainer.models["trunk"],
            trainer.models.get("embedder"),
            splits_to_eval,
            collate_fn,
        )
        # (is_new_best, current, best_epoch, best_accuracy): rank 0 decides, the others receive it
        decision: tuple[bool, float, int | None, float] = (False, 0.0, None, 0.0)
        prev_best_epoch = None
        if is_main_process():
            prev_best_epoch, _ = self.get_best_epoch_and_accuracy(
                tester, self.validation_split_name, ignore_epoch=(-1, epoch)
            )
            decision = self.is_new_best_accuracy(tester, self.validation_split_name, epoch)
            self.record_keeper.save_records()
        is_new_best, curr_accuracy, best_epoch, _ = broadcast_object(decision)
        step_plateau = getattr(trainer, "step_lr_plateau_schedulers", None)
        if callable(step_plateau):
            step_plateau(curr_accuracy)
        if self.do_save_models and is_main_process():
            self.save_models(trainer, model_folder, epoch, epoch - test_interval)
            if is_new_best:
                prev = None if prev_best_epoch is None else f"best{prev_best_epoch}"
                self.save_models(trainer, model_folder, f"best{epoch}", prev)
        return best_epoch

    def is_new_best_accuracy(
        self, tester: Any, split_name: str, epoch: int
    ) -> tuple[bool, float, int | None, float]:
        """``(is_new_best, current, best_epoch, best_accuracy)`` including ``epoch``."""
        curr = self.get_curr_primary_metric(tester, split_name)
        best_epoch, best_acc = self.get_best_epoch_and_accuracy(
            tester, split_name, ignore_epoch=(-1, epoch)
        )
        if best_epoch is None or curr > best_acc:
            return True, curr, epoch, curr
        return False, curr, best_epoch, best_acc

    def get_best_epoch_and_accuracy(
        self, tester: Any, split_name: str, ignore_epoch: Sequence[int] = (-1,)
    ) -> tuple[int | None, float]:
        """The recorded epoch with the best primary metric (earliest on ties), or ``(None, 0)``."""
        record = self.record_keeper.get_record(self.record_group_name(tester, split_name))
        key = self._primary_key(record)
        if key is None:
            return None, 0
        best: tuple[int | None, float] = (None, 0)
        for epoch, acc in zip(record["epoch"], record[key], strict=True):
            if epoch is None or acc is None or epoch in ignore_epoch:
                continue
            if best[0] is None or acc > best[1]:
                best = (int(epoch), float(acc))
        return best

    def get_accuracies_of_epoch(
        self, tester: Any, split_name: str, epoch: int, select_all: bool = True
    ) -> list[dict[str, Any]]:
        """The recorded accuracy rows of ``epoch`` (all columns, or only the primary metric)."""
        record = self.record_keeper.get_record(self.record_group_name(tester, split_name))
        rows = [
            {k: v[i] for k, v in record.items()}
            for i, e in enumerate(record.get("epoch", []))
            if e == epoch
        ]
        key = self._primary_key(record)
        if not select_all and key is not None:
            rows = [{key: r[key]} for r in rows]
        return rows

    def get_accuracy_history(
        self,
        tester: Any,
        split_name: str,
        return_all_metrics: bool = False,
        metrics: Sequence[str] = (),
    ) -> dict[str, list[Any]]:
        """``{"epoch": [...], <metric key>: [...]}`` for the primary metric (and ``metrics``)."""
        record = self.record_keeper.get_record(self.record_group_name(tester, split_name))
        if not record:
            return {}
        if return_all_metrics:
            return {k: v for k, v in record.items() if k != "global_iteration"}
        wanted = [self.primary_metric, *metrics]
        out = {"epoch": record["epoch"]}
        for metric in wanted:
            key = self._key_for(record, metric)
            if key is not None:
                out[key] = record[key]
        return out

    def get_loss_history(self, loss_names: Sequence[str] = ()) -> dict[str, list[Any]]:
        record = self.record_keeper.get_record("loss_histories")
        if loss_names:
            return {k: v for k, v in record.items() if k in loss_names}
        return {k: v for k, v in record.items() if k != "global_iteration"}

    def get_curr_primary_metric(self, tester: Any, split_name: str) -> float:
        accuracies = tester.all_accuracies[split_name]
        key = self._key_for(accuracies, self.primary_metric)
        if key is None:
            fail(
                _OWNER,
                f"the primary metric {self.primary_metric!r} in the accuracies of {split_name!r}",
                f"keys {sorted(accuracies)}",
            )
        return float(accuracies[key])

    @staticmethod
    def _key_for(columns: Mapping[str, Any], metric: str) -> str | None:
        """``AVERAGE_<metric>`` if present, else the first ``<metric>_level<L>``."""
        if f"AVERAGE_{metric}" in columns:
            return f"AVERAGE_{metric}"
        levels = sorted(k for k in columns if k.startswith(f"{metric}_level"))
        return levels[0] if levels else None

    def _primary_key(self, record: Mapping[str, Any]) -> str | None:
        if "epoch" not in record:
            return None
        return self._key_for(record, self.primary_metric)

    @staticmethod
    def patience_remaining(epoch: int, best_epoch: int | None, patience: int | None) -> bool:
        """False once more than ``patience`` epochs passed since the best epoch."""
        if patience is not None and best_epoch is not None and epoch - best_epoch > patience:
            get_logger().info(
                "Validation accuracy has plateaued for %d epochs: stopping.", epoch - best_epoch
            )
            return False
        return True

    # ------------------------------------------------------------------ models
    def _saveable(self, trainer: Any) -> list[dict[str, Any]]:
        return [dict(getattr(trainer, name, None) or {}) for name in self.saveable_trainer_objects]

    def save_models(
        self, trainer: Any, model_folder: str, curr_suffix: Any, prev_suffix: Any = None
    ) -> None:
        """Save every saveable object as ``<key>_<curr_suffix>.pth``; delete ``prev_suffix``."""
        for objects in self._saveable(trainer):
            save_dict_of_models(objects, curr_suffix, model_folder)
            if prev_suffix is not None and str(prev_suffix) != str(curr_suffix):
                delete_dict_of_models(objects, prev_suffix, model_folder)

    def load_latest_saved_models(
        self,
        trainer: Any,
        model_folder: str,
        device: torch.device | str | None = None,
        best: bool = False,
    ) -> int:
        """Load the latest (or best) saved objects into ``trainer``; the epoch to resume at.

        ``device=None`` maps the tensors to cuda when available, else cpu (as PML).
        """
        if device is None:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        epoch, suffix = latest_version(model_folder, "trunk_*.pth", best)
        if suffix is None:
            get_logger().info("No saved models in %s: starting from scratch.", model_folder)
            return 1
        for objects in self._saveable(trainer):
            load_dict_of_models(objects, suffix, model_folder, device, log_if_successful=True)
        return epoch + 1

    # ------------------------------------------------------------------ naming
    def base_record_group_name(self, tester: Any) -> str:
        base = tester.description_suffixes("accuracies")
        return f"{self.record_group_name_prefix}_{base}" if self.record_group_name_prefix else base

    def record_group_name(self, tester: Any, split_name: str) -> str:
        refs = list(getattr(tester, "reference_split_names", {}).get(split_name, [split_name]))
        refs_name = (
            "self" if refs == [split_name] else "_and_".join(sorted(r.upper() for r in refs))
        )
        return f"{self.base_record_group_name(tester)}_{split_name.upper()}_vs_{refs_name}"

    @staticmethod
    def optimizer_custom_attr_func(optimizer: Any) -> dict[str, Any]:
        groups = getattr(optimizer, "param_groups", None)
        return {"lr": groups[0]["lr"]} if groups else {}


class EmptyContainer:
    """What :func:`get_hook_container` returns without a record keeper: hooks that do nothing."""

    end_of_iteration_hook = None
    end_of_testing_hook = None

    def end_of_epoch_hook(self, *args: Any, **kwargs: Any) -> None:
        return None
