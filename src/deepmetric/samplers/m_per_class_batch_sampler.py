"""``MPerClassBatchSampler``: whole m-per-class batches, for ``DataLoader(batch_sampler=...)``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .._registry import SAMPLERS
from ..data_utils import WholeBatchSampler
from ..functional import sampling as F
from ._common import (
    as_labels,
    check_batch,
    check_class_sizes,
    check_int,
    labels_to_indices,
    make_generator,
)


@SAMPLERS.register
class MPerClassBatchSampler(WholeBatchSampler):
    """Yields batches (lists of indices) of ``batch_size // m`` distinct classes, ``m`` each.

    The batch-sampler form of :class:`MPerClassSampler` asked for in PML issue #612: the same
    batches :class:`MPerClassSampler` gives with ``batch_size`` set, but grouped, so the
    ``DataLoader`` cannot cut them wrongly (``DataLoader(dataset, batch_sampler=sampler)``).
    Every batch draws its classes afresh; within a class the ``m`` samples are distinct unless
    the class has fewer than ``m`` (then drawn with replacement, or refused with
    ``allow_replacement=False``). Samples of a class are contiguous in the batch.

    Length: ``len(sampler)`` counts **batches**: ``length_before_new_iter // batch_size``, so one
    epoch covers as many indices as :class:`MPerClassSampler` with the same arguments.

    Args:
        labels: integer class id per dataset sample, shape (N,).
        m: samples per class in a batch.
        batch_size: indices per batch, a multiple of ``m``.
        length_before_new_iter: indices per epoch (rounded down to a multiple of ``batch_size``).
        allow_replacement: if False, every class must hold at least ``m`` samples (so no batch
            repeats a sample); otherwise small classes are drawn with replacement (PML's rule).
        generator / seed: source of randomness (keyword-only; see
            :mod:`deepmetric.samplers._common`).
    """

    def __init__(
        self,
        labels: Any,
        m: int,
        batch_size: int,
        length_before_new_iter: int = 100000,
        *,
        allow_replacement: bool = True,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.m_per_class = check_int(owner, "m", m)
        self.batch_size = check_int(owner, "batch_size", batch_size)
        self.length_before_new_iter = check_int(
            owner, "length_before_new_iter", length_before_new_iter
        )
        self.allow_replacement = bool(allow_replacement)
        self._groups = F.group_by_label(as_labels(owner, labels))
        self.labels_to_indices = labels_to_indices(self._groups)
        self.labels = self._groups.classes.tolist()
        check_batch(
            owner, self.batch_size, self.m_per_class, len(self.labels), self.length_before_new_iter
        )
        if not self.allow_replacement:
            check_class_sizes(owner, self._groups, self.m_per_class)
        self.generator = make_generator(owner, seed, generator)

    @property
    def classes_per_batch(self) -> int:
        return self.batch_size // self.m_per_class

    def __len__(self) -> int:
        return self.length_before_new_iter // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        batches = F.m_per_class_batches(
            self._groups,
            m=self.m_per_class,
            classes_per_batch=self.classes_per_batch,
            num_batches=len(self),
            generator=self.generator,
        )
        return iter(batches.tolist())
