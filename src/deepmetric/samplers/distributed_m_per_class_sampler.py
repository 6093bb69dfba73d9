"""``DistributedMPerClassSampler``: m-per-class batches split across distributed ranks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .. import _validation as V
from .._registry import SAMPLERS
from ..data_utils import WholeBatchSampler
from ..functional import sampling as F
from ._common import (
    as_labels,
    check_batch,
    check_class_sizes,
    check_int,
    labels_to_indices,
)


def _world(owner: str, num_replicas: Any, rank: Any) -> tuple[int, int]:
    """Explicit values, or the initialised default process group's world size and rank."""
    if num_replicas is None or rank is None:
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            missing = " and ".join(
                n for n, v in (("num_replicas", num_replicas), ("rank", rank)) if v is None
            )
            V.fail(
                owner,
                f"`{missing}` given, or an initialised torch.distributed process group",
                "neither",
                "Call torch.distributed.init_process_group(...) first, or pass "
                "num_replicas=... and rank=....",
                RuntimeError,
            )
        num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
        rank = dist.get_rank() if rank is None else rank
    world = check_int(owner, "num_replicas", num_replicas)
    r = check_int(owner, "rank", rank, minimum=0)
    if r >= world:
        V.fail(owner, f"`rank` in [0, num_replicas - 1] = [0, {world - 1}]", f"rank={r}")
    return world, r


@SAMPLERS.register
class DistributedMPerClassSampler(WholeBatchSampler):
    """m-per-class batches for distributed training (PML issue #546): each rank gets its own.

    Every step draws one *global* m-per-class batch of ``num_replicas * batch_size // m``
    distinct classes (``m`` samples each, as :class:`MPerClassBatchSampler`) and gives rank
    ``r`` the ``r``-th block of ``batch_size // m`` classes. So at every step:

    * each rank's batch is class-balanced (``batch_size // m`` classes, ``m`` samples each);
    * the ranks' batches are disjoint (no class, hence no sample, is on two ranks), and the
      gathered global batch is itself an m-per-class batch;
    * every rank yields the same number of batches.

    The schedule depends only on ``seed + epoch`` (never on the rank's own state), so all ranks
    agree without communication; call :meth:`set_epoch` at the start of every epoch, as with
    ``torch.utils.data.DistributedSampler``, to get a new order.

    Length: ``len(sampler)`` counts this rank's **batches**:
    ``length_before_new_iter // (num_replicas * batch_size)``; ``length_before_new_iter`` is the
    number of indices per epoch over all ranks together (like a dataset's length for
    ``DistributedSampler``).

    Args:
        labels: integer class id per dataset sample, shape (N,).
        m: samples per class in a batch.
        batch_size: indices per batch on one rank, a multiple of ``m``.
        length_before_new_iter: indices per epoch, all ranks together.
        num_replicas / rank: world size and this process's rank; None reads them from the
            initialised default process group (an error when there is none).
        seed: shared seed; must be equal on all ranks.
        allow_replacement: as :class:`MPerClassBatchSampler`.
    """

    def __init__(
        self,
        labels: Any,
        m: int,
        batch_size: int,
        length_before_new_iter: int = 100000,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        allow_replacement: bool = True,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.m_per_class = check_int(owner, "m", m)
        self.batch_size = check_int(owner, "batch_size", batch_size)
        self.length_before_new_iter = check_int(
            owner, "length_before_new_iter", length_before_new_iter
        )
        self.seed = check_int(owner, "seed", seed, minimum=0)
        self.num_replicas, self.rank = _world(owner, num_replicas, rank)
        self.allow_replacement = bool(allow_replacement)
        self.epoch = 0
        self._groups = F.group_by_label(as_labels(owner, labels))
        self.labels_to_indices = labels_to_indices(self._groups)
        self.labels = self._groups.classes.tolist()
        check_batch(owner, self.batch_size, self.m_per_class, len(self.labels), self.batch_size)
        global_classes = self.num_replicas * self.classes_per_batch
        if global_classes > len(self.labels):
            V.fail(
                owner,
                f"at least num_replicas * batch_size // m = {self.num_replicas} * "
                f"{self.classes_per_batch} = {global_classes} classes (ranks get disjoint "
                "classes at every step)",
                f"{len(self.labels)} classes",
                "Lower batch_size, raise m, or use fewer replicas.",
            )
        if self.length_before_new_iter < self.global_batch_size:
            V.fail(
                owner,
                f"`length_before_new_iter` >= num_replicas * batch_size = {self.global_batch_size}"
                " (one batch per rank)",
                str(self.length_before_new_iter),
            )
        if not self.allow_replacement:
            check_class_sizes(owner, self._groups, self.m_per_class)

    @property
    def classes_per_batch(self) -> int:
        return self.batch_size // self.m_per_class

    @property
    def global_batch_size(self) -> int:
        return self.num_replicas * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Use the schedule of ``epoch`` (same value on every rank) on the next iteration."""
        self.epoch = check_int(type(self).__name__, "epoch", epoch, minimum=0)

    def __len__(self) -> int:
        return self.length_before_new_iter // self.global_batch_size

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = F.m_per_class_batches(
            self._groups,
            m=self.m_per_class,
            classes_per_batch=self.num_replicas * self.classes_per_batch,
            num_batches=len(self),
            generator=generator,
        )  # [steps, num_replicas * batch_size], class blocks contiguous
        mine = batches.reshape(len(self), self.num_replicas, self.batch_size)[:, self.rank]
        return iter(mine.tolist())
