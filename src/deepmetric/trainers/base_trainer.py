"""``BaseTrainer``: the training loop shared by every trainer (PML 2.x constructor and dict keys).

Beyond PML: ``use_amp`` (autocast + ``GradScaler`` on CUDA, bfloat16 autocast on CPU), a warning
when a loss learns parameters that no optimizer holds, tqdm progress bars (``show_progress``),
checkpoint/resume (``state_dict``, ``load_state_dict``, ``save_checkpoint``, ``load_checkpoint``)
and, under ``torch.distributed`` with several ranks, DDP around the trainable models (see
:mod:`.distributed_setup`) and ``sampler.set_epoch`` each epoch.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from .._io import atomic_torch_save
from .._validation import fail
from ..data_utils import make_train_loader, return_input
from ..distributed.runtime import barrier, is_main_process, world_size
from ..functional.labels import LabelMapper
from . import arguments, checkpointing, distributed_setup
from .arguments import SCHEDULER_SUFFIXES, KeySchema
from .data_stream import DataStream
from .loss_tracker import LossTracker
from .parameter_check import unoptimized_loss_parameters

logger = logging.getLogger("deepmetric")


def _identity_hook(*args: Any, **kwargs: Any) -> None:
    return None


def not_set_up(trainer: object, name: str) -> RuntimeError:
    """The error for internal state that the trainer's set-up should have created."""
    return RuntimeError(f"{type(trainer).__name__}: `{name}` is not set up (set-up has not run).")


class BaseTrainer:
    """Trains ``models`` with ``loss_funcs`` (and optional ``mining_funcs``) on ``dataset``.

    Accepts PML 2.x order ``(models, optimizers, batch_size, loss_funcs, dataset, mining_funcs)``
    and PML 1.x order ``(models, optimizers, batch_size, loss_funcs, mining_funcs, dataset)``: the
    dict of mining functions is told from the dataset by type.

    Args (beyond PML's): ``use_amp`` — mixed precision (float16 + GradScaler on CUDA, bfloat16
    autocast on CPU); ``show_progress`` — tqdm bar per epoch.
    """

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
        dataset, mining_funcs = arguments.resolve_dataset_and_miners(
            self.owner, dataset, mining_funcs
        )
        arguments.check_types(self.owner, models, optimizers, loss_funcs, batch_size)
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
        self.data_stream: DataStream | None = None
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

    # ------------------------------------------------------------------ key checks
    def schema(self) -> KeySchema:
        """Regex key patterns per dict: ``allowed``, ``essential`` and ``important``."""
        return {
            "models": {
                "allowed": ["trunk", "embedder"],
                "essential": ["trunk"],
                "important": ["embedder"],
            },
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

    def verify_dict_keys(self) -> None:
        schema = self.schema()
        arguments.check_keys(self.owner, "models", list(self.models), schema["models"])
        arguments.check_keys(self.owner, "loss_funcs", list(self.loss_funcs), schema["loss_funcs"])
        miner_keys = [k for k in self.mining_funcs if k not in self._internal_mining_keys()]
        arguments.check_keys(self.owner, "mining_funcs", miner_keys, schema["mining_funcs"])
        arguments.check_owned_keys(self)
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
        if world_size() > 1:
            self.models = distributed_setup.wrap_trainable_models(
                self.owner, self.models, self.freeze_these
            )
            distributed_setup.warn_unsynchronised_loss_parameters(
                self.owner, self.loss_funcs, self.freeze_these
            )

    def initialize_data_device(self) -> None:
        if self.data_device is None:
            self.data_device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.data_device = torch.device(self.data_device)

    def initialize_label_mapper(self) -> None:
        labels = self.dataset_labels
        if self.set_min_label_to_zero and labels is None:
            labels = getattr(self.dataset, "targets", None)
            if labels is None:
                fail(
                    self.owner,
                    "`dataset_labels` when set_min_label_to_zero=True",
                    "None",
                    "Pass dataset_labels=<all labels of the dataset>.",
                )
        self._label_mapper = LabelMapper(self.set_min_label_to_zero, labels)

    def label_mapper(self, labels: torch.Tensor, level: int) -> torch.Tensor:
        """``labels`` of ``level`` as ``0 .. C-1`` with ``set_min_label_to_zero``, else as is."""
        if not self.set_min_label_to_zero:
            return labels
        return torch.as_tensor(self._label_mapper.map(labels, level), device=labels.device)

    def initialize_loss_tracker(self) -> None:
        self.loss_tracker = LossTracker(self.loss_names)
        self.losses = self.loss_tracker.losses

    def initialize_loss_weights(self) -> None:
        if self.loss_weights is None:
            self.loss_weights = {k: 1 for k in self.loss_names}

    def initialize_data_and_label_getter(self) -> None:
        if self.data_and_label_getter is None:
            self.data_and_label_getter = return_input

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
        self.dataloader = make_train_loader(
            self.owner,
            self.dataset,
            self.batch_size,
            self.sampler,
            self.dataloader_num_workers,
            self.collate_fn,
            allow_empty=self.iterations_per_epoch is not None,
        )
        self.data_stream = DataStream(self.dataloader, self.sampler, self._pending_resume)
        self._pending_resume = None

    @property
    def dataloader_iter(self) -> Iterator[Any] | None:
        """The iterator of the current pass over ``dataloader`` (None before the first)."""
        return None if self.data_stream is None else self.data_stream.iterator

    def process_labels(self, labels: Any) -> torch.Tensor:
        labels = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels)
        if labels.ndim == 2:
            labels = labels[:, self.label_hierarchy_level]
            labels = self.label_mapper(labels, self.label_hierarchy_level)
        else:
            labels = self.label_mapper(labels, 0)
        return labels

    def get_batch(self) -> tuple[Any, torch.Tensor]:
        if self.data_stream is None:
            raise not_set_up(self, "data_stream")
        batch = self.data_stream.next_batch()
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
        missing = unoptimized_loss_parameters(
            self.loss_funcs, self.optimizers.values(), self.freeze_these
        )
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
        if self.data_stream is None:
            raise not_set_up(self, "data_stream")
        if self.iterations_per_epoch is None:
            self.iterations_per_epoch = len(self.data_stream)
        if self.end_of_iteration_hook is None:
            raise not_set_up(self, "end_of_iteration_hook")
        if self.end_of_epoch_hook is None:
            raise not_set_up(self, "end_of_epoch_hook")
        for epoch in range(start_epoch, num_epochs + 1):
            self.epoch = epoch
            self.data_stream.start_epoch(epoch)
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
    def state_dict(self) -> dict[str, Any]:
        """Models (without DDP wrappers), optimizers, schedulers, loss parameters, grad scaler,
        RNG and sampler state, the position in the data, ``epoch`` (last epoch reached) and
        ``iteration``."""
        return checkpointing.trainer_state_dict(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._pending_resume = checkpointing.load_trainer_state_dict(self, state)
        self.data_stream = None  # the next train() resumes from the loaded position

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Write ``state_dict()`` atomically: a temporary file in the same folder, then
        ``os.replace``. Under ``torch.distributed`` every rank calls it: the file holds every
        rank's random streams (restored per rank by a resume under as many ranks), rank 0
        writes it (the ranks' models are equal) and all ranks wait until it is complete."""
        state = checkpointing.with_every_ranks_rng(self.state_dict())
        if is_main_process():
            atomic_torch_save(state, path)
        barrier()

    def load_checkpoint(self, path: str | os.PathLike[str]) -> int:
        """Load a checkpoint; returns the epoch to resume from (``epoch + 1``)."""
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=False)
        self.load_state_dict(state)
        return self.epoch + 1
