"""``MPerClassSampler``: a flat stream of indices with ``m`` samples per class in a row."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler

from .._registry import SAMPLERS
from ..functional import sampling as F
from ._common import as_labels, check_batch, check_int, labels_to_indices, make_generator


@SAMPLERS.register
class MPerClassSampler(Sampler[int]):
    """Yields sample indices in runs of ``m`` per class (PML's ``MPerClassSampler``).

    The stream is cut into chunks. With ``batch_size=None`` a chunk visits every class once, in
    random order; with ``batch_size`` a chunk is one batch of ``batch_size // m`` distinct random
    classes. Per visited class, ``m`` samples are drawn without replacement, or with replacement
    when the class holds fewer than ``m`` samples. Pass it as ``sampler=`` to a ``DataLoader``
    whose ``batch_size`` equals this one (:class:`MPerClassBatchSampler` is the ``batch_sampler=``
    form).

    Length (PML's semantics): ``len(sampler)`` counts **indices**, not batches. It is
    ``length_before_new_iter`` rounded down to a multiple of ``batch_size`` (given), or of
    ``m * num_classes`` (``batch_size=None``, only when that is smaller).

    Args:
        labels: integer class id per dataset sample (list, NumPy array or tensor), shape (N,).
        m: samples per class in a row.
        batch_size: the ``DataLoader``'s batch size, a multiple of ``m``; None: no batch structure.
        length_before_new_iter: indices per epoch (before rounding).
        generator: draw from this ``torch.Generator`` (keyword-only).
        seed: seed a private generator instead (keyword-only).

    Differences from PML: randomness comes from a ``torch.Generator`` (see
    :mod:`deepmetric.samplers._common`), not NumPy's global RNG, so index sequences differ for
    the same seed; impossible settings raise ``ValueError``/``TypeError`` instead of failing an
    ``assert``; labels must be integers; with ``batch_size=None`` and
    ``m * num_classes > length_before_new_iter`` the iterator yields exactly ``len(self)``
    indices (PML yields a full pass of ``m * num_classes``, more than its own ``len``).
    """

    def __init__(
        self,
        labels: Any,
        m: int,
        batch_size: int | None = None,
        length_before_new_iter: int = 100000,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.m_per_class = check_int(owner, "m", m)
        self.batch_size = None if batch_size is None else check_int(owner, "batch_size", batch_size)
        length = check_int(owner, "length_before_new_iter", length_before_new_iter)
        self._groups = F.group_by_label(as_labels(owner, labels))
        self.labels_to_indices = labels_to_indices(self._groups)
        self.labels = self._groups.classes.tolist()
        self.length_of_single_pass = self.m_per_class * len(self.labels)
        self.list_size = length
        if self.batch_size is None:
            if self.length_of_single_pass < self.list_size:
                self.list_size -= self.list_size % self.length_of_single_pass
        else:
            check_batch(owner, self.batch_size, self.m_per_class, len(self.labels), length)
            self.list_size -= self.list_size % self.batch_size
        self.generator = make_generator(owner, seed, generator)

    def __len__(self) -> int:
        return self.list_size

    def calculate_num_iters(self) -> int:
        """How many chunks (class passes, or batches) one epoch draws."""
        divisor = self.length_of_single_pass if self.batch_size is None else self.batch_size
        return self.list_size // divisor if divisor < self.list_size else 1

    def __iter__(self) -> Iterator[int]:
        per_chunk = (
            len(self.labels) if self.batch_size is None else self.batch_size // self.m_per_class
        )
        chunks = F.m_per_class_batches(
            self._groups,
            m=self.m_per_class,
            classes_per_batch=per_chunk,
            num_batches=self.calculate_num_iters(),
            generator=self.generator,
        )
        return iter(chunks.reshape(-1)[: self.list_size].tolist())
