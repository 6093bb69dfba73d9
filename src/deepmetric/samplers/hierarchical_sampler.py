"""``HierarchicalSampler``: batches built from a few super-classes at a time (FastAP)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch

from .. import _validation as V
from .._registry import SAMPLERS
from ..data_utils import WholeBatchSampler
from ..functional import sampling as F
from ._common import as_labels, check_int, make_generator


@SAMPLERS.register
class HierarchicalSampler(WholeBatchSampler):
    """Batch sampler over a class / super-class hierarchy (PML's ``HierarchicalSampler``).

    From Cakir et al., "Deep Metric Learning to Rank" (FastAP), CVPR 2019,
    https://arxiv.org/abs/1904.03213. For every combination of ``super_classes_per_batch``
    super-classes, ``batches_per_super_tuple`` batches; each batch holds one sub-batch of
    ``batch_size // super_classes_per_batch`` indices per super-class of the combination. A
    sub-batch visits the super-class's classes in random order and takes ``samples_per_class``
    samples of each (with replacement only for classes smaller than that), or with
    ``samples_per_class="all"`` every sample of each class that still fits. Batches are shuffled
    inside and among themselves; they can be shorter than ``batch_size`` when a super-class has
    too few samples. It yields lists of indices: use ``DataLoader(batch_sampler=sampler)``.

    Length: ``len(sampler)`` counts **batches**:
    ``C(num_super_classes, super_classes_per_batch) * batches_per_super_tuple``. The batches are
    drawn at construction and again at each ``iter`` (:meth:`reshuffle`).

    Args:
        labels: integer labels of shape (N, levels); column ``inner_label`` is the class,
            column ``outer_label`` the super-class.
        batch_size: indices per batch, a multiple of ``super_classes_per_batch``.
        samples_per_class: int > 0 dividing ``batch_size // super_classes_per_batch``, or "all".
        batches_per_super_tuple: batches per combination of super-classes.
        super_classes_per_batch: super-classes in one batch.
        inner_label / outer_label: label columns of class and super-class.
        generator / seed: source of randomness (keyword-only; see
            :mod:`deepmetric.samplers._common`).

    Differences from PML: a ``torch.Generator`` instead of NumPy's global RNG (other index
    sequences, same structure); clear errors instead of ``assert``; fewer super-classes than
    ``super_classes_per_batch`` is an error (PML builds an empty sampler).
    """

    def __init__(
        self,
        labels: Any,
        batch_size: int,
        samples_per_class: int | str,
        batches_per_super_tuple: int = 4,
        super_classes_per_batch: int = 2,
        inner_label: int = 0,
        outer_label: int = 1,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        lab = as_labels(owner, labels, ndim=2)
        self.batch_size = check_int(owner, "batch_size", batch_size)
        self.batches_per_super_tuple = check_int(
            owner, "batches_per_super_tuple", batches_per_super_tuple
        )
        self.super_classes_per_batch = check_int(
            owner, "super_classes_per_batch", super_classes_per_batch
        )
        for name, col in (("inner_label", inner_label), ("outer_label", outer_label)):
            if check_int(owner, name, col, minimum=0) >= lab.shape[1]:
                V.fail(owner, f"`{name}` < the {lab.shape[1]} label columns", f"{name}={col}")
        if self.batch_size % self.super_classes_per_batch:
            V.fail(
                owner,
                f"`batch_size` divisible by super_classes_per_batch={super_classes_per_batch}",
                f"batch_size={batch_size}",
            )
        self.sub_batch_len = self.batch_size // self.super_classes_per_batch
        if isinstance(samples_per_class, str) and samples_per_class != "all":
            V.fail(owner, '`samples_per_class` to be an int >= 1 or "all"', repr(samples_per_class))
        if samples_per_class != "all":
            spc = check_int(owner, "samples_per_class", samples_per_class)
            if self.sub_batch_len % spc:
                V.fail(
                    owner,
                    f"`samples_per_class` dividing batch_size // super_classes_per_batch = "
                    f"{self.sub_batch_len}",
                    f"samples_per_class={samples_per_class}",
                )
        self.samples_per_class = samples_per_class
        inner, outer = lab[:, inner_label], lab[:, outer_label]
        supers = torch.unique(outer).tolist()
        if len(supers) < self.super_classes_per_batch:
            V.fail(
                owner,
                f"at least super_classes_per_batch={super_classes_per_batch} super-classes",
                f"{len(supers)}",
                "Lower super_classes_per_batch.",
            )
        self._super_groups = []
        self.super_image_lists: dict[int, dict[int, list[int]]] = {}
        for s in supers:
            idx = torch.where(outer == s)[0]
            groups = F.group_by_label(inner[idx], index=idx)
            self._super_groups.append(groups)
            self.super_image_lists[s] = {
                int(c): groups.members(j).tolist() for j, c in enumerate(groups.classes.tolist())
            }
        self._super_labels = supers
        self._tuples = list(
            itertools.combinations(range(len(supers)), self.super_classes_per_batch)
        )
        self.super_pairs = [tuple(supers[i] for i in t) for t in self._tuples]
        self.generator = make_generator(owner, seed, generator)
        self.batches: list[list[int]] = []
        self.reshuffle()

    def reshuffle(self) -> None:
        """Draw a new list of batches into ``self.batches``."""
        batches = F.hierarchical_batches(
            self._super_groups,
            self._tuples,
            batches_per_super_tuple=self.batches_per_super_tuple,
            sub_batch_len=self.sub_batch_len,
            samples_per_class=None
            if self.samples_per_class == "all"
            else int(self.samples_per_class),
            generator=self.generator,
        )
        self.batches = [b.tolist() for b in batches]

    def __iter__(self) -> Iterator[list[int]]:
        self.reshuffle()
        yield from self.batches

    def __len__(self) -> int:
        return len(self._tuples) * self.batches_per_super_tuple
