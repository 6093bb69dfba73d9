"""A trainer's complete state, for checkpoints whose resume reproduces an uninterrupted run.

The state holds every model, optimizer, scheduler and loss ``state_dict`` (models outside their
DDP wrappers, so a checkpoint loads in one process and under any number of ranks), the grad
scaler, ``epoch`` and ``iteration``, the torch RNG state, the sampler's generator state and the
position in the current pass over the data (see :mod:`.data_stream`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .._validation import fail
from ..distributed.ddp import unwrap_model
from ..distributed.runtime import all_gather_object, rank, world_size
from .data_stream import sampler_generator

#: the entries that differ between ``torch.distributed`` ranks
PER_RANK_KEYS = ("torch_rng_state", "sampler_generator_state", "iter_start")


def with_every_ranks_rng(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` plus ``"per_rank"``: each rank's :data:`PER_RANK_KEYS` entries, in rank order,
    so that a resume under the same number of ranks restores each rank's own random streams
    (dropout masks, augmentations). Every rank must call it (it is a collective)."""
    own = {key: state.get(key) for key in PER_RANK_KEYS}
    return {**state, "per_rank": all_gather_object(own)}


def stateful_groups(trainer: Any) -> dict[str, dict[str, Any]]:
    """The trainer's dicts whose entries have a ``state_dict``."""
    return {
        "models": trainer.models,
        "optimizers": trainer.optimizers,
        "lr_schedulers": trainer.lr_schedulers or {},
        "loss_funcs": trainer.loss_funcs,
    }


def trainer_state_dict(trainer: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        group: {
            k: unwrap_model(v).state_dict() for k, v in objs.items() if hasattr(v, "state_dict")
        }
        for group, objs in stateful_groups(trainer).items()
    }
    state["scaler"] = trainer.scaler.state_dict()
    state["epoch"] = trainer.epoch
    state["iteration"] = trainer.iteration
    state["torch_rng_state"] = torch.get_rng_state()
    gen = sampler_generator(trainer.sampler)
    if gen is not None:
        state["sampler_generator_state"] = gen.get_state()
    stream = trainer.data_stream
    state.update(stream.state() if stream else {"batches_from_iter": 0, "iter_start": None})
    return state


def load_trainer_state_dict(trainer: Any, state: Mapping[str, Any]) -> dict[str, Any] | None:
    """Load ``state`` into ``trainer``; returns what the data stream needs to resume in the
    middle of a pass (None at a pass boundary). A state saved by ``W`` ranks gives each rank
    its own random streams when loaded by ``W`` ranks; otherwise every rank gets rank 0's."""
    per_rank = state.get("per_rank")
    if per_rank is not None and len(per_rank) == world_size():
        state = {**state, **per_rank[rank()]}
    for group, objs in stateful_groups(trainer).items():
        for key, saved in state.get(group, {}).items():
            if key not in objs:
                fail(
                    trainer.owner, f"a {group} entry {key!r} in this trainer", "none", exc=KeyError
                )
            unwrap_model(objs[key]).load_state_dict(saved)
    if state.get("scaler"):
        trainer.scaler.load_state_dict(state["scaler"])
    trainer.epoch = int(state.get("epoch", 0))
    trainer.iteration = int(state.get("iteration", 0))
    if "torch_rng_state" in state:
        torch.set_rng_state(state["torch_rng_state"])
    gen = sampler_generator(trainer.sampler)
    if gen is not None and state.get("sampler_generator_state") is not None:
        gen.set_state(state["sampler_generator_state"])
    if state.get("iter_start") is None or state.get("batches_from_iter", 0) <= 0:
        return None
    return {
        "iter_start": state["iter_start"],
        "batches_from_iter": int(state["batches_from_iter"]),
        "torch_rng_state": state.get("torch_rng_state", torch.get_rng_state()),
    }
