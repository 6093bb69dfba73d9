"""Index generation for samplers and subset miners: class-balanced batches, random subsets.

Everything here is a pure function of label tensors, sizes and a ``torch.Generator``: the same
inputs and an equally seeded generator give the same indices. Draws happen on the generator's
device (the default CPU generator when ``generator`` is None) and results land on the device of
the label bookkeeping (CPU for samplers). No NumPy and no global RNG state besides torch's
default generator when no generator is passed.

Conventions:

* *Ordered k-subset* of ``range(n)``: ``k`` distinct values in uniformly random order; every one
  of the ``n! / (n - k)!`` sequences is equally likely.
* *Drawing ``k`` from a class* follows PML's ``safe_random_choice``: without replacement when the
  class holds at least ``k`` samples, otherwise with replacement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from .._types import Tensor

#: Rows of a ``[rows, population]`` random-key block kept under this many elements.
_BLOCK_ELEMENTS = 1 << 22


class LabelGroups(NamedTuple):
    """Samples grouped by class.

    Attributes:
        classes: ``Tensor[C]`` distinct labels, ascending.
        order: ``Tensor[N]`` sample indices grouped by class (class ``c`` occupies
            ``order[offsets[c]:offsets[c + 1]]``, ascending within a class).
        offsets: ``Tensor[C + 1]`` segment starts, ``offsets[-1] == N``.
    """

    classes: Tensor
    order: Tensor
    offsets: Tensor

    @property
    def sizes(self) -> Tensor:
        """``Tensor[C]`` samples per class."""
        return self.offsets[1:] - self.offsets[:-1]

    def members(self, c: int) -> Tensor:
        """Sample indices of the ``c``-th class (position in ``classes``, not the label)."""
        return self.order[int(self.offsets[c]) : int(self.offsets[c + 1])]


def group_by_label(labels: Tensor, index: Tensor | None = None) -> LabelGroups:
    """Group sample positions by label.

    Args:
        labels: ``Tensor[N]`` integer labels.
        index: ``Tensor[N]`` the sample index of each entry of ``labels`` (default
            ``arange(N)``); lets a subset of a dataset be grouped with dataset indices.

    Returns:
        :class:`LabelGroups` on ``labels``' device.
    """
    classes, inverse, counts = torch.unique(
        labels, sorted=True, return_inverse=True, return_counts=True
    )
    order = torch.argsort(inverse, stable=True)
    if index is not None:
        order = index[order]
    offsets = torch.zeros(len(classes) + 1, dtype=torch.long, device=labels.device)
    offsets[1:] = torch.cumsum(counts, 0)
    return LabelGroups(classes, order, offsets)


def _rand(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Uniform float64 draws in [0, 1) made on the generator's device, returned on ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float64).to(device)


def _below(u: Tensor, n: Tensor | int) -> Tensor:
    """``floor(u * n)`` as int64, clamped to ``n - 1`` (guards the float rounding edge)."""
    n_t = torch.as_tensor(n, device=u.device)
    return torch.minimum((u * n_t).long(), n_t - 1)


def sample_with_replacement(
    sizes: Tensor, k: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """``k`` independent uniform positions in ``[0, sizes[r])`` per row.

    Args:
        sizes: ``Tensor[R]`` positive population sizes.

    Returns:
        ``Tensor[R, k]`` int64 on ``sizes``' device.
    """
    u = _rand((len(sizes), k), generator, sizes.device)
    return _below(u, sizes[:, None])


def sample_without_replacement(
    sizes: Tensor, k: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """An ordered k-subset of ``range(sizes[r])`` per row; needs ``sizes >= k``.

    The ``j``-th draw is uniform over the ``sizes[r] - j`` positions not drawn yet: draw
    ``t ~ U{0, ..., sizes[r] - j - 1}`` and map it to the ``t``-th smallest free position by
    stepping over the earlier draws in ascending order (``t += 1`` for every drawn ``d <= t``).
    Cost ``O(R k^2)`` time and ``O(R k)`` memory, whatever the population sizes.

    Args:
        sizes: ``Tensor[R]`` population sizes, each ``>= k``.

    Returns:
        ``Tensor[R, k]`` int64 on ``sizes``' device.
    """
    rows = len(sizes)
    out = torch.empty(rows, k, dtype=torch.long, device=sizes.device)
    if rows == 0 or k == 0:
        return out
    u = _rand((k, rows), generator, sizes.device)
    for j in range(k):
        t = _below(u[j], sizes - j)
        if j:
            drawn = torch.sort(out[:, :j], dim=1).values
            for col in range(j):
                t = t + (t >= drawn[:, col]).long()
        out[:, j] = t
    return out


def random_subsets(
    n: int,
    k: int,
    num: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``num`` independent ordered k-subsets of ``range(n)`` (rows of distinct values).

    Small ``k`` (``2 k^2 <= n``) uses :func:`sample_without_replacement` (``O(num k^2)``);
    otherwise the ``k`` largest of ``n`` float64 random keys per row (their order is uniformly
    random too), in blocks of bounded memory.

    Returns:
        ``Tensor[num, k]`` int64 on ``device``.
    """
    device = torch.device(device)
    if 2 * k * k <= n:
        sizes = torch.full((num,), n, dtype=torch.long, device=device)
        return sample_without_replacement(sizes, k, generator=generator)
    out = torch.empty(num, k, dtype=torch.long, device=device)
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, num, step):
        stop = min(num, start + step)
        keys = _rand((stop - start, n), generator, device)
        out[start:stop] = torch.topk(keys, k, dim=1).indices
    return out


def draw_from_classes(
    groups: LabelGroups,
    class_pos: Tensor,
    k: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``k`` sample indices from each listed class (PML's ``safe_random_choice`` rule).

    A class with at least ``k`` samples gives ``k`` distinct samples in random order; a smaller
    class gives ``k`` draws with replacement.

    Args:
        groups: the grouping of the dataset's labels.
        class_pos: ``Tensor[R]`` positions into ``groups.classes`` (not labels).

    Returns:
        ``Tensor[R, k]`` sample indices, on ``groups.order``'s device.
    """
    sizes = groups.sizes[class_pos]  # [R]
    pos = torch.empty(len(class_pos), k, dtype=torch.long, device=sizes.device)
    small = sizes < k
    big_rows = torch.where(~small)[0]
    pos[big_rows] = sample_without_replacement(sizes[big_rows], k, generator=generator)
    if bool(small.any()):
        small_rows = torch.where(small)[0]
        pos[small_rows] = sample_with_replacement(sizes[small_rows], k, generator=generator)
    return groups.order[groups.offsets[class_pos][:, None] + pos]


def m_per_class_batches(
    groups: LabelGroups,
    *,
    m: int,
    classes_per_batch: int,
    num_batches: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Class-balanced batches: ``classes_per_batch`` distinct random classes, ``m`` samples each.

    Each batch draws its classes afresh (an ordered subset of all classes) and, per class, ``m``
    samples by :func:`draw_from_classes`. Within a batch the ``m`` samples of a class are
    contiguous: ``batch[i*m:(i+1)*m]`` is the ``i``-th class (PML's layout).

    Returns:
        ``Tensor[num_batches, classes_per_batch * m]`` sample indices.
    """
    num_classes = len(groups.classes)
    device = groups.order.device
    cls = random_subsets(
        num_classes, classes_per_batch, num_batches, generator=generator, device=device
    )
    idx = draw_from_classes(groups, cls.reshape(-1), m, generator=generator)
    return idx.reshape(num_batches, classes_per_batch * m)


def fixed_triplets(
    groups: LabelGroups, num_triplets: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """Random ``(anchor, positive, negative)`` sample triplets.

    Per triplet: an ordered pair of distinct classes, uniform (anchor class, negative class);
    anchor and positive are two distinct samples of the anchor class (the same sample twice for a
    one-sample class); the negative is a uniform sample of the negative class. Needs two classes.

    Returns:
        ``Tensor[num_triplets, 3]`` sample indices.
    """
    c = len(groups.classes)
    device = groups.order.device
    u = _rand((2, num_triplets), generator, device)
    a_cls = _below(u[0], c)
    n_cls = (a_cls + 1 + _below(u[1], c - 1)) % c
    ap = draw_from_classes(groups, a_cls, 2, generator=generator)
    n = draw_from_classes(groups, n_cls, 1, generator=generator)
    return torch.cat([ap, n], dim=1)


def _greedy_fill(sizes: Tensor, capacity: int) -> Tensor:
    """Per row, which classes (columns, in order) a greedy fill keeps.

    Walking the columns in order, a class is taken when the sub-batch is not yet full and the
    class fits in what is left; a class that would overflow is skipped.

    Args:
        sizes: ``Tensor[R, C]`` class sizes in visiting order.

    Returns:
        ``Tensor[R, C]`` bool.
    """
    taken = torch.zeros_like(sizes, dtype=torch.bool)
    total = torch.zeros(sizes.shape[0], dtype=sizes.dtype, device=sizes.device)
    for j in range(sizes.shape[1]):
        take = (total < capacity) & (total + sizes[:, j] <= capacity)
        taken[:, j] = take
        total = total + torch.where(take, sizes[:, j], torch.zeros_like(total))
    return taken


def hierarchical_sub_batches(
    groups: LabelGroups,
    num: int,
    *,
    sub_batch_len: int,
    samples_per_class: int | None,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """``num`` sub-batches drawn from the classes of one super-class (Cakir et al., FastAP).

    Classes are visited in a fresh random order per sub-batch. With ``samples_per_class=k`` the
    first ``sub_batch_len // k`` visited classes give ``k`` samples each
    (:func:`draw_from_classes`); with ``None`` ("all") a class gives all its samples and is
    taken when it still fits (greedy, skipping classes that would overflow). A super-class with
    too few samples yields shorter sub-batches. Order inside a sub-batch is not randomised.

    Returns:
        ``num`` tensors of sample indices, each of length at most ``sub_batch_len``.
    """
    c = len(groups.classes)
    device = groups.order.device
    if samples_per_class is not None:
        q = min(sub_batch_len // samples_per_class, c)
        cls = random_subsets(c, q, num, generator=generator, device=device)
        idx = draw_from_classes(groups, cls.reshape(-1), samples_per_class, generator=generator)
        return list(idx.reshape(num, q * samples_per_class).unbind(0))
    visit = random_subsets(c, c, num, generator=generator, device=device)  # [num, C]
    taken = _greedy_fill(groups.sizes[visit], sub_batch_len)
    rows, cols = torch.where(taken)  # row-major: each row's classes in visiting order
    cls = visit[rows, cols]
    counts = groups.sizes[cls]
    seg_start = torch.cumsum(counts, 0) - counts
    offset_in_class = torch.arange(int(counts.sum()), device=device) - seg_start.repeat_interleave(
        counts
    )
    samples = groups.order[groups.offsets[cls].repeat_interleave(counts) + offset_in_class]
    lengths = torch.zeros(num, dtype=torch.long, device=device).index_add_(0, rows, counts)
    return list(torch.split(samples, lengths.tolist()))


def hierarchical_batches(
    super_groups: Sequence[LabelGroups],
    super_tuples: Sequence[tuple[int, ...]],
    *,
    batches_per_super_tuple: int,
    sub_batch_len: int,
    samples_per_class: int | None,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Batches of the hierarchical sampler (Cakir et al., "Deep Metric Learning to Rank", CVPR
    2019, https://arxiv.org/abs/1904.03213): for every tuple of super-classes,
    ``batches_per_super_tuple`` batches, each the shuffled union of one sub-batch per
    super-class of the tuple (:func:`hierarchical_sub_batches`); the list of batches is
    shuffled.

    Args:
        super_groups: per super-class, its samples grouped by class (dataset indices).
        super_tuples: tuples of positions into ``super_groups``.

    Returns:
        ``len(super_tuples) * batches_per_super_tuple`` tensors of sample indices.
    """
    per_super: dict[int, list[int]] = {}  # super position -> slots (batch, place) needing it
    for t, tup in enumerate(super_tuples):
        for b in range(batches_per_super_tuple):
            for s in tup:
                per_super.setdefault(s, []).append(t * batches_per_super_tuple + b)
    num_batches = len(super_tuples) * batches_per_super_tuple
    parts: list[list[Tensor]] = [[] for _ in range(num_batches)]
    for s in sorted(per_super):
        slots = per_super[s]
        subs = hierarchical_sub_batches(
            super_groups[s],
            len(slots),
            sub_batch_len=sub_batch_len,
            samples_per_class=samples_per_class,
            generator=generator,
        )
        for slot, sub in zip(slots, subs, strict=True):
            parts[slot].append(sub)
    device = super_groups[0].order.device if super_groups else torch.device("cpu")
    flat = torch.cat([t for chunks in parts for t in chunks] or [torch.empty(0, dtype=torch.long)])
    flat = flat.to(device)
    lengths = torch.tensor([sum(len(t) for t in chunks) for chunks in parts], device=device)
    # shuffle inside every batch at once: sort by (batch id + a uniform key in [0, 1))
    batch_id = torch.arange(num_batches, device=device).repeat_interleave(lengths)
    perm = torch.argsort(batch_id.double() + _rand((len(flat),), generator, device))
    batches = list(torch.split(flat[perm], lengths.tolist()))
    order = random_subsets(num_batches, num_batches, 1, generator=generator)[0].tolist()
    return [batches[i] for i in order]
