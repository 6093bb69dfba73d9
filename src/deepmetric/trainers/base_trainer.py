"""``BaseTrainer``: the training loop shared by every trainer (PML 2.x constructor and dict keys).

Beyond PML: ``use_amp`` (autocast + ``GradScaler`` on CUDA, bfloat16 autocast on CPU), a warning
when a loss learns parameters that no optimizer holds, tqdm progress bars (``show_progress``) and
checkpoint/resume (``state_dict``, ``load_state_dict``, ``save_checkpoint``, ``load_checkpoint``).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader

from .._validation import fail
from ..distributed.ddp import unwrap_model
from ..distributed.runtime import barrier, is_main_process
from ..samplers._common import WholeBatchSampler

logger = logging.getLogger("deepmetric")

SCHEDULER_SUFFIXES = {
    "iteration": "_scheduler_by_iteration",
    "epoch": "_scheduler_by_epoch",
    "plateau": "_scheduler_by_plateau",
}


def _identity_hook(*args: Any, **kwargs: Any) -> None:
    return None


def _default_getter(batch: Any) -> Any:
    return batch


def not_set_up(trainer: object, name: str) -> RuntimeError:
    """The error for internal state that the trainer's set-up should have created."""
    return RuntimeError(f"{type(trainer).__name__}: `{name}` is not set up (set-up has not run).")


class _LossTracker:
    """Holds the current value of each named loss and their weighted sum ``total_loss``."""

    def __init__(self, loss_names: list[str]) -> None:
        self.loss_names = list(loss_names)
        if "total_loss" not in self.loss_names:
            self.loss_names.append("total_loss")
        self.losses: dict[str, Any] = {name: 0 for name in self.loss_names}

    def update(self, loss_weights: Mapping[str, float]) -> None:
        total: Any = 0
        for name in self.losses:
            if name == "total_loss":
                continue
            self.losses[name] = self.losses[name] * loss_weights.get(name, 1)
            total = total + self.losses[name]
        self.losses["total_loss"] = total

    def zero_losses(self) -> None:
        for name in self.losses:
            self.losses[name] = 0


class BaseTrainer:
    """Trains ``models`` with ``loss_funcs`` (and optional ``mining_funcs``) on ``dataset``.

    Accepts PML 2.x order ``(models, optimizers, batch_size, loss_funcs, dataset, mining_funcs)``
    and PML 1.x order ``(models, optimizers, batch_size, loss_funcs, mining_funcs, dataset)``: the
    dict of mining functions is told from the dataset by type.

    Args (beyond PML's): ``use_amp`` — mixed precision (float16 + GradScaler on CUDA, bfloat16
    autocast on CPU); ``show_progress`` — tqdm bar per epoch.
    """

    # regex patterns per dict: (allowed, essential, important -> warn if missing)
    owner = "BaseTrainer"

    def __init__(
        self,
        models: Mapping[str, torch.nn.Module],
        optimizers: Mapping[str, Any],
        batch_size: int,
        loss_funcs: Mapping[str, Any],
        dataset: Any = None,
        mining_funcs: Any = None,
        iterations_per_epoch: int | None = None,
        data_device: Any = None,
        dtype: torch.dtype | None = None,
        loss_weights: Mapping[str, float] | None = None,
        sampler: Any = None,
        collate_fn: Callable[..., Any] | None = None,
        lr_schedulers: Mapping[str, Any] | None = None,
        gradient_clippers: Mapping[str, Callable[[], Any]] | None = None,
        freeze_these: Any = (),
        freeze_trunk_batchnorm: bool = False,
        label_hierarchy_level: int = 0,
        dataloader_num_workers: int = 2,
        data_and_label_getter: Callable[[Any], Any] | None = None,
        dataset_labels: Any = None,
        set_min_label_to_zero: bool = False,
        end_of_iteration_hook: Callable[[Any], Any] | None = None,
        end_of_epoch_hook: Callable[[Any], Any] | None = None,
        use_amp: bool = False,
        show_progress: bool = True,
    ) -> None:
        self.owner = type(self).__name__
        dataset, mining_funcs = self._resolve_dataset_and_miners(dataset, mining_funcs)
        for name, value in (("models", models), ("optimizers", optimizers)):
            if not isinstance(value, Mapping):
                fail(self.owner, f"`{name}` to be a dict", type(value).__name__, exc=TypeError)
        if not isinstance(loss_funcs, Mapping):
            fail(self.owner, "`loss_funcs` to be a dict", type(loss_funcs).__name__, exc=TypeError)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            fail(self.owner, "`batch_size` to be a positive int", repr(batch_size))
        self.models: dict[str, torch.nn.Module] = dict(models)
        self.optimizers: dict[str, Any] = dict(optimizers)
        self.batch_size = batch_size
        self.loss_funcs: dict[str, Any] = dict(loss_funcs)
        self.dataset = dataset
        self.mining_funcs: dict[str, Any] = dict(mining_funcs)
        self.iterations_per_epoch = iterations_per_epoch
        self.data_device = data_device
        self.dtype = dtype
        self.loss_weights = None if loss_weights is None else dict(loss_weights)
        self.sampler = sampler
        self.collate_fn = collate_fn
        self.lr_schedulers = None if lr_schedulers is None else dict(lr_schedulers)
        self.gradient_clippers = dict(gradient_clippers or {})
        self.freeze_these = tuple(freeze_these)
        self.freeze_trunk_batchnorm = freeze_trunk_batchnorm
        self.label_hierarchy_level = label_hierarchy_level
        self.dataloader_num_workers = dataloader_num_workers
        self.data_and_label_getter = data_and_label_getter
        self.dataset_labels = dataset_labels
        self.set_min_label_to_zero = set_min_label_to_zero
        self.end_of_iteration_hook = end_of_iteration_hook
        self.end_of_epoch_hook = end_of_epoch_hook
        self.use_amp = use_amp
        self.show_progress = show_progress
        self.epoch = 0
        self.iteration = 0
        self.dataloader: DataLoader[Any] | None = None
        self.dataloader_iter: Iterator[Any] | None = None
        self.loss_names = list(self.loss_funcs.keys())
        self.allowed_lr_scheduler_key_suffixes = dict(SCHEDULER_SUFFIXES)
        self.custom_setup()
        self.verify_dict_keys()
        self.initialize_models()
        self.initialize_data_device()
        self.initialize_label_mapper()
        self.initialize_loss_tracker()
        self.initialize_loss_weights()
        self.initialize_data_and_label_getter()
        self.initialize_hooks()
        self.initialize_lr_schedulers()
        self.initialize_amp()
        self._unoptimized_warned = False
        self._pending_resume: dict[str, Any] | None = None
        self._batches_from_iter = 0
        self._iter_start_state: dict[str, Any] | None = None

    # ------------------------------------------------------------------ argument handling
    def _resolve_dataset_and_miners(self, dataset: Any, mining_funcs: Any) -> tuple[Any, Any]:
        if isinstance(dataset, Mapping):
            if mining_funcs is None or isinstance(mining_funcs, Mapping):
                fail(
                    self.owner,
                    "a dataset (PML 2.x order: loss_funcs, dataset, mining_funcs; or PML 1.x "
                    "order: loss_funcs, mining_funcs, dataset)",
                    "a dict where the dataset should be and no dataset",
                    "Pass the dataset as the 5th or 6th positional argument or as `dataset=`.",
                    TypeError,
                )
            dataset, mining_funcs = mining_funcs, dataset  # PML 1.x order
        if dataset is None:
            fail(self.owner, "a `dataset`", "None", exc=TypeError)
        if not (hasattr(dataset, "__getitem__") or hasattr(dataset, "__iter__")):
            fail(
                self.owner,
                "`dataset` to be a torch Dataset (with __getitem__ and __len__)",
                type(dataset).__name__,
                exc=TypeError,
            )
        if mining_funcs is None:
            mining_funcs = {}
        if not isinstance(mining_funcs, Mapping):
            fail(
                self.owner,
                "`mining_funcs` to be a dict such as {'tuple_miner': miner}",
                type(mining_funcs).__name__,
                exc=TypeError,
            )
        return dataset, mining_funcs

    # ------------------------------------------------------------------ schema
    def schema(self) -> dict[str, dict[str, list[str]]]:
        """Regex key schema per dict: ``allowed``, ``essential`` and ``important`` patterns."""
        model_keys = ["trunk", "embedder"]
        return {
            "models": {"allowed": model_keys, "essential": ["trunk"], "important": ["embedder"]},
            "loss_funcs": {
                "allowed": ["metric_loss"],
                "essential": [],
                "important": ["metric_loss"],
            },
            "mining_funcs": {
                "allowed": ["subset_batch_miner", "tuple_miner"],
                "essential": [],
                "important": [],
            },
        }

    def _check_keys(self, name: str, keys: list[str], spec: Mapping[str, list[str]]) -> None:
        def match(key: str, patterns: list[str]) -> bool:
            return any(re.fullmatch(p, key) for p in patterns)

        for key in keys:
            if not match(key, spec["allowed"]):
                fail(
                    self.owner,
                    f"`{name}` keys among {spec['allowed']}",
                    repr(key),
                    exc=ValueError,
                )
        for pattern in spec["essential"]:
            if not any(re.fullmatch(pattern, k) for k in keys):
                fail(
                    self.owner, f"`{name}` to contain the key {pattern!r}", sorted(keys).__repr__()
                )
        for pattern in spec.get("important", []):
            if not any(re.fullmatch(pattern, k) for k in keys):
                logger.warning("%s: %s has no key %r", self.owner, name, pattern)

    def verify_dict_keys(self) -> None:
        schema = self.schema()
        self._check_keys("models", list(self.models), schema["models"])
        self._check_keys("loss_funcs", list(self.loss_funcs), schema["loss_funcs"])
        miner_keys = [k for k in self.mining_funcs if k not in self._internal_mining_keys()]
        self._check_keys("mining_funcs", miner_keys, schema["mining_funcs"])
        owners = list(self.models) + list(self.loss_funcs)
        for key in self.optimizers:
            if not any(key == f"{o}_optimizer" for o in owners):
                fail(self.owner, "`optimizers` keys '<model or loss key>_optimizer'", repr(key))
        for model in self.models:
            if f"{model}_optimizer" not in self.optimizers and model not in self.freeze_these:
                logger.warning("%s: optimizers has no key %r", self.owner, f"{model}_optimizer")
        if self.loss_weights is not None and set(self.loss_weights) != set(self.loss_names):
            fail(
                self.owner,
                f"`loss_weights` keys to be exactly {sorted(self.loss_names)}",
                repr(sorted(self.loss_weights)),
            )
        suffixes = tuple(SCHEDULER_SUFFIXES.values())
        for key in self.lr_schedulers or {}:
            if not any(key == f"{o}{s}" for o in owners for s in suffixes):
                fail(
                    self.owner,
                    "`lr_schedulers` keys '<model or loss key>' + one of " + ", ".join(suffixes),
                    repr(key),
                )
        for key in self.gradient_clippers:
            if not any(key == f"{o}_grad_clipper" for o in owners):
                fail(
                    self.owner,
                    "`gradient_clippers` keys '<model or loss key>_grad_clipper'",
                    repr(key),
                )
        self.verify_freeze_these_keys()

    def _internal_mining_keys(self) -> tuple[str, ...]:
        return ()

    def verify_freeze_these_keys(self) -> None:
        owners = set(self.models) | set(self.loss_funcs)
        for key in self.freeze_these:
            if key not in owners:
                fail(self.owner, f"`freeze_these` entries among {sorted(owners)}", repr(key))
            if self.optimizers.get(f"{key}_optimizer") is not None:
                logger.warning("%s: %r is frozen but has an optimizer", self.owner, key)

    # ------------------------------------------------------------------ initialisation
    def custom_setup(self) -> None:
        """Hook for subclasses, called before the keys are checked."""

    def initialize_models(self) -> None:
        if "embedder" not in self.models:
            self.models["embedder"] = torch.nn.Identity()

    def initialize_data_device(self) -> None:
        if self.data_device is None:
            self.data_device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.data_device = torch.device(self.data_device)

    def initialize_label_mapper(self) -> None:
        self._label_values: torch.Tensor | None = None
        if self.set_min_label_to_zero:
            labels = self.dataset_labels
            if labels is None:
                labels = getattr(self.dataset, "targets", None)
            if labels is None:
                fail(
                    self.owner,
                    "`dataset_labels` when set_min_label_to_zero=True",
                    "None",
                    "Pass dataset_labels=<all labels of the dataset>.",
                )
            arr = torch.as_tensor(np.asarray(labels))
            if arr.ndim == 1:
                arr = arr[:, None]
            self._label_values = [torch.unique(arr[:, i]) for i in range(arr.shape[1])]  # type: ignore[assignment]

    def label_mapper(self, labels: torch.Tensor, level: int) -> torch.Tensor:
        if self._label_values is None:
            return labels
        values = self._label_values[level]  # type: ignore[index]
        return torch.searchsorted(values.to(labels.device), labels)

    def initialize_loss_tracker(self) -> None:
        self.loss_tracker = _LossTracker(self.loss_names)
        self.losses = self.loss_tracker.losses

    def initialize_loss_weights(self) -> None:
        if self.loss_weights is None:
            self.loss_weights = {k: 1 for k in self.loss_names}

    def initialize_data_and_label_getter(self) -> None:
        if self.data_and_label_getter is None:
            self.data_and_label_getter = _default_getter

    def initialize_hooks(self) -> None:
        if self.end_of_iteration_hook is None:
            self.end_of_iteration_hook = _identity_hook
        if self.end_of_epoch_hook is None:
            self.end_of_epoch_hook = _identity_hook

    def initialize_lr_schedulers(self) -> None:
        if self.lr_schedulers is None:
            self.lr_schedulers = {}

    def initialize_amp(self) -> None:
        device = torch.device(self.data_device)
        self._amp_device_type = device.type
        self._amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=bool(self.use_amp and device.type == "cuda")
        )

    # ------------------------------------------------------------------ data
    def initialize_dataloader(self) -> None:
        kwargs: dict[str, Any] = {
            "num_workers": self.dataloader_num_workers,
            "collate_fn": self.collate_fn,
        }
        if isinstance(self.sampler, (BatchSampler, WholeBatchSampler)):
            self._check_batch_sampler_size()
            self.dataloader = DataLoader(self.dataset, batch_sampler=self.sampler, **kwargs)
        else:
            self.dataloader = DataLoader(
                self.dataset,
                batch_size=self.batch_size,
                sampler=self.sampler,
                drop_last=True,
                shuffle=self.sampler is None,
                **kwargs,
            )
        if len(self.dataloader) == 0 and self.iterations_per_epoch is None:
            fail(
                self.owner,
                "a dataset with at least `batch_size` items",
                f"{len(self.dataset)} items for batch_size={self.batch_size}",
            )
        self.dataloader_iter = None
        self._batches_from_iter = 0

    def _check_batch_sampler_size(self) -> None:
        size = getattr(self.sampler, "batch_size", self.batch_size)
        if size != self.batch_size:
            fail(
                self.owner,
                f"the batch sampler's batch_size to equal the trainer's batch_size "
                f"({self.batch_size}): the sampler's batches are used as they come",
                f"{type(self.sampler).__name__} with batch_size={size}",
                "Pass the same batch_size to both (per rank, under torch.distributed).",
            )

    def _set_sampler_epoch(self) -> None:
        """Samplers with ``set_epoch`` (``DistributedSampler``, ``DistributedMPerClassSampler``)
        get the epoch, so that every epoch has a new order that all ranks agree on."""
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)

    def _sampler_generator(self) -> torch.Generator | None:
        gen = getattr(self.sampler, "generator", None)
        return gen if isinstance(gen, torch.Generator) else None

    def _new_iterator(self) -> None:
        """Start a pass over the data, remembering the RNG states it starts from (for resume)."""
        if self.dataloader is None:
            raise not_set_up(self, "dataloader")
        gen = self._sampler_generator()
        self._iter_start_state = {
            "torch_rng_state": torch.get_rng_state(),
            "sampler_generator_state": None if gen is None else gen.get_state(),
            "sampler_epoch": getattr(self.sampler, "epoch", None),
        }
        self._batches_from_iter = 0
        self.dataloader_iter = iter(self.dataloader)

    def _next_batch(self) -> Any:
        if self.dataloader_iter is None:
            self._new_iterator()
        if self.dataloader_iter is None:
            raise not_set_up(self, "dataloader_iter")
        try:
            batch = next(self.dataloader_iter)
        except StopIteration:
            self._new_iterator()
            batch = next(self.dataloader_iter)
        self._batches_from_iter += 1
        return batch

    def _start_epoch_data(self) -> None:
        """A pass that has delivered every batch is replaced by a fresh one at an epoch start, so a
        run resumed from a checkpoint draws the same data as an uninterrupted run."""
        if self.dataloader is None:
            raise not_set_up(self, "dataloader")
        pending = self._pending_resume
        self._pending_resume = None
        if pending is not None and 0 < pending["batches_from_iter"] < len(self.dataloader):
            # resume in the middle of a pass: replay its start, skip what was already used
            torch.set_rng_state(pending["iter_start"]["torch_rng_state"])
            gen = self._sampler_generator()
            if gen is not None and pending["iter_start"]["sampler_generator_state"] is not None:
                gen.set_state(pending["iter_start"]["sampler_generator_state"])
            set_epoch = getattr(self.sampler, "set_epoch", None)
            sampler_epoch = pending["iter_start"].get("sampler_epoch")
            if sampler_epoch is not None and callable(set_epoch):
                set_epoch(sampler_epoch)  # the pass may have begun in an earlier epoch
            self._new_iterator()
            self._iter_start_state = pending["iter_start"]
            if self.dataloader_iter is None:
                raise not_set_up(self, "dataloader_iter")
            for _ in range(pending["batches_from_iter"]):
                next(self.dataloader_iter)
            if callable(set_epoch):
                set_epoch(self.epoch)  # the next pass draws this epoch's order
            self._batches_from_iter = pending["batches_from_iter"]
            torch.set_rng_state(pending["torch_rng_state"])
            return
        if self.dataloader_iter is None or self._batches_from_iter >= len(self.dataloader):
            self._new_iterator()

    def process_labels(self, labels: Any) -> torch.Tensor:
        labels = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels)
        if labels.ndim == 2:
            labels = labels[:, self.label_hierarchy_level]
            labels = self.label_mapper(labels, self.label_hierarchy_level)
        else:
            labels = self.label_mapper(labels, 0)
        return labels

    def get_batch(self) -> tuple[Any, torch.Tensor]:
        batch = self._next_batch()
        if self.data_and_label_getter is None:
            raise not_set_up(self, "data_and_label_getter")
        data, labels = self.data_and_label_getter(batch)
        labels = self.process_labels(labels)
        return self.maybe_do_batch_mining(data, labels)

    def maybe_do_batch_mining(self, data: Any, labels: torch.Tensor) -> tuple[Any, torch.Tensor]:
        miner = self.mining_funcs.get("subset_batch_miner")
        if miner is None:
            return data, labels
        with torch.no_grad():
            self.set_to_eval()
            embeddings = self.compute_embeddings(data)
            idx = miner(embeddings, labels.to(embeddings.device)).to(labels.device)
            self.set_to_train()
        return data[idx.to(data.device)], labels[idx]

    # ------------------------------------------------------------------ model calls
    def _to_device(self, data: torch.Tensor) -> torch.Tensor:
        return data.to(device=self.data_device, dtype=self.dtype or data.dtype)

    def get_trunk_output(self, data: torch.Tensor) -> torch.Tensor:
        return self.models["trunk"](self._to_device(data))

    def get_final_embeddings(self, base_output: torch.Tensor) -> torch.Tensor:
        return self.models["embedder"](base_output)

    def compute_embeddings(self, data: torch.Tensor) -> torch.Tensor:
        return self.get_final_embeddings(self.get_trunk_output(data))

    def maybe_mine_embeddings(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Any:
        miner = self.mining_funcs.get("tuple_miner")
        if miner is None:
            return None
        return miner(embeddings, labels)

    def calculate_loss(self, curr_batch: tuple[Any, torch.Tensor]) -> None:
        raise NotImplementedError

    def update_loss_weights(self) -> None:
        """Hook: change ``self.loss_weights`` before each iteration."""

    # ------------------------------------------------------------------ one iteration
    def _autocast(self) -> Any:
        return torch.autocast(
            device_type=self._amp_device_type, dtype=self._amp_dtype, enabled=self.use_amp
        )

    def forward_and_backward(self) -> None:
        self.zero_losses()
        self.zero_grad()
        self.update_loss_weights()
        with self._autocast():
            self.calculate_loss(self.get_batch())
        if self.loss_weights is None:
            raise not_set_up(self, "loss_weights")
        self.loss_tracker.update(self.loss_weights)
        self.backward()
        self.clip_gradients()
        self.step_optimizers()
        self.scaler.update()

    def zero_losses(self) -> None:
        self.loss_tracker.zero_losses()

    def zero_grad(self) -> None:
        for model in self.models.values():
            model.zero_grad()
        for loss in self.loss_funcs.values():
            if isinstance(loss, torch.nn.Module):
                loss.zero_grad()
        for opt in self.optimizers.values():
            if opt is not None:
                opt.zero_grad()

    def backward(self) -> None:
        total = self.losses["total_loss"]
        if torch.is_tensor(total) and total.requires_grad:
            self.scaler.scale(total).backward()

    def clip_gradients(self) -> None:
        if self.gradient_clippers and self.scaler.is_enabled():
            for opt in self.optimizers.values():
                if opt is not None:
                    self.scaler.unscale_(opt)
        for clipper in self.gradient_clippers.values():
            clipper()

    def _step_optimizer(self, key: str) -> None:
        opt = self.optimizers.get(key)
        if opt is None:
            return
        if key[: -len("_optimizer")] in self.freeze_these:
            return
        if self.scaler.is_enabled():
            self.scaler.step(opt)
        else:
            opt.step()

    def step_optimizers(self) -> None:
        for key in self.optimizers:
            self._step_optimizer(key)

    # ------------------------------------------------------------------ schedulers
    def step_lr_schedulers(self, end_of_epoch: bool = False) -> None:
        suffix = SCHEDULER_SUFFIXES["epoch" if end_of_epoch else "iteration"]
        for key, scheduler in (self.lr_schedulers or {}).items():
            if key.endswith(suffix):
                scheduler.step()

    def step_lr_plateau_schedulers(self, validation_info: Any) -> None:
        for key, scheduler in (self.lr_schedulers or {}).items():
            if key.endswith(SCHEDULER_SUFFIXES["plateau"]):
                scheduler.step(validation_info)

    # ------------------------------------------------------------------ modes
    def trainable_attributes(self) -> list[dict[str, Any]]:
        return [self.models, self.loss_funcs]

    def set_to_train(self) -> None:
        for attr in self.trainable_attributes():
            for key, module in attr.items():
                if not isinstance(module, torch.nn.Module):
                    continue
                if key in self.freeze_these:
                    module.requires_grad_(False)
                    module.eval()
                else:
                    module.train()
        self.maybe_freeze_trunk_batchnorm()

    def set_to_eval(self) -> None:
        for attr in self.trainable_attributes():
            for module in attr.values():
                if isinstance(module, torch.nn.Module):
                    module.eval()

    def maybe_freeze_trunk_batchnorm(self) -> None:
        if self.freeze_trunk_batchnorm:
            for m in self.models["trunk"].modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def get_global_iteration(self) -> int:
        ipe = self.iterations_per_epoch or 0
        return self.iteration + ipe * (self.epoch - 1)

    # ------------------------------------------------------------------ parameter check
    def warn_unoptimized_loss_parameters(self) -> None:
        """Warn (once) about loss parameters that need training but that no optimizer holds."""
        if self._unoptimized_warned:
            return
        held = {
            id(p)
            for opt in self.optimizers.values()
            if opt is not None
            for group in opt.param_groups
            for p in group["params"]
        }
        missing = []
        for key, loss in self.loss_funcs.items():
            if key in self.freeze_these:
                continue
            get = getattr(loss, "trainable_parameters", None)
            if get is None:
                if not isinstance(loss, torch.nn.Module):
                    continue
                params = [(n, p) for n, p in loss.named_parameters() if p.requires_grad]
            else:
                params = list(get())
            missing += [f"{key}.{name}" for name, p in params if id(p) not in held]
        if missing:
            self._unoptimized_warned = True
            warnings.warn(
                f"{self.owner}: loss parameters {missing} need training but no optimizer holds "
                "them, so they stay at their initial values. Add e.g. "
                "optimizers['metric_loss_optimizer'] = torch.optim.SGD(loss.parameters(), lr=...).",
                UserWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ the loop
    def train(self, start_epoch: int = 1, num_epochs: int = 1) -> None:
        """Train for epochs ``start_epoch .. num_epochs`` (inclusive)."""
        self.warn_unoptimized_loss_parameters()
        self.initialize_dataloader()
        if self.dataloader is None:
            raise not_set_up(self, "dataloader")
        if self.iterations_per_epoch is None:
            self.iterations_per_epoch = len(self.dataloader)
        if self.end_of_iteration_hook is None:
            raise not_set_up(self, "end_of_iteration_hook")
        if self.end_of_epoch_hook is None:
            raise not_set_up(self, "end_of_epoch_hook")
        for epoch in range(start_epoch, num_epochs + 1):
            self.epoch = epoch
            self._set_sampler_epoch()
            self._start_epoch_data()
            self.set_to_train()
            bar = None
            if self.show_progress and is_main_process():
                from tqdm.auto import tqdm

                bar = tqdm(total=self.iterations_per_epoch, desc=f"epoch {self.epoch}")
            for iteration in range(self.iterations_per_epoch):
                self.iteration = iteration
                self.forward_and_backward()
                self.end_of_iteration_hook(self)
                if bar is not None:
                    total = self.losses["total_loss"]
                    if torch.is_tensor(total):
                        total = total.detach()
                    bar.set_postfix(total_loss=float(total))
                    bar.update(1)
                self.step_lr_schedulers(end_of_epoch=False)
            if bar is not None:
                bar.close()
            self.iteration = self.iterations_per_epoch
            self.step_lr_schedulers(end_of_epoch=True)
            self.zero_losses()
            if self.end_of_epoch_hook(self) is False:
                break

    # ------------------------------------------------------------------ checkpointing
    def _stateful(self) -> dict[str, dict[str, Any]]:
        return {
            "models": self.models,
            "optimizers": self.optimizers,
            "lr_schedulers": self.lr_schedulers or {},
            "loss_funcs": self.loss_funcs,
        }

    def state_dict(self) -> dict[str, Any]:
        """Models, optimizers, schedulers, loss parameters, grad scaler, RNG and sampler state,
        ``epoch`` (last epoch reached) and ``iteration``."""
        state: dict[str, Any] = {}
        for group, objs in self._stateful().items():
            state[group] = {
                k: unwrap_model(v).state_dict() for k, v in objs.items() if hasattr(v, "state_dict")
            }
        state["scaler"] = self.scaler.state_dict()
        state["epoch"] = self.epoch
        state["iteration"] = self.iteration
        state["torch_rng_state"] = torch.get_rng_state()
        gen = self._sampler_generator()
        if gen is not None:
            state["sampler_generator_state"] = gen.get_state()
        state["batches_from_iter"] = self._batches_from_iter if self.dataloader_iter else 0
        state["iter_start"] = self._iter_start_state
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for group, objs in self._stateful().items():
            saved = state.get(group, {})
            for k, sd in saved.items():
                if k not in objs:
                    fail(self.owner, f"a {group} entry {k!r} in this trainer", "none", exc=KeyError)
                unwrap_model(objs[k]).load_state_dict(sd)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state.get("epoch", 0))
        self.iteration = int(state.get("iteration", 0))
        if "torch_rng_state" in state:
            torch.set_rng_state(state["torch_rng_state"])
        gen = self._sampler_generator()
        if gen is not None and state.get("sampler_generator_state") is not None:
            gen.set_state(state["sampler_generator_state"])
        self.dataloader_iter = None
        self._pending_resume = None
        if state.get("iter_start") is not None and state.get("batches_from_iter", 0) > 0:
            self._pending_resume = {
                "iter_start": state["iter_start"],
                "batches_from_iter": int(state["batches_from_iter"]),
                "torch_rng_state": state.get("torch_rng_state", torch.get_rng_state()),
            }

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Write ``state_dict()`` atomically: a temporary file in the same folder, then
        ``os.replace``. Under ``torch.distributed`` every rank calls it, rank 0 writes (the
        ranks' models are equal; RNG states are rank 0's) and all ranks wait until the file
        is complete."""
        if is_main_process():
            self._write_checkpoint(os.fspath(path))
        barrier()

    def _write_checkpoint(self, path: str) -> None:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_ckpt_")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(self.state_dict(), f)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def load_checkpoint(self, path: str | os.PathLike[str]) -> int:
        """Load a checkpoint; returns the epoch to resume from (``epoch + 1``)."""
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=False)
        self.load_state_dict(state)
        return self.epoch + 1
