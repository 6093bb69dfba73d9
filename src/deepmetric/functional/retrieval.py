"""Retrieval: exact blockwise k-nearest-neighbour search, ranks of positives, ranking metrics.

Everything here streams the query-by-reference distance matrix in tiles of
``query_block x reference_block`` entries, so memory is bounded by the block sizes, never by
``N x M`` (the idea of faiss' ``contrib/exhaustive_search.knn_ground_truth``: exact search block
by block with a merged top-k).

**Order and ties.** "Closer" means a smaller value of ``distance_fn`` (similarities are negated
by the caller). Neighbours are ordered by ``(value, reference index)`` ascending: among references
at exactly the same distance the one with the smaller index comes first. This is the order
faiss' ``IndexFlatL2`` returns (so PML's default k-NN), checked in the tests with exact
integer-valued embeddings. Values that differ only by floating-point rounding are not ties.

**Ranks.** The retrieval metrics need only where the positives (same-label references) land in
each query's ranking, not the whole ranking. :func:`positive_ranks` finds, for every query, the
1-based rank of each positive among all references (``rank = 1 + #references ordered before it``)
without sorting the ``M`` distances of a row: the positives' distances are sorted (``P`` values)
and every other reference is counted into ``O(P)`` uniform bins between the closest and the
farthest positive; only references that share a bin with a positive are placed exactly (binary
search). Cost per row ``O(M + P log P)`` instead of ``O(M log M)``.

The metric functions take ``ranks: LongTensor[N, P]`` (1-based, ascending in each row, padded with
values larger than any cut-off) and return one float64 value per query:

* precision at k: ``|{t: r_t <= k}| / k``
* recall at k (the deep-metric-learning "Recall@K" of Song et al., CVPR 2016): ``1`` if a positive
  is within the first ``k`` neighbours, else ``0``
* R-precision: ``|{t: r_t <= R'}| / R'`` with ``R' = min(R, k)``
* average precision (at R): ``sum_{t: r_t <= c} (t / r_t) / R`` (``t`` 1-based, ``c = k``
  or ``R'``),
  Musgrave et al., "A Metric Learning Reality Check", ECCV 2020, https://arxiv.org/abs/2003.08505
* reciprocal rank: ``1 / r_1`` if ``r_1 <= k`` else ``0``
* NDCG at k (binary relevance): ``sum_{t: r_t <= k} 1/log2(r_t + 1)`` over
  ``sum_{j <= min(R, k)} 1/log2(j + 1)`` (Jarvelin & Kekalainen, ACM TOIS 2002).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import torch

from .._types import Tensor
from ._dtype import upcast

#: ``distance_fn(query Tensor[b, D], reference Tensor[m, D], out=None) -> Tensor[b, m]``, smaller
#: = closer; ``out`` is an optional buffer of that shape the function may (not must) write into.
DistanceFn = Callable[..., Tensor]
#: ``positive_fn(query_rows: slice, reference_cols: slice) -> BoolTensor[b, m]``.
PositiveFn = Callable[[slice, slice], Tensor]

#: Default number of matrix entries held per tile (about 64 MiB of float32 distances).
DEFAULT_BLOCK_ELEMENTS = 1 << 24
_IDX_SENTINEL = (1 << 32) - 1  # index of padded positives; larger than any reference index


# ------------------------------------------------------------------ distances
def squared_l2_distances(
    query: Tensor,
    reference: Tensor,
    reference_sqnorm: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """``d_ij = ||q_i||^2 + ||r_j||^2 - 2 <q_i, r_j>``, clamped at 0: ``Tensor[b, m]``.

    The values faiss' ``IndexFlatL2`` returns (squared L2, one GEMM). Half inputs run in float32.
    ``out``: optional ``Tensor[b, m]`` buffer of the computing dtype.
    """
    q, r = upcast(query), upcast(reference)
    rn = (r * r).sum(1) if reference_sqnorm is None else reference_sqnorm
    if out is not None and (out.shape != (len(q), len(r)) or out.dtype != q.dtype):
        out = None
    d = torch.addmm(rn.unsqueeze(0), q, r.transpose(0, 1), alpha=-2, out=out)  # [b, m]
    d += (q * q).sum(1, keepdim=True)
    return d.clamp_min_(0)


def plan_blocks(
    n_query: int,
    n_reference: int,
    per_row: int = 0,
    max_elements: int = DEFAULT_BLOCK_ELEMENTS,
    query_block: int | None = None,
    reference_block: int | None = None,
) -> tuple[int, int]:
    """Query and reference block sizes whose tile (plus ``per_row`` extra entries per query
    row, e.g. a running top-k) holds about ``max_elements`` entries.

    Whole reference rows are preferred (one pass, no recomputation) while a block can still
    hold at least 256 queries; beyond that references are tiled too (at least 4096 a tile, so
    the GEMMs stay efficient).
    """
    n_query, n_reference = max(n_query, 1), max(n_reference, 1)
    if reference_block is None:
        rows = query_block or min(n_query, 256)
        whole = rows * (n_reference + per_row) <= max_elements
        reference_block = n_reference if whole else max_elements // rows - per_row
        reference_block = min(max(reference_block, 4096), n_reference)
    if query_block is None:
        query_block = max(1, min(n_query, max_elements // (reference_block + per_row)))
    return query_block, reference_block


def _self_rows(b: int, m: int, q_start: int, r_start: int, device: torch.device) -> Tensor:
    """Rows ``i`` of a ``[b, m]`` tile whose query ``q_start + i`` is one of the tile's
    references ``r_start + j`` (then ``j = i + q_start - r_start``)."""
    lo, hi = max(q_start, r_start), min(q_start + b, r_start + m)
    return torch.arange(lo - q_start, max(hi, lo) - q_start, device=device)


def _exclude_self(d: Tensor, q_start: int, r_start: int) -> None:
    """Set ``d[i, j] = inf`` where query ``q_start + i`` is reference ``r_start + j`` (in place)."""
    b, m = d.shape
    rows = _self_rows(b, m, q_start, r_start, d.device)
    d[rows, rows + (q_start - r_start)] = float("inf")


def _tiles(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


# ------------------------------------------------------------------ exact k-NN
def _select_smallest(v: Tensor, i: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Keep the ``k`` smallest entries of each row by ``(value, index)``.

    ``v``, ``i``: ``Tensor[b, n]`` with the columns of each row in ascending index order; the
    result keeps that column order (not sorted by value).
    """
    b, n = v.shape
    if n <= k:
        return v, i
    if k <= 1024:
        kth = v.topk(k, dim=1, largest=False, sorted=False).values.amax(1, keepdim=True)
    else:
        kth = v.kthvalue(k, dim=1, keepdim=True).values
    lt = v < kth
    eq = v == kth
    need = k - lt.sum(1, keepdim=True)
    take = lt | (eq & (eq.cumsum(1) <= need))  # ties at the k-th value: smallest indices win
    return v[take].view(b, k), i[take].view(b, k)


def knn(
    query: Tensor,
    reference: Tensor,
    k: int,
    *,
    distance_fn: DistanceFn,
    exclude_self: bool = False,
    query_block: int | None = None,
    reference_block: int | None = None,
    max_elements: int = DEFAULT_BLOCK_ELEMENTS,
    progress: Any = None,
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest references of every query, exactly, block by block.

    Args:
        query: ``Tensor[N, D]``.
        reference: ``Tensor[M, D]``.
        k: neighbours per query, ``1 <= k <= M`` (``M - 1`` with ``exclude_self``).
        distance_fn: tile function, smaller = closer.
        exclude_self: query ``i`` is reference ``i`` and is not its own neighbour.
        query_block, reference_block, max_elements: tile sizes (see :func:`plan_blocks`).
        progress: an object with ``update(n)`` (e.g. tqdm), told about each finished query block.

    Returns:
        ``(values Tensor[N, k], indices LongTensor[N, k])`` ordered by ``(value, index)``.
    """
    n, m = len(query), len(reference)
    whole_rows = 2 * k >= m  # most of each row is kept: sort whole rows instead of merging
    qb, rb = plan_blocks(
        n, m, 0 if whole_rows else 2 * k, max_elements, query_block, reference_block
    )
    if whole_rows and query_block is None:
        qb = max(1, min(n, max_elements // m))
    out_v: list[Tensor] = []
    out_i: list[Tensor] = []
    for qs, qe in _tiles(n, qb):
        q = query[qs:qe]
        if whole_rows:
            parts = []
            for rs, re in _tiles(m, rb):
                d = distance_fn(q, reference[rs:re])
                if exclude_self:
                    _exclude_self(d, qs, rs)
                parts.append(d)
            v, i = torch.cat(parts, 1).sort(dim=1, stable=True)  # ties stay in index order
            out_v.append(v[:, :k])
            out_i.append(i[:, :k])
        else:
            v = torch.empty(qe - qs, 0, device=query.device)
            i = torch.empty(qe - qs, 0, dtype=torch.long, device=query.device)
            for rs, re in _tiles(m, rb):
                d = distance_fn(q, reference[rs:re])
                if exclude_self:
                    _exclude_self(d, qs, rs)
                idx = torch.arange(rs, re, device=query.device).expand(qe - qs, -1)
                v, i = torch.cat([v.to(d.dtype), d], 1), torch.cat([i, idx], 1)
                if v.shape[1] >= 2 * k + rb or re == m:
                    v, i = _select_smallest(v, i, k)
            v, order = v.sort(dim=1, stable=True)  # stable: equal values stay in index order
            out_v.append(v)
            out_i.append(i.gather(1, order))
        if progress is not None:
            progress.update(qe - qs)
    return torch.cat(out_v), torch.cat(out_i)


# ------------------------------------------------------------------ ranks of positives
class _Positives:
    """Where each query's positives sit among the reference columns.

    With ids, the reference is laid out grouped by id (``perm[column] = reference index``), so a
    query's positives are one contiguous run of columns and no ``b x m`` mask is built. With a
    ``positive_fn``, the layout is the identity and the positives come from its mask.
    """

    def __init__(
        self,
        reference: Tensor,
        query_ids: Tensor | None,
        reference_ids: Tensor | None,
        positive_fn: PositiveFn | None,
    ) -> None:
        self.fn = positive_fn
        self.perm: Tensor | None = None
        self.reference = reference
        if positive_fn is None:
            if query_ids is None or reference_ids is None:
                raise ValueError(
                    "positive_ranks: expected `query_ids` and `reference_ids`, or "
                    "`positive_fn`, got neither."
                )
            num = int(max(int(query_ids.max()), int(reference_ids.max()))) + 1
            self.perm = torch.sort(reference_ids, stable=True).indices
            self.count = torch.bincount(reference_ids, minlength=num)
            self.start = torch.cumsum(self.count, 0) - self.count
            self.query_ids = query_ids
            self.reference = reference[self.perm]  # one copy, grouped by id

    def original(self, columns: Tensor) -> Tensor:
        return columns if self.perm is None else self.perm[columns]

    def in_tile(self, qs: int, qe: int, rs: int, re: int) -> tuple[Tensor, Tensor]:
        """``(rows, local columns)`` of the positives in tile ``[qs:qe, rs:re]``, row-major with
        columns ascending (so, within a row, reference indices ascending)."""
        if self.fn is not None:
            r, c = self.fn(slice(qs, qe), slice(rs, re)).nonzero(as_tuple=True)
            return r, c
        ids = self.query_ids[qs:qe]
        first = (self.start[ids] - rs).clamp_(min=0)
        last = (self.start[ids] + self.count[ids] - rs).clamp_(max=re - rs)
        n = (last - first).clamp_(min=0)
        width = int(n.max()) if len(n) else 0
        slot = torch.arange(width, device=ids.device)
        valid = slot.unsqueeze(0) < n.unsqueeze(1)
        rows = torch.arange(qe - qs, device=ids.device).unsqueeze(1).expand(-1, width)
        return rows[valid], (first.unsqueeze(1) + slot)[valid]


def _sorted_positives(
    rows: Tensor, idx: Tensor, vals: Tensor, b: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Pad per-row positives (given row-major, reference index ascending within a row) to
    ``[b, P]`` and sort each row by ``(value, index)``; padding is ``+inf`` / ``_IDX_SENTINEL``."""
    device = vals.device
    num_pos = torch.bincount(rows, minlength=b)
    p = int(num_pos.max()) if len(rows) else 0
    starts = torch.cumsum(num_pos, 0) - num_pos
    slot = torch.arange(len(rows), device=device) - starts[rows]
    pos_v = torch.full((b, p), float("inf"), dtype=vals.dtype, device=device)
    pos_i = torch.full((b, p), _IDX_SENTINEL, dtype=torch.long, device=device)
    pos_v[rows, slot] = vals
    pos_i[rows, slot] = idx
    pos_v, order = pos_v.sort(dim=1, stable=True)
    return pos_v, pos_i.gather(1, order), num_pos


def _before_by_search(
    rows: Tensor, vals: Tensor, idx: Tensor, pos_v: Tensor, pos_i: Tensor
) -> Tensor:
    """For candidates ``(rows, vals, idx)`` (row-major) the number of their row's positives
    ordered before them by ``(value, index)``, by binary search: ``LongTensor[n]``."""
    device = vals.device
    b, p = pos_v.shape
    per_row = torch.bincount(rows, minlength=b)
    starts = torch.cumsum(per_row, 0) - per_row
    slot = torch.arange(len(rows), device=device) - starts[rows]
    width = int(per_row.max())
    padded = torch.full((b, width), float("inf"), dtype=pos_v.dtype, device=device)
    padded[rows, slot] = vals
    left = torch.searchsorted(pos_v, padded)[rows, slot]
    right = torch.searchsorted(pos_v, padded, right=True)[rows, slot]
    tied = left != right
    if bool(tied.any()):
        # Equal values: order by index. Key (start of the tie group, index) is sorted per row.
        t = torch.arange(p, device=device).expand(b, p)
        new_group = torch.ones_like(pos_v, dtype=torch.bool)
        new_group[:, 1:] = pos_v[:, 1:] != pos_v[:, :-1]
        group_start = torch.where(new_group, t, 0).cummax(1).values
        key = (group_start << 32) | pos_i
        tr, ts = rows[tied], slot[tied]
        query = torch.zeros(b, width, dtype=torch.long, device=device)
        query[tr, ts] = (left[tied] << 32) | idx[tied]
        left[tied] = torch.searchsorted(key, query)[tr, ts]
    return left


class _Bins:
    """Uniform bins per row between its closest and farthest positive, as one flat histogram.

    Bin 0 of a row holds what lies before its closest positive, bin ``n_bins + 1`` what lies
    after its farthest. A value's flat bin is ``trunc(clamp(v * scale + offset, floor, ceil))``;
    positives and candidates go through the same float operations, so equal values share a bin
    and a smaller value never gets a larger bin (rounding is monotone).
    """

    #: above this many positives in one bin, candidates are placed by binary search instead
    MAX_LOOP = 8
    #: flat bin ids are folded into the float computation below this size (and 2 / eps)
    MAX_FOLDED = 1 << 62

    def __init__(self, pos_v: Tensor, pos_i: Tensor, num_pos: Tensor, n_bins: int) -> None:
        b, p = pos_v.shape
        device, dtype = pos_v.device, pos_v.dtype
        self.pos_v, self.pos_i, self.p = pos_v, pos_i, p
        has = (num_pos > 0).unsqueeze(1)
        lo = torch.where(has, pos_v[:, :1], 0)
        hi = torch.where(has, pos_v.gather(1, (num_pos - 1).clamp_min(0).unsqueeze(1)), lo)
        finfo = torch.finfo(dtype)
        span = hi - lo
        scale = torch.where(span > 0, (n_bins - 0.5) / span.clamp_min(finfo.tiny), n_bins - 0.5)
        self.scale = scale.clamp(max=finfo.max)
        offset = torch.where(torch.isfinite(lo * self.scale), 1 - lo * self.scale, 0)
        self.width = width = n_bins + 2
        self.size = b * width
        base = torch.arange(b, device=device, dtype=dtype).unsqueeze(1) * width
        # Flat bin ids are folded into the float computation while they are exact integers.
        self.folded = self.size < min(2 / finfo.eps, self.MAX_FOLDED)
        if self.folded:
            self.offset, self.floor, self.ceil = offset + base, base, base + (width - 1)
        else:
            self.offset, self.floor, self.ceil = offset, 0 * base, 0 * base + (width - 1)
        self.int_base = torch.arange(b, device=device, dtype=torch.int32).unsqueeze(1) * width

        valid = torch.arange(p, device=device).unsqueeze(0) < num_pos.unsqueeze(1)
        self.valid = valid
        self.pos_bin = self(pos_v, torch.empty(b, p, dtype=dtype, device=device)).long()
        flat_bin = self.pos_bin[valid]  # ascending: rows ascending, bins ascending within a row
        first = torch.ones_like(flat_bin, dtype=torch.bool)
        first[1:] = flat_bin[1:] != flat_bin[:-1]
        starts = torch.nonzero(first).squeeze(1)
        runs = torch.diff(starts, append=starts.new_full((1,), len(flat_bin)))
        self.max_run = int(runs.max()) if len(runs) else 0
        self.occupied = torch.zeros(self.size, dtype=torch.bool, device=device)
        self.occupied[flat_bin] = True
        # Positives as rows of width p + pad, padded with +inf: a candidate compares with the
        # `max_run` slots from the first positive of its bin; slots past the bin hold larger
        # values (later bins) or +inf, never the next row.
        pad = self.max_run if self.max_run <= self.MAX_LOOP else 0
        self.stride = p + pad
        self.flat_v = torch.cat([pos_v, pos_v.new_full((b, pad), float("inf"))], 1).view(-1)
        self.flat_i = torch.cat([pos_i, pos_i.new_full((b, pad), _IDX_SENTINEL)], 1).view(-1)
        slots = (torch.arange(b, device=device).unsqueeze(1) * self.stride).expand(b, p)
        slots = (slots + torch.arange(p, device=device))[valid]
        self.first_slot = torch.empty(self.size, dtype=torch.int32, device=device)
        self.first_slot[flat_bin[first]] = slots[first].to(torch.int32)

    def __call__(self, values: Tensor, scratch: Tensor, out: Tensor | None = None) -> Tensor:
        """Flat int32 bins of ``values`` (``Tensor[b, m]``); ``scratch`` is a float buffer of
        that shape, ``out`` an optional int32 one."""
        x = torch.addcmul(self.offset, values, self.scale, out=scratch)
        x.clamp_(self.floor, self.ceil)
        flat = x.to(torch.int32) if out is None else out.copy_(x)
        return flat if self.folded else flat.add_(self.int_base)

    def before(self, rows: Tensor, bins: Tensor, vals: Tensor, idx: Tensor) -> Tensor:
        """Positives of each candidate's row ordered before it, ``LongTensor[n]``: those in
        earlier bins plus those in its own bin that are smaller by ``(value, index)``."""
        if self.max_run > self.MAX_LOOP:
            return _before_by_search(rows, vals, idx, self.pos_v, self.pos_i)
        first = self.first_slot[bins].long()
        count = first - rows * self.stride
        for u in range(self.max_run):
            pv = self.flat_v[first + u]
            count += pv < vals
            tie = pv == vals
            if bool(tie.any()):
                count += tie & (self.flat_i[first + u] < idx)
        return count


class _Workspace:
    """Scratch buffers reused across tiles (fresh large allocations cost page faults)."""

    def __init__(self, elements: int, dtype: torch.dtype, device: torch.device) -> None:
        self.elements, self.dtype, self.device = elements, dtype, device
        self.buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, int], dtype: torch.dtype | None = None) -> Tensor:
        dtype = dtype or self.dtype
        buf = self.buffers.get(name)
        n = shape[0] * shape[1]
        if buf is None or buf.numel() < n or buf.dtype != dtype:
            buf = torch.empty(max(n, self.elements), dtype=dtype, device=self.device)
            self.buffers[name] = buf
        return buf[:n].view(shape)


def _ranks_for_block(
    qs: int,
    query: Tensor,
    layout: _Positives,
    rb: int,
    distance_fn: DistanceFn,
    exclude_self: bool,
    max_elements: int,
    work: _Workspace,
) -> tuple[Tensor, Tensor]:
    reference = layout.reference
    b, m = len(query), len(reference)
    tiles = _tiles(m, rb)
    device = query.device
    qe = qs + b

    def tile(rs: int, re: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Distances of the tile with positives (and self) set to inf, and the positives'
        ``(rows, reference indices, values)`` without self."""
        d = distance_fn(query, reference[rs:re], out=work.get("d", (b, re - rs)))
        r, c = layout.in_tile(qs, qe, rs, re)
        idx = layout.original(c + rs)
        vals = d[r, c]
        d[r, c] = float("inf")
        if exclude_self:
            if layout.fn is not None:
                _exclude_self(d, qs, rs)  # self need not be its own positive under positive_fn
            keep = idx != r + qs
            r, idx, vals = r[keep], idx[keep], vals[keep]
        return d, r, idx, vals

    # Phase 1: the positives' values, sorted by (value, index).
    parts = []
    for rs, re in tiles:
        d, r, idx, vals = tile(rs, re)
        parts.append((r, idx, vals))
    rows = torch.cat([x[0] for x in parts])
    order = torch.sort(rows, stable=True).indices  # row-major, indices ascending within a row
    pos_v, pos_i, num_pos = _sorted_positives(
        rows[order],
        torch.cat([x[1] for x in parts])[order],
        torch.cat([x[2] for x in parts])[order],
        b,
    )
    p = pos_v.shape[1]
    if p == 0:
        return torch.empty(b, 0, dtype=torch.long, device=device), num_pos

    # Phase 2: count every other reference into uniform bins between the closest and the
    # farthest positive of its row; those sharing a bin with a positive are placed exactly.
    # ~32 bins per positive: few references share a bin with one (measured: ~4% on random data)
    n_bins = min(max(64, 32 * p), 1 << 22, max_elements // b, (1 << 31) // b - 2)
    bins = _Bins(pos_v, pos_i, num_pos, int(n_bins))
    hist: Tensor | None = None
    exact = torch.zeros(b * (p + 1), dtype=torch.long, device=device)
    for rs, re in tiles:
        if len(tiles) > 1:
            d = tile(rs, re)[0]  # one tile: `d` from phase 1 is still in the buffer
        mb = re - rs
        flat = bins(d, work.get("x", (b, mb)), work.get("bins", (b, mb), torch.int32)).view(-1)
        counts = torch.bincount(flat, minlength=bins.size)
        hist = counts if hist is None else hist.add_(counts)
        hit = torch.index_select(
            bins.occupied, 0, flat, out=work.get("hit", (1, b * mb), torch.bool)[0]
        )
        where = hit.nonzero().squeeze(1)
        if len(where):
            r, c = where // mb, where % mb
            before = bins.before(r, flat[where].long(), d.view(-1)[where], layout.original(c + rs))
            exact += torch.bincount(r * (p + 1) + before, minlength=b * (p + 1))
    hist = (
        cast(Tensor, hist)
        .masked_fill_(  # the loop ran at least one tile
            bins.occupied, 0
        )
        .view(b, bins.width)
    )
    dense_before = (torch.cumsum(hist, 1) - hist).view(-1)[bins.pos_bin]
    exact_before = torch.cumsum(exact.view(b, p + 1), 1)[:, :p]
    t = torch.arange(1, p + 1, device=device).unsqueeze(0)
    ranks = dense_before + exact_before + t
    return ranks.masked_fill_(~bins.valid, m + 2), num_pos


def positive_ranks(
    query: Tensor,
    reference: Tensor,
    *,
    distance_fn: DistanceFn,
    query_ids: Tensor | None = None,
    reference_ids: Tensor | None = None,
    positive_fn: PositiveFn | None = None,
    exclude_self: bool = False,
    query_block: int | None = None,
    reference_block: int | None = None,
    max_elements: int = DEFAULT_BLOCK_ELEMENTS,
    progress: Any = None,
) -> Iterator[tuple[int, int, Tensor, Tensor]]:
    """Ranks of every query's positives among all references, one query block at a time.

    Positives are references with the same id (``query_ids``/``reference_ids``, non-negative
    ``LongTensor[N]``/``LongTensor[M]``) or where ``positive_fn`` is True. With
    ``exclude_self``, query ``i`` is reference ``i`` and appears in no ranking.

    Yields:
        ``(start, end, ranks LongTensor[b, P], num_pos LongTensor[b])`` for queries
        ``start:end``: row ``i`` holds the 1-based ranks (by ``(value, index)``) of its
        ``num_pos[i]`` positives in ascending order, padded with ``M + 2``.
    """
    n, m = len(query), len(reference)
    if (
        exclude_self
        and positive_fn is None
        and query_ids is not None
        and (reference_ids is None or m < n or not torch.equal(query_ids, reference_ids[:n]))
    ):
        raise ValueError(
            "positive_ranks: expected `reference_ids[:N]` equal to `query_ids` with "
            "exclude_self=True (query i is reference i), got different ids."
        )
    layout = _Positives(reference, query_ids, reference_ids, positive_fn)
    qb, rb = plan_blocks(n, m, 0, max_elements, query_block, reference_block)
    work = _Workspace(qb * rb, upcast(query[:0]).dtype, query.device)
    for qs, qe in _tiles(n, qb):
        ranks, num_pos = _ranks_for_block(
            qs, query[qs:qe], layout, rb, distance_fn, exclude_self, max_elements, work
        )
        if progress is not None:
            progress.update(qe - qs)
        yield qs, qe, ranks, num_pos


def ranks_from_hits(hits: Tensor) -> Tensor:
    """``BoolTensor[N, k]`` (neighbour ``j`` of query ``i`` is relevant) to 1-based ranks
    ``LongTensor[N, P]`` of the relevant neighbours, ascending, padded with ``k + 1``."""
    n, k = hits.shape
    p = int(hits.sum(1).max()) if n and k else 0
    position = torch.arange(1, k + 1, device=hits.device).expand(n, k)
    ranks = torch.where(hits, position, k + 1)
    return ranks.topk(p, dim=1, largest=False, sorted=True).values if p < k else ranks


# ------------------------------------------------------------------ metrics from ranks
def _f64(x: Tensor) -> Tensor:
    return x.to(torch.float64)


def precision_at_k(ranks: Tensor, k: int) -> Tensor:
    """``|{t: r_t <= k}| / k``: ``Tensor[N]`` (float64)."""
    return _f64((ranks <= k).sum(1)) / k


def recall_at_k(ranks: Tensor, k: int) -> Tensor:
    """1 if any positive is within the first ``k`` neighbours, else 0: ``Tensor[N]``."""
    if ranks.shape[1] == 0:
        return torch.zeros(len(ranks), dtype=torch.float64, device=ranks.device)
    return _f64(ranks[:, 0] <= k)


def r_precision(ranks: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """``|{t: r_t <= R'}| / R'`` with ``R' = min(R, k)``: ``Tensor[N]``."""
    cut = num_relevant.clamp(max=k).unsqueeze(1)
    return _f64((ranks <= cut).sum(1)) / _f64(cut.squeeze(1))


def average_precision(ranks: Tensor, num_relevant: Tensor, k: int, at_r: bool = False) -> Tensor:
    """``sum_{t: r_t <= c} (t / r_t) / R`` with ``c = min(R, k)`` (``at_r``) or ``k``."""
    cut = num_relevant.clamp(max=k).unsqueeze(1) if at_r else k
    t = torch.arange(1, ranks.shape[1] + 1, device=ranks.device, dtype=torch.float64)
    terms = torch.where(ranks <= cut, t / _f64(ranks), 0.0)
    return terms.sum(1) / _f64(num_relevant)


def reciprocal_rank(ranks: Tensor, k: int) -> Tensor:
    """``1 / r_1`` when the first positive is within ``k``, else 0: ``Tensor[N]``."""
    if ranks.shape[1] == 0:
        return torch.zeros(len(ranks), dtype=torch.float64, device=ranks.device)
    first = ranks[:, 0]
    return torch.where(first <= k, 1.0 / _f64(first), 0.0)


def ndcg(ranks: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """Binary-relevance NDCG with cut-off ``k``: ``Tensor[N]``."""
    gains = torch.where(ranks <= k, 1.0 / torch.log2(_f64(ranks) + 1), 0.0).sum(1)
    depth = int(min(int(num_relevant.max()), k)) if len(num_relevant) else 0
    ideal_prefix = torch.cumsum(
        1.0 / torch.log2(torch.arange(2, depth + 2, device=ranks.device, dtype=torch.float64)), 0
    )
    ideal_prefix = torch.cat([ideal_prefix.new_zeros(1), ideal_prefix])
    ideal = ideal_prefix[num_relevant.clamp(max=k)]
    return gains / ideal


def class_means(values: Tensor, class_ids: Tensor, num_classes: int) -> Tensor:
    """Mean of ``values`` (``Tensor[N]``) per class id (``LongTensor[N]`` in
    ``[0, num_classes)``): ``Tensor[num_classes]``, NaN for a class without samples."""
    sums = torch.zeros(num_classes, dtype=values.dtype, device=values.device)
    sums.index_add_(0, class_ids, values)
    counts = torch.bincount(class_ids, minlength=num_classes).to(values.dtype)
    return sums / counts


def drop_self(distances: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
    """Remove each query's own entry from a ``k + 1`` neighbour list.

    Query ``i`` is reference ``i``: row ``i`` loses the column holding index ``i``, or its last
    column when ``i`` is not among the neighbours (then the first ``k`` are the answer anyway).
    ``distances``, ``indices``: ``Tensor[N, k + 1]`` -> ``Tensor[N, k]`` each.
    """
    n, width = indices.shape
    is_self = indices == torch.arange(n, device=indices.device).unsqueeze(1)
    missing = ~is_self.any(1)
    is_self[missing, width - 1] = True
    # a row may list itself twice only with a broken index; keep the first occurrence then
    is_self &= is_self.cumsum(1) == 1
    keep = ~is_self
    return distances[keep].view(n, width - 1), indices[keep].view(n, width - 1)
