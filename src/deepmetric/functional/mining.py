"""Mining kernels: the selection rules behind :mod:`deepmetric.miners`, as pure functions.

Notation. ``mat: Tensor[N, M]`` compares N queries (anchors) with M references: distances
(``is_inverted=False``, small = close) or similarities (``is_inverted=True``, large = close).
``pos``/``neg`` are ``BoolTensor[N, M]`` masks of positive (same label, self pairs removed) and
negative (different label) pairs, as from :func:`.tuples.get_matches_and_diffs`.
Every function returns index tensors on ``mat``'s device, ordered as pytorch-metric-learning
orders them (documented per function), so a miner is a thin wrapper around one call here.

Memory. The rules that look at every triplet (:func:`triplet_margin_select`,
:func:`angular_select`) never build an ``N x P x M`` tensor: they walk blocks of positive pairs,
each against all M references, twice -- once to count the selected triplets, once to write them
into the exactly-sized output. Working memory is O(N M + block) on top of the output; the
per-row rules reuse block buffers instead of ``N x M`` temporaries.

Speed. On CPU, mask compaction, integer index arithmetic and row sorts go through numpy (SIMD
``flatnonzero``/``compress``, constant-divisor division, SIMD sort); CUDA tensors take the torch
path. Both give the same indices in the same order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from .._types import PairIndices, Tensor, TripletIndices
from ._dtype import upcast

__all__ = [
    "DEFAULT_BLOCK_ELEMENTS",
    "AngleStats",
    "angular_select",
    "batch_easy_hard_select",
    "distance_weighted_weights",
    "extreme_per_row",
    "hardest_fraction",
    "multi_similarity_select",
    "pair_margin_select",
    "triplet_margin_select",
    "triplet_margin_stats",
    "uniform_histogram_select",
]

#: Upper bound on ``pairs_per_block * M`` entries evaluated at once by the all-triplet rules.
DEFAULT_BLOCK_ELEMENTS = 1 << 20

#: ``torch.nn.functional.pairwise_distance``'s ``eps`` (added to the difference before the norm).
_PAIRWISE_EPS = 1e-6


# ------------------------------------------------------------------ mask helpers
# Measured on CPU (torch 2.13): torch.nonzero, where/masked_fill with a mask, bool reductions and
# int64 arithmetic run 5-20x slower than numpy's SIMD equivalents or plain float arithmetic; the
# hot paths use these helpers, which give identical results.
def _use_numpy(t: Tensor) -> bool:
    """Whether ``t`` takes the numpy fast path (CPU tensors); tests switch it off to run the
    torch path that CUDA tensors take."""
    return t.device.type == "cpu"


def _flat_nonzero(mask: Tensor) -> Tensor:
    """``LongTensor[K]``: flat positions of the True entries of ``mask``, ascending."""
    if _use_numpy(mask):
        return torch.from_numpy(np.flatnonzero(mask.contiguous().numpy()))
    return torch.nonzero(mask.reshape(-1)).view(-1)


def _rows_of(flat: Tensor, cols: int) -> Tensor:
    """``flat // cols`` (numpy's constant-divisor division on CPU)."""
    if _use_numpy(flat):
        return torch.from_numpy(np.floor_divide(flat.numpy(), cols))
    return torch.div(flat, cols, rounding_mode="floor")


def _where(mask: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.where(mask)`` for a 2-D mask: (rows, columns) of the True entries, row-major."""
    flat = _flat_nonzero(mask)
    rows = _rows_of(flat, mask.shape[1])
    return rows, flat - rows * mask.shape[1]


def _row_counts(mask: Tensor) -> Tensor:
    """``mask.sum(dim=1)`` as ``IntTensor[N]``."""
    return mask.view(torch.uint8).sum(dim=1, dtype=torch.int32)


# ------------------------------------------------------------------ all triplets, blockwise
def _block_rows(n_refs: int, block_elements: int) -> int:
    """Positive pairs per block: ``rows * n_refs <= block_elements`` (at least one)."""
    return max(1, block_elements // max(n_refs, 1))


def _blockwise_triplets(
    a1: Tensor,
    p: Tensor,
    n_refs: int,
    keep: Callable[[int, int], Tensor],
    rows: int,
) -> TripletIndices:
    """Every ``(a1[k], p[k], j)`` with ``keep(k0, k1)[k - k0, j]``, ordered by k, then j.

    ``keep(k0, k1)`` returns ``BoolTensor[k1 - k0, n_refs]`` (contiguous) for positive pairs
    ``k0 .. k1`` (at most ``rows`` of them); it is called twice per block (count, then fill) and
    must give the same answer both times. Only the output is allocated at full size.
    """
    bounds = list(itertools.pairwise([*range(0, len(a1), rows), len(a1)]))
    counts = [int(torch.count_nonzero(keep(k0, k1))) for k0, k1 in bounds]
    total = sum(counts)
    out = (a1.new_empty(total), p.new_empty(total), a1.new_empty(total))
    if total == 0:
        return out
    fill = _TripletFiller(a1, p, n_refs, rows, max(counts), out)
    start = 0
    for (k0, k1), count in zip(bounds, counts, strict=True):
        if count:
            fill(keep(k0, k1), k0, start, start + count)
            start += count
    return out


class _TripletFiller:
    """Writes the True entries of a block mask (row r = positive pair ``k0 + r``) as triplets
    into slices of ``out``, through scratch buffers allocated once per call."""

    def __init__(
        self, a1: Tensor, p: Tensor, cols: int, rows: int, most: int, out: TripletIndices
    ) -> None:
        self.a1, self.p, self.cols, self.out = a1, p, cols, out
        self.numpy = _use_numpy(a1)
        if self.numpy:  # numpy: SIMD compaction, constant-divisor division, no temporaries
            self.positions = np.arange(min(rows, len(a1)) * cols, dtype=np.int64)
            self.pairs = np.empty(most, dtype=np.int64)
            self.scratch = np.empty(most, dtype=np.int64)

    def __call__(self, sel: Tensor, k0: int, start: int, end: int) -> None:
        cols, (a_out, p_out, n_out) = self.cols, self.out
        if not self.numpy:
            flat = torch.nonzero(sel.view(-1)).view(-1)
            pair = torch.div(flat, cols, rounding_mode="floor")
            torch.sub(flat, pair * cols, out=n_out[start:end])
            pair += k0
            torch.index_select(self.a1, 0, pair, out=a_out[start:end])
            torch.index_select(self.p, 0, pair, out=p_out[start:end])
            return
        mask = sel.numpy().reshape(-1)
        n = n_out.numpy()[start:end]
        np.compress(mask, self.positions[: mask.size], out=n)  # flat positions, in order
        pair_ids, scratch = self.pairs[: end - start], self.scratch[: end - start]
        np.floor_divide(n, cols, out=pair_ids)
        np.multiply(pair_ids, cols, out=scratch)
        np.subtract(n, scratch, out=n)  # column = position - pair * cols
        pair_ids += k0
        # mode="wrap" writes straight into ``out`` ("raise" buffers); indices are in range
        np.take(self.a1.numpy(), pair_ids, out=a_out.numpy()[start:end], mode="wrap")
        np.take(self.p.numpy(), pair_ids, out=p_out.numpy()[start:end], mode="wrap")


def triplet_margin_select(
    mat: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    margin: float,
    type_of_triplets: str,
    is_inverted: bool,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> TripletIndices:
    """Triplets by their margin ``m = d_an - d_ap`` (``s_ap - s_an`` for similarities).

    Over every triplet ``(a, p, n)`` with ``pos[a, p]`` and ``neg[a, n]``:

    * ``"all"``: ``m <= margin`` (the margin is violated);
    * ``"hard"``: ``m <= margin`` and ``m <= 0`` (the negative is at least as close as the
      positive);
    * ``"semihard"``: ``0 < m <= margin``;
    * ``"easy"``: ``m > margin``.

    Args:
        mat: ``Tensor[N, M]``; ``pos``, ``neg``: ``BoolTensor[N, M]``.
        margin: the margin, in ``mat``'s units.
        type_of_triplets: one of the four names above.
        is_inverted: ``mat`` holds similarities.
        block_elements: entries of ``mat`` compared at once (memory knob).

    Returns:
        ``(a, p, n)`` ``LongTensor[T]`` ordered by a, then p, then n. Time O(N P M) for at most P
        positives per anchor, memory O(N M + block_elements) besides the output.
    """
    a1, p = _where(pos)  # [K] positive pairs, row-major
    ap = mat[a1, p]  # [K]
    n_refs = mat.shape[1]
    rows = _block_rows(n_refs, block_elements)
    buf = mat.new_empty(min(rows, len(a1)), n_refs)  # margins of one block
    sel_buf, aux_buf = (torch.empty(buf.shape, dtype=torch.bool, device=mat.device) for _ in "ab")

    def keep(k0: int, k1: int) -> Tensor:
        anchors = a1[k0:k1]
        tm, sel, aux = buf[: k1 - k0], sel_buf[: k1 - k0], aux_buf[: k1 - k0]
        torch.index_select(mat, 0, anchors, out=tm)  # [B, M] anchor-reference values
        if is_inverted:
            torch.sub(ap[k0:k1, None], tm, out=tm)
        else:
            tm.sub_(ap[k0:k1, None])
        if type_of_triplets == "easy":
            torch.gt(tm, margin, out=sel)
        else:
            torch.le(tm, margin, out=sel)
            if type_of_triplets == "hard":
                sel.logical_and_(torch.le(tm, 0, out=aux))
            elif type_of_triplets == "semihard":
                sel.logical_and_(torch.gt(tm, 0, out=aux))
        return sel.logical_and_(torch.index_select(neg, 0, anchors, out=aux))

    return _blockwise_triplets(a1, p, n_refs, keep, rows)


def triplet_margin_stats(
    mat: Tensor, pos: Tensor, neg: Tensor, *, is_inverted: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Means over *every* triplet (before selection) of the margin, ``d_ap`` and ``d_an``.

    Closed form in O(N M): anchor ``a`` contributes each of its positive values once per
    negative and each negative value once per positive. Sums run in float64.

    Returns:
        ``(avg_triplet_margin, pos_pair_dist, neg_pair_dist)``, 0-dim in ``mat``'s dtype; NaN when
        there is no triplet (the mean of nothing).
    """
    x = mat.double()
    n_pos = _row_counts(pos).double()  # [N]
    n_neg = _row_counts(neg).double()  # [N]
    sum_ap = ((x * pos).sum(dim=1) * n_neg).sum()
    sum_an = ((x * neg).sum(dim=1) * n_pos).sum()
    count = (n_pos * n_neg).sum()
    margin = (sum_ap - sum_an) if is_inverted else (sum_an - sum_ap)
    return tuple((v / count).to(mat.dtype) for v in (margin, sum_ap, sum_an))  # type: ignore[return-value]


class AngleStats(NamedTuple):
    """Aggregates of the angles of every triplet, in radians (0-dim float64 tensors)."""

    num: Tensor
    total: Tensor
    total_sq: Tensor
    minimum: Tensor
    maximum: Tensor
    num_above: Tensor
    total_above: Tensor


def angular_select(
    embeddings: Tensor,
    ref_emb: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    angle: float,
    with_stats: bool = False,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[TripletIndices, AngleStats | None]:
    """Triplets whose angle at the negative exceeds ``angle`` (radians).

    Wang et al., "Deep Metric Learning with Angular Loss", ICCV 2017,
    https://arxiv.org/abs/1708.01682 (sec. 3.2). With ``c = (x_a + x_p) / 2``::

        angle(a, p, n) = atan(||x_a - x_p|| / (2 ||x_n - c||))

    on the raw (un-normalised) embeddings, both norms as in
    ``torch.nn.functional.pairwise_distance`` (``||u - v + 1e-6||``). ``||x_n - c||`` for a block of
    positive pairs against all references is one GEMM, never an ``N x P x M x D`` tensor.

    Args:
        embeddings: ``Tensor[N, D]`` anchors; ``ref_emb``: ``Tensor[M, D]`` positives/negatives.
        pos, neg: ``BoolTensor[N, M]``.
        angle: threshold in radians.
        with_stats: also return :class:`AngleStats` over every triplet.

    Returns:
        ``((a, p, n), stats)``; the triplets ordered by a, then p, then n. float16/bfloat16 are
        computed in float32.
    """
    x, y = upcast(embeddings), upcast(ref_emb)
    a1, p = _where(pos)  # [K]
    ap = torch.nn.functional.pairwise_distance(x[a1], y[p])  # [K] ||x_a - x_p + eps||
    shifted = y + _PAIRWISE_EPS  # ||x_n - c + eps|| = ||(x_n + eps) - c||
    sq_ref = (shifted * shifted).sum(dim=1)  # [M]

    def angles(k0: int, k1: int) -> Tensor:
        centers = (x[a1[k0:k1]] + y[p[k0:k1]]) / 2  # [B, D]
        sq = torch.addmm(sq_ref[None, :], centers, shifted.T, alpha=-2)
        sq += (centers * centers).sum(dim=1, keepdim=True)
        nc = sq.clamp_min_(0).sqrt_()  # [B, M] ||x_n - c + eps||
        return torch.atan(ap[k0:k1, None] / (2 * nc))

    def keep(k0: int, k1: int) -> Tensor:
        return (angles(k0, k1) > angle).logical_and_(neg.index_select(0, a1[k0:k1]))

    rows = _block_rows(y.shape[0], block_elements)
    stats = _angle_stats(a1, neg, angles, angle, rows) if with_stats else None
    return _blockwise_triplets(a1, p, y.shape[0], keep, rows), stats


def _angle_stats(
    a1: Tensor,
    neg: Tensor,
    angles: Callable[[int, int], Tensor],
    threshold: float,
    rows: int,
) -> AngleStats:
    f64 = torch.float64
    acc = dict.fromkeys(("num", "total", "total_sq", "num_above", "total_above"), 0.0)
    lo, hi = math.inf, -math.inf
    for k0 in range(0, len(a1), rows):
        k1 = min(k0 + rows, len(a1))
        mask = neg.index_select(0, a1[k0:k1])
        ang = angles(k0, k1)[mask]  # this block's triplet angles
        if ang.numel() == 0:
            continue
        above = ang > threshold
        ang = ang.to(f64)
        acc["num"] += ang.numel()
        acc["total"] += float(ang.sum())
        acc["total_sq"] += float((ang * ang).sum())
        acc["num_above"] += float(above.sum())
        acc["total_above"] += float(ang[above].sum())
        lo, hi = min(lo, float(ang.min())), max(hi, float(ang.max()))
    t = {k: torch.tensor(v, dtype=f64) for k, v in acc.items()}
    return AngleStats(
        t["num"],
        t["total"],
        t["total_sq"],
        torch.tensor(lo, dtype=f64),
        torch.tensor(hi, dtype=f64),
        t["num_above"],
        t["total_above"],
    )


# ------------------------------------------------------------------ one pair per anchor row
def extreme_per_row(
    mat: Tensor,
    mask: Tensor,
    *,
    largest: bool,
    val_range: tuple[float, float] | None = None,
    thresholds: Tensor | None = None,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per row, the largest (or smallest) entry of ``mat`` among the allowed ones.

    Allowed: ``mask``, inside ``val_range = (low, high)`` (both ends included) and, with
    ``thresholds``, strictly below ``thresholds[row]`` (``largest``) or strictly above it.
    Rows are processed in blocks of about ``block_elements`` entries through reused buffers,
    so no ``N x M`` temporary is allocated.

    Returns:
        ``(values, columns, valid)``, each ``Tensor[N]``. Rows without an allowed entry have
        ``valid`` False and the value ``finfo.min`` (``largest``) or ``finfo.max``. Ties go to the
        first column.
    """
    n, m = mat.shape
    finfo = torch.finfo(mat.dtype)
    fill = finfo.min if largest else finfo.max
    values = mat.new_empty(n)
    columns = torch.empty(n, dtype=torch.long, device=mat.device)
    valid = torch.empty(n, dtype=torch.bool, device=mat.device)
    rows = min(_block_rows(m, block_elements), n)
    keep, aux = (torch.empty(rows, m, dtype=torch.bool, device=mat.device) for _ in "ka")
    k_buf, work_buf = mat.new_empty(rows, m), mat.new_empty(rows, m)
    for r0 in range(0, n, rows):
        r1 = min(r0 + rows, n)
        block, allowed = mat[r0:r1], keep[: r1 - r0]
        allowed.copy_(mask[r0:r1])
        if thresholds is not None:
            compare = torch.lt if largest else torch.gt
            allowed.logical_and_(compare(block, thresholds[r0:r1, None], out=aux[: r1 - r0]))
        if val_range is not None:
            allowed.logical_and_(torch.ge(block, val_range[0], out=aux[: r1 - r0]))
            allowed.logical_and_(torch.le(block, val_range[1], out=aux[: r1 - r0]))
        k, work = k_buf[: r1 - r0], work_buf[: r1 - r0]
        k.copy_(allowed)
        torch.mul(k, -fill, out=work).add_(fill)
        work.addcmul_(block, k)  # fill - fill*k + block*k: block where allowed, else fill
        reduce = torch.max if largest else torch.min
        reduce(work, dim=1, out=(values[r0:r1], columns[r0:r1]))
        torch.gt(allowed.view(torch.uint8).amax(dim=1), 0, out=valid[r0:r1])
    return values, columns, valid


def batch_easy_hard_select(
    mat: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    pos_strategy: str,
    neg_strategy: str,
    is_inverted: bool,
    allowed_pos_range: tuple[float, float] | None = None,
    allowed_neg_range: tuple[float, float] | None = None,
) -> tuple[PairIndices, Tensor, Tensor]:
    """One positive and one negative per anchor, picked by strategy.

    Xuan et al., "Improved Embeddings with Easy Positive Triplet Mining", WACV 2020,
    https://arxiv.org/abs/1904.04370; Hermans et al., "In Defense of the Triplet Loss for Person
    Re-Identification", 2017, https://arxiv.org/abs/1703.07737 (batch hard).

    For distances (mirrored for similarities), among the entries in the allowed range:

    * positives: ``"hard"`` farthest, ``"easy"`` nearest, ``"semihard"`` farthest one still
      strictly nearer than the anchor's selected negative, ``"all"`` every positive pair;
    * negatives: ``"hard"`` nearest, ``"easy"`` farthest, ``"semihard"`` nearest one strictly
      farther than the anchor's selected positive, ``"all"`` every negative pair.

    Without ``"all"`` an anchor is kept when it has both a selected positive and negative and the
    output is ``(a, p, a, n)``; with ``"all"`` on one side that side lists every pair (row-major)
    and the other side its kept anchors.

    Returns:
        ``((a1, p, a2, n), pos_values, neg_values)``: the pairs and their ``mat`` values.
    """

    def pick(side: str, other_values: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        strategy = pos_strategy if side == "pos" else neg_strategy
        far = strategy in ("hard", "semihard") if side == "pos" else strategy == "easy"
        return extreme_per_row(
            mat,
            pos if side == "pos" else neg,
            largest=far != is_inverted,
            val_range=allowed_pos_range if side == "pos" else allowed_neg_range,
            thresholds=other_values,
        )

    if pos_strategy == "semihard" and neg_strategy != "all":
        neg_v, neg_i, neg_ok = pick("neg")
        pos_v, pos_i, pos_ok = pick("pos", neg_v)
    elif neg_strategy == "semihard" and pos_strategy != "all":
        pos_v, pos_i, pos_ok = pick("pos")
        neg_v, neg_i, neg_ok = pick("neg", pos_v)
    else:
        if pos_strategy != "all":
            pos_v, pos_i, pos_ok = pick("pos")
        if neg_strategy != "all":
            neg_v, neg_i, neg_ok = pick("neg")

    if pos_strategy != "all" and neg_strategy != "all":
        a = torch.where(pos_ok & neg_ok)[0]
        return (a, pos_i[a], a, neg_i[a]), pos_v[a], neg_v[a]
    if pos_strategy == "all":
        a1, p = _where(pos)
        pos_values = mat[a1, p]
    else:
        a1 = torch.where(pos_ok)[0]
        p, pos_values = pos_i[a1], pos_v[a1]
    if neg_strategy == "all":
        a2, n = _where(neg)
        neg_values = mat[a2, n]
    else:
        a2 = torch.where(neg_ok)[0]
        n, neg_values = neg_i[a2], neg_v[a2]
    return (a1, p, a2, n), pos_values, neg_values


# ------------------------------------------------------------------ pair rules
def pair_margin_select(
    mat: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    pos_margin: float,
    neg_margin: float,
    is_inverted: bool,
) -> PairIndices:
    """Positive pairs with ``d > pos_margin`` and negative pairs with ``d < neg_margin``
    (``s < pos_margin`` / ``s > neg_margin`` for similarities), row-major order."""
    if is_inverted:
        hard_pos, hard_neg = mat < pos_margin, mat > neg_margin
    else:
        hard_pos, hard_neg = mat > pos_margin, mat < neg_margin
    a1, p = _where(hard_pos.logical_and_(pos))
    a2, n = _where(hard_neg.logical_and_(neg))
    return a1, p, a2, n


def multi_similarity_select(
    mat: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    epsilon: float,
    is_inverted: bool,
) -> PairIndices:
    """Multi-similarity pair mining.

    Wang et al., "Multi-Similarity Loss with General Pair Weighting for Deep Metric Learning",
    CVPR 2019, https://arxiv.org/abs/1904.06627 (sec. 3.3, eq. 5-6). For similarities a positive
    pair is kept when ``s_ip - epsilon < max_n s_in`` and a negative pair when
    ``s_in + epsilon > min_p s_ip``; for distances ``d_ip + epsilon > min_n d_in`` and
    ``d_in - epsilon < max_p d_ip``. An anchor without negatives keeps no positive and vice versa.

    Returns:
        ``(a1, p, a2, n)`` grouped by anchor (ascending); within an anchor the pairs are ordered
        by ascending ``mat`` value (ties by column), as pytorch-metric-learning's sort gives them.
    """
    # the anchor's hardest negative and hardest positive ([N] each; invalid rows keep nothing)
    hardest_neg, _, has_neg = extreme_per_row(mat, neg, largest=is_inverted)
    hardest_pos, _, has_pos = extreme_per_row(mat, pos, largest=not is_inverted)
    if is_inverted:
        keep_pos = (mat - epsilon) < hardest_neg[:, None]
        keep_neg = (mat + epsilon) > hardest_pos[:, None]
    else:
        keep_pos = (mat + epsilon) > hardest_neg[:, None]
        keep_neg = (mat - epsilon) < hardest_pos[:, None]
    keep_pos &= pos & has_neg[:, None]
    keep_neg &= neg & has_pos[:, None]
    order = _row_order(mat)  # [N, M] columns by ascending value
    flat_order = order.view(-1)
    out = []
    for keep in (keep_pos, keep_neg):
        flat = _flat_nonzero(keep.gather(1, order))  # (row, rank) of kept pairs, row-major
        out += [_rows_of(flat, mat.shape[1]), flat_order[flat]]
    return out[0], out[1], out[2], out[3]


def _row_order(mat: Tensor) -> Tensor:
    """``torch.sort(mat, dim=1, stable=True).indices``: per row, columns by ascending value,
    ties by column.

    On CPU for 16/32-bit floats: numpy's SIMD sort of 64-bit keys (the value's order-preserving
    32-bit pattern, then the column), about 10x faster than torch's CPU sort; same result.
    """
    if not _use_numpy(mat) or mat.dtype == torch.float64 or mat.shape[1] >= 1 << 32:
        return torch.sort(mat, dim=1, stable=True).indices
    signed = (mat.detach().float() + 0.0).numpy().view(np.int32)  # + 0.0: -0.0 ties with 0.0
    signed = signed ^ ((signed >> 31) & np.int32(0x7FFFFFFF))  # int order = float order
    keys = (signed.view(np.uint32) ^ np.uint32(1 << 31)).astype(np.uint64)
    keys <<= np.uint64(32)
    keys |= np.arange(mat.shape[1], dtype=np.uint64)
    keys.sort(axis=1)
    keys &= np.uint64(0xFFFFFFFF)
    return torch.from_numpy(keys.view(np.int64))


def hardest_fraction(values: Tensor, *, fraction: float, largest: bool) -> Tensor:
    """Positions of the ``ceil(fraction * len(values))`` largest (or smallest) values, sorted
    from the most extreme (``torch.topk`` order).

    Yuan et al., "Hard-Aware Deeply Cascaded Embedding", ICCV 2017,
    https://arxiv.org/abs/1611.05720 (sec. 3.2).
    """
    k = math.ceil(fraction * len(values))
    return torch.topk(values, k=k, largest=largest).indices


# ------------------------------------------------------------------ random rules
def _uniform(
    shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None
) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def uniform_histogram_select(
    values: Tensor,
    *,
    num_bins: int,
    per_bin: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Positions drawn so every occupied histogram bin of ``values`` is equally represented.

    ``num_bins + 1`` edges ``linspace(min, max)`` in ``values``' dtype; bin ``i`` holds
    ``edge_i <= v < edge_{i+1}``, the last bin also ``v == max``. From every non-empty bin
    ``per_bin`` positions are drawn uniformly with replacement.

    Args:
        values: ``Tensor[K]``, K > 0.
        generator: source of randomness (None: torch's global generator).

    Returns:
        ``LongTensor[per_bin * occupied_bins]``, bin after bin (ascending).
    """
    edges = torch.linspace(
        values.min(), values.max(), num_bins + 1, dtype=values.dtype, device=values.device
    )
    bins = (torch.searchsorted(edges, values, right=True) - 1).clamp_(0, num_bins - 1)  # [K]
    order = torch.argsort(bins, stable=True)  # positions grouped by bin
    count = torch.bincount(bins, minlength=num_bins)  # [num_bins]
    start = torch.cumsum(count, 0) - count
    occupied = torch.where(count > 0)[0]  # [B] ascending
    draws = _uniform((len(occupied), per_bin), values.device, generator)  # [B, per_bin]
    c = count[occupied, None]
    offset = torch.minimum((draws * c).long(), c - 1)
    return order[(start[occupied, None] + offset).flatten()]


def distance_weighted_weights(
    mat: Tensor,
    same_class: Tensor,
    *,
    dim: int,
    cutoff: float,
    nonzero_loss_cutoff: float,
) -> Tensor:
    """Row-normalised negative sampling weights ``w_ij ~ 1 / q(d_ij)``.

    Wu et al., "Sampling Matters in Deep Embedding Learning", ICCV 2017,
    https://arxiv.org/abs/1706.07567 (sec. 4): on the unit sphere in ``dim`` dimensions the
    density of pairwise distances is ``q(d) ~ d^(dim-2) (1 - d^2/4)^((dim-3)/2)``. With
    ``d = max(d_ij, cutoff)``::

        log w_ij = (2 - dim) log d - ((dim - 3) / 2) log(1 - d^2 / 4)

    Same-class entries get weight 0, and so do entries with ``d >= nonzero_loss_cutoff`` or a
    non-finite ``log w``. The weights are ``exp(log w - max)`` (the maximum taken over the finite
    values, same-class entries counted as 0, as pytorch-metric-learning does), then divided by
    their row sum; a row without any weight is NaN (and is skipped by the sampler).

    Args:
        mat: ``Tensor[N, M]`` Euclidean distances between unit vectors.
        same_class: ``BoolTensor[N, M]`` (the anchor itself included).

    Returns:
        ``Tensor[N, M]`` float32 (float64 for float64 input).
    """
    d = upcast(mat).clamp(min=cutoff)
    log_w = (2.0 - dim) * torch.log(d) - ((dim - 3) / 2) * torch.log(1.0 - 0.25 * d * d)
    finite = torch.isfinite(log_w)
    log_w = log_w.masked_fill(same_class, 0.0)
    shift = log_w[finite].max() if bool(finite.any()) else log_w.new_zeros(())
    weights = torch.exp(log_w - shift)
    weights = weights.masked_fill(same_class | ~finite | (d >= nonzero_loss_cutoff), 0.0)
    return weights / weights.sum(dim=1, keepdim=True)
