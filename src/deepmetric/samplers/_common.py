"""Argument checks and random-generator setup shared by the samplers.

Randomness: PML's samplers draw from one module-level NumPy ``RandomState``
(``c_f.NUMPY_RANDOM``), so reseeding anywhere changes every sampler. Here each sampler owns a
``torch.Generator``:

* ``generator=g``: draws come from ``g`` (shared with whoever else uses it);
* ``seed=s``: a private generator seeded with ``s``; the sequence of epochs is reproducible;
* neither: a private generator seeded from torch's default generator at construction, so
  ``torch.manual_seed(...)`` before building the sampler makes it reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import _validation as V
from .._types import Tensor
from ..functional.sampling import LabelGroups


def check_int(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (bools and non-integral numbers refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        V.fail(owner, f"`{name}` to be an int >= {minimum}", repr(value), exc=TypeError)
    if value < minimum:
        V.fail(owner, f"`{name}` >= {minimum}", repr(value))
    return int(value)


def as_labels(owner: str, labels: Any, ndim: int = 1, name: str = "labels") -> Tensor:
    """Integer labels (list, NumPy array or tensor on any device) as a CPU int64 tensor."""
    if isinstance(labels, torch.Tensor):
        t = labels.detach().cpu()
    else:
        try:
            t = torch.as_tensor(np.asarray(labels))
        except (TypeError, ValueError, RuntimeError):
            V.fail(
                owner,
                f"`{name}` as integer class ids (list, NumPy array or tensor)",
                f"{type(labels).__name__} that does not convert to a tensor",
                "Map labels to ints first, e.g. with np.unique(labels, return_inverse=True).",
                TypeError,
            )
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        V.fail(
            owner,
            f"integer `{name}`",
            str(t.dtype),
            "Float labels collide above 2**24; pass class ids as ints (.long()).",
            TypeError,
        )
    if t.ndim != ndim:
        shape = "(N,)" if ndim == 1 else "(N, levels)"
        V.fail(owner, f"`{name}` of shape {shape}", f"shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        V.fail(owner, f"non-empty `{name}`", "no labels")
    return t.long()


def make_generator(owner: str, seed: Any, generator: Any) -> torch.Generator:
    """The generator a sampler draws from (see the module docstring)."""
    if generator is not None:
        if seed is not None:
            V.fail(owner, "`seed` or `generator`, not both", "both")
        if not isinstance(generator, torch.Generator):
            V.fail(
                owner,
                "`generator` to be a torch.Generator",
                type(generator).__name__,
                exc=TypeError,
            )
        return generator
    if seed is None:
        seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        V.fail(owner, "`seed` to be an int or None", repr(seed), exc=TypeError)
    return torch.Generator().manual_seed(int(seed))


def labels_to_indices(groups: LabelGroups) -> dict[int, Tensor]:
    """``{label: sample indices}`` from a :class:`~deepmetric.functional.sampling.LabelGroups`."""
    return {int(lab): groups.members(c) for c, lab in enumerate(groups.classes.tolist())}


def check_batch(owner: str, batch_size: int, m: int, num_classes: int, length: int) -> None:
    """Refuse batch settings an m-per-class batch cannot meet."""
    if batch_size % m:
        lower, upper = batch_size - batch_size % m, batch_size + m - batch_size % m
        hint = f"Use batch_size={upper}" + (f" or {lower}" if lower else "") + ", or change m."
        V.fail(owner, f"`batch_size` divisible by m={m}", f"batch_size={batch_size}", hint)
    if batch_size > m * num_classes:
        V.fail(
            owner,
            f"at least batch_size // m = {batch_size // m} classes (a batch holds that many "
            f"distinct classes)",
            f"{num_classes} classes",
            f"Lower batch_size to at most m * num_classes = {m * num_classes}, or raise m.",
        )
    if length < batch_size:
        V.fail(
            owner,
            f"`length_before_new_iter` >= batch_size={batch_size}",
            f"{length}",
        )


def check_class_sizes(owner: str, groups: LabelGroups, m: int) -> None:
    """With sampling without replacement, every class needs at least ``m`` samples."""
    sizes = groups.sizes
    smallest = int(sizes.argmin())
    if int(sizes[smallest]) < m:
        few = int((sizes < m).sum())
        V.fail(
            owner,
            f"every class to hold at least m={m} samples (allow_replacement=False)",
            f"{few} smaller class(es), e.g. label {int(groups.classes[smallest])} with "
            f"{int(sizes[smallest])} sample(s)",
            "Pass allow_replacement=True, lower m, or drop the small classes.",
        )
