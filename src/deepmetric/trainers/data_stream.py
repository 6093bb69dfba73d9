"""The training batches: the passes over the trainer's ``DataLoader``, with what an exact resume
needs.

A pass over the loader may span epochs (``iterations_per_epoch`` need not equal its length), so
the stream remembers the RNG states each pass started from and how many of its batches were
used; a checkpoint stores both and a resumed run replays the pass and skips the used batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader


def sampler_generator(sampler: Any) -> torch.Generator | None:
    """The sampler's own ``torch.Generator`` (deepmetric and torch samplers keep it as
    ``generator``), or None."""
    gen = getattr(sampler, "generator", None)
    return gen if isinstance(gen, torch.Generator) else None


def set_sampler_epoch(sampler: Any, epoch: int) -> None:
    """``sampler.set_epoch(epoch)`` for samplers that have it (``DistributedSampler``,
    ``DistributedMPerClassSampler``): a new order each epoch that all ranks agree on."""
    set_epoch = getattr(sampler, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)


class DataStream:
    """Batches from successive passes over ``loader``.

    Args:
        loader: the training ``DataLoader``.
        sampler: its sampler (for its generator and ``set_epoch``), or None.
        resume: ``{"iter_start", "batches_from_iter", "torch_rng_state"}`` from a checkpoint
            taken in the middle of a pass, or None.
    """

    def __init__(
        self, loader: DataLoader[Any], sampler: Any, resume: dict[str, Any] | None
    ) -> None:
        self.loader = loader
        self.sampler = sampler
        self.iterator: Iterator[Any] | None = None
        self.batches_from_iter = 0
        self.iter_start: dict[str, Any] | None = None
        self._resume = resume

    def __len__(self) -> int:
        return len(self.loader)

    def _new_pass(self) -> Iterator[Any]:
        """Start a pass, remembering the RNG states it starts from."""
        gen = sampler_generator(self.sampler)
        self.iter_start = {
            "torch_rng_state": torch.get_rng_state(),
            "sampler_generator_state": None if gen is None else gen.get_state(),
            "sampler_epoch": getattr(self.sampler, "epoch", None),
        }
        self.batches_from_iter = 0
        self.iterator = iter(self.loader)
        return self.iterator

    def next_batch(self) -> Any:
        iterator = self.iterator if self.iterator is not None else self._new_pass()
        try:
            batch = next(iterator)
        except StopIteration:
            batch = next(self._new_pass())
        self.batches_from_iter += 1
        return batch

    def start_epoch(self, epoch: int) -> None:
        """A pass that has delivered every batch is replaced by a fresh one at an epoch start, so
        a run resumed from a checkpoint draws the same data as an uninterrupted run."""
        set_sampler_epoch(self.sampler, epoch)
        resume, self._resume = self._resume, None
        if resume is not None and 0 < resume["batches_from_iter"] < len(self.loader):
            self._replay(resume, epoch)
        elif self.iterator is None or self.batches_from_iter >= len(self.loader):
            self._new_pass()

    def _replay(self, resume: dict[str, Any], epoch: int) -> None:
        """Restart the interrupted pass from its saved RNG states and skip its used batches."""
        start = resume["iter_start"]
        torch.set_rng_state(start["torch_rng_state"])
        gen = sampler_generator(self.sampler)
        if gen is not None and start["sampler_generator_state"] is not None:
            gen.set_state(start["sampler_generator_state"])
        if start.get("sampler_epoch") is not None:
            set_sampler_epoch(self.sampler, start["sampler_epoch"])  # it may have begun earlier
        iterator = self._new_pass()
        for _ in range(resume["batches_from_iter"]):
            next(iterator)
        set_sampler_epoch(self.sampler, epoch)  # the next pass draws this epoch's order
        self.iter_start = start
        self.batches_from_iter = resume["batches_from_iter"]
        torch.set_rng_state(resume["torch_rng_state"])

    def state(self) -> dict[str, Any]:
        """``{"batches_from_iter", "iter_start"}`` of the current pass."""
        used = self.batches_from_iter if self.iterator is not None else 0
        return {"batches_from_iter": used, "iter_start": self.iter_start}
