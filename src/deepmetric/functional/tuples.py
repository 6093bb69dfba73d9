"""Index tuples: all pairs and triplets of a batch, conversions between tuple forms, random
triplets, weights from mined tuples, self-comparison removal, masked log-sum-exp.

Tuple forms (see :mod:`deepmetric._types`): pairs ``(a1, p, a2, n)`` and triplets ``(a, p, n)``.
Anchors index the query batch (``labels``, size N); positives and negatives index the reference
set (``ref_labels``, size M). When the reference *is* the query -- ``ref_labels is None`` or the
very same tensor object as ``labels`` -- an element is never its own positive. A copy
(``labels.clone()``) counts as a separate set, so ``i`` pairs with ``i``.

Masks are ``BoolTensor``. PML returns uint8 0/1 masks; indexing, ``sum``, ``&`` and ``torch.where``
behave the same, but ``1 - mask`` does not: write ``~mask``.

Nothing here builds an N x M x M tensor: triplets are expanded from pairs grouped by anchor, so
memory is the output plus O(N * M).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch

from .. import _validation as V
from .._types import IndicesTuple, PairIndices, Tensor, TripletIndices
from ._dtype import upcast

#: Fewest output rows built per block when expanding pairs into triplets.
_MIN_BLOCK_ROWS = 1 << 22


def _check_tuple(owner: str, indices_tuple: Any) -> None:
    if not isinstance(indices_tuple, (tuple, list)) or len(indices_tuple) not in (3, 4):
        got = (
            f"length {len(indices_tuple)}"
            if isinstance(indices_tuple, (tuple, list))
            else type(indices_tuple).__name__
        )
        V.fail(owner, "an indices tuple (a, p, n) or (a1, p, a2, n)", got, exc=TypeError)


def _labels_for_all_tuples(owner: str, labels: Tensor | None) -> Tensor:
    if labels is None:
        V.fail(owner, "`labels` to build tuples when `indices_tuple` is None", "None")
    return labels


# ------------------------------------------------------------------ label masks and all tuples
def get_matches_and_diffs(
    labels: Tensor, ref_labels: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Same-label and different-label masks between queries and references.

    Args:
        labels: ``Tensor[N]``.
        ref_labels: ``Tensor[M]``; None means ``labels`` (self pairs removed from ``matches``).

    Returns:
        ``(matches, diffs)``, both ``BoolTensor[N, M]``; ``diffs = ~matches`` before the diagonal
        of ``matches`` is cleared (only when the reference is ``labels`` itself).
    """
    ref = labels if ref_labels is None else ref_labels
    matches = labels[:, None] == ref[None, :]  # [N, M]
    diffs = ~matches
    if ref is labels:
        matches.fill_diagonal_(False)
    return matches, diffs


def get_all_pairs_indices(labels: Tensor, ref_labels: Tensor | None = None) -> PairIndices:
    """Every positive pair ``(a1, p)`` and negative pair ``(a2, n)``, row-major order."""
    matches, diffs = get_matches_and_diffs(labels, ref_labels)
    a1, p = torch.where(matches)
    a2, n = torch.where(diffs)
    return a1, p, a2, n


def _expand_by_anchor(
    a1: Tensor, p: Tensor, n_grouped: Tensor, neg_count: Tensor, block_rows: int | None = None
) -> TripletIndices:
    """For each positive pair ``(a, p)`` in order, one triplet per negative of anchor ``a``.

    ``n_grouped`` holds the negatives grouped by anchor value (ascending), ``neg_count[v]`` of
    them for anchor ``v``; within a group their order is kept. The output is written block by
    block (``block_rows`` rows at least, default ``max(2**22, len(n_grouped))``), so the working
    memory beyond the output is O(pairs), not O(triplets).
    """
    neg_start = torch.cumsum(neg_count, 0) - neg_count  # [V] first negative of each anchor
    reps = neg_count.index_select(0, a1)  # [P] triplets per positive pair
    ends = torch.cumsum(reps, 0)
    total = int(ends[-1]) if len(ends) else 0
    out = (a1.new_empty(total), p.new_empty(total), n_grouped.new_empty(total))
    if total == 0:
        return out
    first_out = ends - reps  # [P] first output row of each pair
    # output row r of pair i takes negative neg_start[a1[i]] + (r - first_out[i])
    shift = neg_start.index_select(0, a1) - first_out  # [P]
    block = block_rows or max(_MIN_BLOCK_ROWS, len(n_grouped))
    for (i0, i1), (r0, r1) in _blocks(first_out, ends, block):
        pair_id = torch.repeat_interleave(reps[i0:i1], output_size=r1 - r0).add_(i0)
        neg_idx = torch.arange(r0, r1, device=a1.device).add_(shift.index_select(0, pair_id))
        torch.index_select(a1, 0, pair_id, out=out[0][r0:r1])
        torch.index_select(p, 0, pair_id, out=out[1][r0:r1])
        torch.index_select(n_grouped, 0, neg_idx, out=out[2][r0:r1])
    return out


def _blocks(
    first_out: Tensor, ends: Tensor, block: int
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Split consecutive pairs (pair i fills output rows ``first_out[i] .. ends[i]``) into runs
    of about ``block`` rows: ``[((first pair, end pair), (first row, end row)), ...]``."""
    total = int(ends[-1])
    starts = torch.searchsorted(first_out, torch.arange(0, total, block, device=ends.device))
    cuts = torch.unique_consecutive(torch.cat([starts, starts.new_tensor([len(ends)])]))
    rows = torch.cat([first_out, ends[-1:]]).index_select(0, cuts)
    pair_cuts, row_cuts = cuts.tolist(), rows.tolist()
    return list(zip(itertools.pairwise(pair_cuts), itertools.pairwise(row_cuts), strict=True))


def triplets_from_masks(matches: Tensor, diffs: Tensor) -> TripletIndices:
    """Every ``(a, p, n)`` with ``matches[a, p]`` and ``diffs[a, n]``, ordered by a, then p, then n.

    Args:
        matches, diffs: ``Tensor[N, M]`` masks (bool or 0/1).
    """
    matches, diffs = matches.bool(), diffs.bool()
    a, p = torch.where(matches)
    _, n = torch.where(diffs)  # grouped by anchor row, ascending
    return _expand_by_anchor(a, p, n, diffs.sum(dim=1))


def get_all_triplets_indices(labels: Tensor, ref_labels: Tensor | None = None) -> TripletIndices:
    """Every triplet ``(a, p, n)`` (same label a/p, different label a/n), ordered by a, p, n."""
    return triplets_from_masks(*get_matches_and_diffs(labels, ref_labels))


# ------------------------------------------------------------------ conversions
def convert_to_pairs(
    indices_tuple: IndicesTuple | None, labels: Tensor | None, ref_labels: Tensor | None = None
) -> PairIndices:
    """None -> all pairs; a pair tuple unchanged; a triplet ``(a, p, n)`` -> ``(a, p, a, n)``."""
    if indices_tuple is None:
        labels = _labels_for_all_tuples("convert_to_pairs", labels)
        return get_all_pairs_indices(labels, ref_labels)
    _check_tuple("convert_to_pairs", indices_tuple)
    if len(indices_tuple) == 4:
        return indices_tuple  # type: ignore[return-value]
    a, p, n = indices_tuple
    return a, p, a, n


def convert_to_pos_pairs_with_unique_labels(
    indices_tuple: IndicesTuple | None, labels: Tensor
) -> tuple[Tensor, Tensor]:
    """One positive pair per distinct anchor label: the first one in the tuple, ordered by label."""
    a1, p = convert_to_pairs(indices_tuple, labels)[:2]
    anchor_labels = labels[a1]
    order = torch.argsort(anchor_labels, stable=True)
    sorted_labels = anchor_labels[order]
    first = torch.ones_like(sorted_labels, dtype=torch.bool)
    first[1:] = sorted_labels[1:] != sorted_labels[:-1]
    keep = order[first]
    return a1[keep], p[keep]


def pos_pairs_from_tuple(indices_tuple: IndicesTuple) -> tuple[Tensor, ...]:
    """``indices_tuple[:2]``: the positive pairs ``(a, p)``."""
    return tuple(indices_tuple[:2])


def neg_pairs_from_tuple(indices_tuple: IndicesTuple) -> tuple[Tensor, ...]:
    """``indices_tuple[2:]``: ``(a2, n)`` of a pair tuple (``(n,)`` of a triplet tuple)."""
    return tuple(indices_tuple[2:])


def convert_to_triplets(
    indices_tuple: IndicesTuple | None,
    labels: Tensor | None,
    ref_labels: Tensor | None = None,
    t_per_anchor: int | str | None = 100,
    *,
    generator: torch.Generator | None = None,
) -> TripletIndices:
    """Triplets from any tuple form.

    None -> every triplet when ``t_per_anchor == "all"``, else :func:`get_random_triplet_indices`;
    a triplet tuple is returned unchanged; a pair tuple ``(a1, p, a2, n)`` -> every combination of
    a positive pair and a negative pair with the same anchor, in positive-pair order, each followed
    by its anchor's negative pairs in their order.
    """
    if indices_tuple is None:
        labels = _labels_for_all_tuples("convert_to_triplets", labels)
        if t_per_anchor == "all":
            return get_all_triplets_indices(labels, ref_labels)
        per_anchor: Any = t_per_anchor  # any other string is refused there
        return get_random_triplet_indices(
            labels, ref_labels, t_per_anchor=per_anchor, generator=generator
        )
    _check_tuple("convert_to_triplets", indices_tuple)
    if len(indices_tuple) == 3:
        return indices_tuple  # type: ignore[return-value]
    a1, p, a2, n = indices_tuple
    if len(a1) == 0 or len(a2) == 0:
        return a1[:0], p[:0], n[:0]
    size = int(torch.maximum(a1.max(), a2.max())) + 1
    grouped = n[torch.argsort(a2, stable=True)]
    return _expand_by_anchor(a1, p, grouped, torch.bincount(a2, minlength=size))


# ------------------------------------------------------------------ random triplets
def _uniform(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """``n`` uniform draws in [0, 1) from ``generator`` (on its device), moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=gen_device).to(device)


def _pick_uniform(mask: Tensor, rows: Tensor, generator: torch.Generator | None) -> Tensor:
    """For each row index in ``rows``, a uniformly drawn column ``j`` with ``mask[row, j]``."""
    cols = torch.where(mask)[1]  # grouped by row, ascending
    count = mask.sum(dim=1)
    start = torch.cumsum(count, 0) - count
    c = count[rows]
    offset = (_uniform(len(rows), rows.device, generator) * c).long()
    return cols[start[rows] + torch.minimum(offset, c - 1)]


def _pick_weighted(
    row_weights: Tensor, counts: Tensor, generator: torch.Generator | None
) -> Tensor:
    """``counts[i]`` draws (with replacement) from row ``i`` of ``row_weights``, row after row."""
    device = row_weights.device
    k_max = int(counts.max()) if len(counts) else 0
    if k_max == 0:
        return torch.empty(0, dtype=torch.long, device=device)
    gen_device = generator.device if generator is not None else device
    draws = torch.multinomial(
        row_weights.to(gen_device), k_max, replacement=True, generator=generator
    ).to(device)  # [A, k_max]
    return draws[torch.arange(k_max, device=device) < counts[:, None]]


def get_random_triplet_indices(
    labels: Tensor,
    ref_labels: Tensor | None = None,
    t_per_anchor: int | None = None,
    weights: Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> TripletIndices:
    """Random triplets, ``t_per_anchor`` per usable anchor.

    An anchor is usable when it has a positive (itself excluded when the reference is ``labels``)
    and a negative (with ``weights``: a negative of non-zero weight). Positives are drawn uniformly
    with replacement; negatives uniformly, or with probability proportional to
    ``weights[a, n]``. ``t_per_anchor=None`` draws as many triplets per anchor as the reference
    holds entries with the anchor's label (PML's rule). Output is ordered by anchor.

    Args:
        labels: ``Tensor[N]``; ``ref_labels``: ``Tensor[M]`` or None.
        weights: ``Tensor[N, M]`` non-negative sampling weights for negatives.
        generator: source of randomness; seeded, the result is reproducible.

    Returns:
        ``(a, p, n)`` LongTensors on ``labels``' device (empty when no anchor is usable).
    """
    owner = "get_random_triplet_indices"
    if t_per_anchor is not None and (
        isinstance(t_per_anchor, bool) or not isinstance(t_per_anchor, int) or t_per_anchor < 0
    ):
        V.fail(owner, "`t_per_anchor` to be None or an int >= 0", repr(t_per_anchor))
    matches, diffs = get_matches_and_diffs(labels, ref_labels)
    if weights is not None and weights.shape != matches.shape:
        expected = f"`weights` of shape (N, M)={tuple(matches.shape)}"
        V.fail(owner, expected, str(tuple(weights.shape)))
    n_pos = matches.sum(dim=1)
    if weights is None:
        usable = (n_pos > 0) & diffs.any(dim=1)
    else:
        w = weights.to(torch.float64 if weights.dtype == torch.float64 else torch.float32)
        neg_w = torch.where(diffs, w, torch.zeros_like(w))
        usable = (n_pos > 0) & (neg_w.sum(dim=1) > 0)
    if t_per_anchor is None:  # same-label references, the anchor itself included
        k = n_pos + int(ref_labels is None or ref_labels is labels)
    else:
        k = torch.full_like(n_pos, t_per_anchor)
    anchors = torch.where(usable)[0]
    counts = k[anchors]
    a = torch.repeat_interleave(anchors, counts)
    p = _pick_uniform(matches, a, generator)
    if weights is None:
        n = _pick_uniform(diffs, a, generator)
    else:
        n = _pick_weighted(neg_w[anchors], counts, generator)
    return a, p, n


# ------------------------------------------------------------------ sizes
def repeat_to_match_size(smaller_set: Tensor, larger_size: int, smaller_size: int) -> Tensor:
    """Tile ``smaller_set`` (length ``smaller_size``) and cut it to ``larger_size``."""
    repeats = -(-larger_size // smaller_size)
    return smaller_set.repeat(repeats)[:larger_size]


def matched_size_indices(curr_p_idx: Tensor, curr_n_idx: Tensor) -> tuple[Tensor, Tensor]:
    """Tile the shorter of the two index tensors so both have the longer one's length."""
    len_p, len_n = len(curr_p_idx), len(curr_n_idx)
    if len_p == len_n:
        return curr_p_idx, curr_n_idx
    if min(len_p, len_n) == 0:
        V.fail(
            "matched_size_indices",
            "two non-empty index tensors (an empty one cannot be tiled)",
            f"lengths ({len_p}, {len_n})",
        )
    if len_p < len_n:
        return repeat_to_match_size(curr_p_idx, len_n, len_p), curr_n_idx
    return curr_p_idx, repeat_to_match_size(curr_n_idx, len_p, len_n)


def meshgrid_from_sizes(x: Tensor, y: Tensor, dim: int = 0) -> tuple[Tensor, Tensor]:
    """``ij`` meshgrid of ``arange(x.size(dim))`` and ``arange(y.size(dim))``."""
    i = torch.arange(x.size(dim), device=x.device)
    j = torch.arange(y.size(dim), device=y.device)
    return torch.meshgrid(i, j, indexing="ij")  # type: ignore[return-value]


# ------------------------------------------------------------------ anchors and weights
def get_anchors(indices_tuple: IndicesTuple) -> Tensor:
    """The anchors of a tuple: ``a`` of a triplet, ``cat(a1, a2)`` of a pair tuple."""
    _check_tuple("get_anchors", indices_tuple)
    if len(indices_tuple) == 3:
        return indices_tuple[0]
    return torch.cat([indices_tuple[0], indices_tuple[2]])


def convert_to_weights(
    indices_tuple: IndicesTuple | None, labels: Tensor, dtype: torch.dtype, using_ref: bool = False
) -> Tensor:
    """Per-sample weights from a mined tuple: how often each index occurs, over the maximum.

    Counts run over every position of the tuple, or over the anchors only when ``using_ref``
    (positives/negatives then index another set). No tuple, or only empty tensors, gives all ones
    (an empty mining result keeps every sample).

    Returns:
        ``Tensor[N]`` of ``dtype`` on ``labels``' device.
    """
    n = len(labels)
    if indices_tuple is None or all(len(t) == 0 for t in indices_tuple):
        return torch.ones(n, dtype=dtype, device=labels.device)
    idx = get_anchors(indices_tuple) if using_ref else torch.cat(list(indices_tuple))
    counts = torch.bincount(idx.to(labels.device), minlength=n)
    if len(counts) > n:
        V.fail(
            "convert_to_weights",
            f"indices below len(labels)={n}",
            f"index {len(counts) - 1}",
            "With a separate reference set pass using_ref=True.",
        )
    counts = counts.to(torch.promote_types(dtype, torch.float32))
    return (counts / counts.max()).to(dtype)


# ------------------------------------------------------------------ memory-bank self comparisons
def not_self_comparisons(
    a: Tensor,
    p: Tensor,
    s: Any,
    e: Any,
    curr_batch_idx: Tensor,
    ref_size: Any,
    ref_is_subset: bool = False,
) -> Tensor:
    """``BoolTensor`` keep-mask that is False where a positive is the anchor's own sample.

    The current batch sits at memory slots ``curr_batch_idx`` (wrap-around included). By default
    anchors index the batch and positives the memory: drop ``p == curr_batch_idx[a]``. With
    ``ref_is_subset`` anchors index the memory and positives the batch: drop
    ``curr_batch_idx[p] == a``. ``s``, ``e`` (first/last slot) and ``ref_size`` are accepted for
    PML compatibility; the slots in ``curr_batch_idx`` already say everything.
    """
    del s, e, ref_size
    slots = curr_batch_idx.to(a.device)
    if len(slots) == 0:
        return torch.ones_like(p, dtype=torch.bool)
    if not ref_is_subset:
        return p != slots[a]
    in_batch = p < len(slots)
    return ~(in_batch & (slots[p.clamp(max=len(slots) - 1)] == a))


def remove_self_comparisons(
    indices_tuple: IndicesTuple,
    curr_batch_idx: Tensor,
    ref_size: int,
    ref_is_subset: bool = False,
) -> IndicesTuple:
    """Drop positive pairs (or triplets) whose positive is the anchor's own memory slot
    (see :func:`not_self_comparisons`); negatives of a pair tuple are kept as they are."""
    _check_tuple("remove_self_comparisons", indices_tuple)
    a, p = indices_tuple[0], indices_tuple[1]
    keep = not_self_comparisons(a, p, None, None, curr_batch_idx, ref_size, ref_is_subset)
    if len(indices_tuple) == 3:
        return a[keep], p[keep], indices_tuple[2][keep]
    return a[keep], p[keep], indices_tuple[2], indices_tuple[3]


# ------------------------------------------------------------------ index-tuple arithmetic
def shift_indices_tuple(indices_tuple: IndicesTuple, batch_size: int) -> IndicesTuple:
    """Add ``batch_size`` to the reference-side indices (p, n), e.g. after ``cat([emb, ref])``."""
    _check_tuple("shift_indices_tuple", indices_tuple)
    if len(indices_tuple) == 3:
        a, p, n = indices_tuple
        return a, p + batch_size, n + batch_size
    a1, p, a2, n = indices_tuple
    return a1, p + batch_size, a2, n + batch_size


def concatenate_indices_tuples(
    indices_tuple1: Sequence[Tensor], indices_tuple2: Sequence[Tensor]
) -> tuple[Tensor, ...]:
    """Element-wise concatenation of two tuples of the same form."""
    return tuple(torch.cat([x, y]) for x, y in zip(indices_tuple1, indices_tuple2, strict=True))


# ------------------------------------------------------------------ masked log-sum-exp
def logsumexp(
    x: Tensor, keep_mask: Tensor | None = None, add_one: bool = True, dim: int = 1
) -> Tensor:
    """``log(add_one + sum_{j kept} exp(x_j))`` along ``dim`` (kept dim, size 1).

    Masked entries are ignored; a slice with nothing kept gives 0. float16/bfloat16 are computed
    in float32 and returned in the input dtype.

    Args:
        x: ``Tensor[..., K, ...]``.
        keep_mask: mask broadcastable to ``x`` (bool, or non-zero = keep).
        add_one: include a zero logit (the ``1 +`` inside the log).
    """
    work = upcast(x)
    keep = None
    if keep_mask is not None:
        keep = keep_mask if keep_mask.dtype == torch.bool else keep_mask != 0
        work = work.masked_fill(~keep, torch.finfo(work.dtype).min)
    if add_one:
        shape = list(work.shape)
        shape[dim] = 1
        work = torch.cat([work, work.new_zeros(shape)], dim=dim)
    out = torch.logsumexp(work, dim=dim, keepdim=True)
    if keep is not None:
        out = out.masked_fill(~keep.any(dim=dim, keepdim=True), 0)
    return out.to(x.dtype)
