"""Triplet margin loss kernels: explicit terms for mined triplets, memory-lean all-triplets loss.

Schroff et al., "FaceNet: A Unified Embedding for Face Recognition and Clustering", CVPR 2015,
https://arxiv.org/abs/1503.03832 (eq. 1); distance swap from Balntas et al., "Learning local feature
descriptors with triplets and shallow convolutional neural networks", BMVC 2016 (sec. 3.2).

Notation. ``mat: Tensor[N, M]`` is a query x reference matrix of distances
(``is_inverted=False``) or similarities (``is_inverted=True``). A triplet ``(a, p, n)`` has
``pos[a, p]`` and ``neg[a, n]``. Per triplet::

    v = d_ap - d_an + margin          (distances)
    v = s_an - s_ap + margin          (similarities)
    L = relu(v)   or   softplus(v)    (smooth_loss=True)

With ``swap=True`` ``d_an`` becomes ``min(d_an, mat[p, n])`` (``max(s_an, mat[p, n])`` for
similarities); like pytorch-metric-learning it indexes ``mat[p, n]`` with the reference index
``p`` as a row, so it is only meaningful when the reference set is the query set.

Internally both conventions are one: with ``x = sign * mat`` (``sign = -1`` for similarities)
``v = x_ap - x_an + margin`` and the swap uses ``min(x_an, x_pn)``; gradients are mapped back with
``sign``.

Memory. :func:`all_triplets_margin_loss` never builds the ``N * P * M`` triplets (P positives
per anchor). For ``relu`` without swap it sorts each anchor's positives and binary-searches every
negative among them (O(N M log P) time, O(N M) memory), with prefix sums for the loss and a
closed-form gradient; otherwise it walks anchor blocks of at most ``max_block_elements`` terms.
Either way the gradient w.r.t. ``mat`` (an ``N x M`` matrix) is accumulated during the forward
pass (only when ``mat`` requires grad), so backward is a single scaling and nothing is recomputed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import FunctionCtx, once_differentiable

from .._types import Tensor
from ._dtype import upcast
from .reductions import IntervalMean

__all__ = [
    "all_triplets_margin_loss",
    "count_triplets_in",
    "triplet_margin_terms",
]

#: Upper bound on ``anchors_per_block * Pmax * M`` terms held at once by the blockwise path.
DEFAULT_BLOCK_ELEMENTS = 1 << 23


def triplet_margin_terms(
    mat: Tensor,
    a: Tensor,
    p: Tensor,
    n: Tensor,
    *,
    margin: float,
    is_inverted: bool,
    swap: bool = False,
    smooth_loss: bool = False,
) -> Tensor:
    """Per-triplet margin loss for explicit triplets (e.g. from a miner). Plain autograd.

    Args:
        mat: ``Tensor[N, M]`` distances, or similarities when ``is_inverted``.
        a: ``LongTensor[T]`` anchor rows of ``mat``.
        p: ``LongTensor[T]`` positive columns of ``mat``.
        n: ``LongTensor[T]`` negative columns of ``mat``.
        margin: added to the violation.
        is_inverted: ``mat`` holds similarities (larger = closer).
        swap: replace the anchor-negative value by the positive-negative one (``mat[p, n]``) when
            it is closer.
        smooth_loss: ``softplus`` instead of ``relu``.

    Returns:
        ``Tensor[T]`` in ``mat``'s dtype: ``relu(v)`` or ``softplus(v)`` with ``v`` as in the module
        docstring.
    """
    ap = mat[a, p]  # [T]
    an = mat[a, n]  # [T]
    if swap:
        pn = mat[p, n]  # [T]
        an = torch.maximum(an, pn) if is_inverted else torch.minimum(an, pn)
    violation = (an - ap if is_inverted else ap - an) + margin
    if smooth_loss:
        return F.softplus(upcast(violation)).to(mat.dtype)
    return F.relu(violation)


def all_triplets_margin_loss(
    mat: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    margin: float,
    is_inverted: bool,
    swap: bool = False,
    smooth_loss: bool = False,
    reduction: IntervalMean,
    max_block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> Tensor:
    """Reduced triplet margin loss over every triplet ``(a, p, n)`` with ``pos[a, p] & neg[a, n]``.

    Equal to ``interval_reduce(triplet_margin_terms(mat, a, p, n, ...), reduction)`` over all such
    triplets, without materialising them.

    Args:
        mat: ``Tensor[N, M]`` distances, or similarities when ``is_inverted``.
        pos: ``BoolTensor[N, M]`` same-label pairs (self pairs already removed).
        neg: ``BoolTensor[N, M]`` different-label pairs.
        margin, is_inverted, swap, smooth_loss: as in :func:`triplet_margin_terms`. With ``swap``
            every positive column index must also be a valid row of ``mat``.
        reduction: keep terms with ``low < L < high``; their mean (or sum when ``divide=False``).
            ``MeanReducer`` = ``IntervalMean()``, ``SumReducer`` = ``IntervalMean(divide=False)``,
            ``AvgNonZeroReducer`` = ``IntervalMean(0, None)``, ``ThresholdReducer(low, high)`` =
            ``IntervalMean(low, high)``.
        max_block_elements: memory bound of the blockwise path (``softplus`` or ``swap``).

    Returns:
        0-dim tensor in ``mat``'s dtype, differentiable w.r.t. ``mat``; zero (with a zero gradient)
        when no term is kept. float16/bfloat16 are computed in float32.

    Cost: ``relu`` without swap O(N M log P) time, O(N M) memory; otherwise O(N P M) time and
    O(N M + max_block_elements) memory (P = most positives of any anchor).
    """
    return _AllTripletsMargin.apply(
        mat,
        pos,
        neg,
        float(margin),
        bool(is_inverted),
        bool(swap),
        bool(smooth_loss),
        reduction,
        int(max_block_elements),
    )


def count_triplets_in(
    mat: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    margin: float,
    is_inverted: bool,
    swap: bool = False,
    smooth_loss: bool = False,
    low: float | None = None,
    high: float | None = None,
    max_block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> Tensor:
    """Number of all-triplets terms with ``low < L < high`` (``None`` = open), for reducer stats.

    Arguments as in :func:`all_triplets_margin_loss`. Returns a 0-dim int64 tensor (no grad).
    """
    with torch.no_grad():
        x = _signed(mat, is_inverted)
        spec = IntervalMean(low, high, divide=True)
        if smooth_loss or swap:
            _, count, _ = _blockwise(
                x, pos, neg, float(margin), swap, smooth_loss, spec, max_block_elements, False
            )
        else:
            _, count, _ = _sorted_relu(x, pos, neg, float(margin), spec, False)
    return count


# ----------------------------------------------------------------------------------------------
# internals


class _AllTripletsMargin(torch.autograd.Function):
    """``loss = Sum / Count`` (or ``Sum``); the gradient ``dSum/dmat`` is built in the forward pass
    (``Count`` is piecewise constant), so backward only scales it."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        mat: Tensor,
        pos: Tensor,
        neg: Tensor,
        margin: float,
        is_inverted: bool,
        swap: bool,
        smooth_loss: bool,
        reduction: IntervalMean,
        max_block_elements: int,
    ) -> Tensor:
        want_grad = bool(ctx.needs_input_grad[0])  # type: ignore[attr-defined]
        x = _signed(mat.detach(), is_inverted)  # [N, M] compute dtype
        if smooth_loss or swap:
            total, count, grad = _blockwise(
                x, pos, neg, margin, swap, smooth_loss, reduction, max_block_elements, want_grad
            )
        else:
            total, count, grad = _sorted_relu(x, pos, neg, margin, reduction, want_grad)

        # scale = d loss / d Sum; a zero count means nothing was kept (Sum = 0, gradient 0)
        if reduction.divide:
            scale = torch.where(count > 0, 1.0 / count.clamp_min(1).to(total.dtype), 0.0)
        else:
            scale = torch.ones((), dtype=total.dtype, device=total.device)
        loss = (total * scale).to(mat.dtype)
        if grad is not None:
            sign = -1.0 if is_inverted else 1.0
            grad.mul_(scale.to(grad.dtype) * sign)  # d loss / d mat, [N, M]
            ctx.save_for_backward(grad)
        ctx.mat_dtype = mat.dtype  # type: ignore[attr-defined]
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors  # type: ignore[attr-defined]
        grad_mat = (grad * grad_out.to(grad.dtype)).to(ctx.mat_dtype)  # type: ignore[attr-defined]
        return grad_mat, None, None, None, None, None, None, None, None


def _signed(mat: Tensor, is_inverted: bool) -> Tensor:
    """``x = sign * mat`` in the compute dtype (float32 for half), so ``v = x_ap - x_an + m``."""
    x = upcast(mat)
    return -x if is_inverted else x


def _sum_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulator for loss sums: float64 for float32/float64 compute, float32 otherwise."""
    return torch.float64 if dtype in (torch.float32, torch.float64) else torch.float32


def _positive_columns(pos: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's positive columns, left-packed in column order.

    Args:
        pos: ``BoolTensor[N, M]``.

    Returns:
        ``idx: LongTensor[N, Pmax]`` (padding holds 0) and ``valid: BoolTensor[N, Pmax]``.
    """
    n_rows = pos.shape[0]
    counts = torch.count_nonzero(pos, dim=1)  # [N]
    p_max = int(counts.max()) if n_rows > 0 else 0
    idx = torch.zeros((n_rows, p_max), dtype=torch.long, device=pos.device)
    valid = torch.arange(p_max, device=pos.device) < counts[:, None]  # [N, Pmax]
    if p_max > 0:
        rows, cols = pos.nonzero(as_tuple=True)  # row-major, so each row's columns are ascending
        starts = torch.cumsum(counts, 0) - counts  # [N]
        slot = torch.arange(rows.numel(), device=pos.device) - starts[rows]
        idx[rows, slot] = cols
    return idx, valid


def _relu_regions(spec: IntervalMean) -> tuple[float, float, float] | None:
    """Translate ``low < relu(v) < high`` into open intervals of ``v``.

    Returns ``(count_low, sum_low, high)``: a term is kept iff ``count_low < v < high``, and kept
    with ``L > 0`` (it adds to the sum and has a gradient) iff ``sum_low < v < high``; ``None``
    when nothing can be kept.
    """
    high = math.inf if spec.high is None else float(spec.high)
    if high <= 0:  # L >= 0 is never < high
        return None
    if spec.low is None or spec.low < 0:  # every L >= 0 passes the low bound, zeros included
        return -math.inf, 0.0, high
    low = float(spec.low)
    return (low, low, high) if low < high else None


def _sorted_relu(
    x: Tensor,
    pos: Tensor,
    neg: Tensor,
    margin: float,
    spec: IntervalMean,
    want_grad: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Exact relu, no-swap pass on sorted rows.

    For anchor ``a``, positive ``p`` and negative ``n``, with ``c_ap = x_ap + margin``,
    ``v = c_ap - x_an``; so ``lo < v < hi`` iff ``x_an + lo < c_ap < x_an + hi``. Each anchor's
    ``c`` values are sorted once; a ``searchsorted`` per negative then gives the contiguous run
    ``[lo_idx, hi_idx)`` of sorted positives whose term lies in the interval:

    * ``dSum/dx_an = -(hi_idx - lo_idx)``, the number of those positives;
    * ``sum_p c_ap`` over the run is ``prefix[hi_idx] - prefix[lo_idx]`` (prefix sums of sorted c);
      summed over the negatives it is ``sum_j prefix[j] * runs[j]`` with
      ``runs[j] = #(hi_idx == j) - #(lo_idx == j)``;
    * ``dSum/dx_ap`` = the number of runs covering ``p``'s sorted position ``= -cumsum(runs)``.

    This mirrors "sort each row's negatives, search with every positive": sorting the ``P``
    positives costs O(N M log P) instead of O(N M log M) and needs no N x M prefix-sum matrix;
    both are exact.

    Args:
        x: ``Tensor[N, M]`` signed matrix (distance convention), compute dtype.
        pos, neg: ``BoolTensor[N, M]``.

    Returns:
        ``Sum`` of kept terms (0-dim, accumulation dtype), ``Count`` of kept terms (0-dim int64)
        and, when ``want_grad``, ``dSum/dx: Tensor[N, M]``.
    """
    n_rows = x.shape[0]
    acc = _sum_dtype(x.dtype)
    total = torch.zeros((), dtype=acc, device=x.device)
    count = torch.zeros((), dtype=torch.long, device=x.device)
    regions = _relu_regions(spec)
    p_idx, p_valid = _positive_columns(pos)  # [N, P]
    n_slots = p_idx.shape[1]
    if regions is None or n_slots == 0 or x.numel() == 0:
        return total, count, torch.zeros_like(x) if want_grad else None
    count_low, sum_low, high = regions

    # each anchor's c = x_ap + margin ascending, then +inf padding; prefix sums in `acc`
    n_pos = p_valid.sum(dim=1)  # [N]
    n_neg = torch.count_nonzero(neg, dim=1)  # [N]
    c = torch.where(p_valid, x.gather(1, p_idx) + margin, math.inf)  # [N, P]
    c_sorted, order = c.sort(dim=1)  # order[a, j]: slot of the j-th smallest c
    prefix = torch.zeros((n_rows, n_slots + 1), dtype=acc, device=x.device)
    prefix[:, 1:] = torch.where(p_valid, c_sorted.to(acc), 0).cumsum(dim=1)  # pads add 0

    # runs of positives with sum_low < v < high, i.e. x_an + sum_low < c < x_an + high
    lo_idx = torch.searchsorted(c_sorted, x if sum_low == 0 else x + sum_low, side="right")
    ones = neg.to(x.dtype)  # [N, M]; masks the scatters (counts stay exact below 2**24)
    lo_hits = torch.zeros((n_rows, n_slots + 1), dtype=x.dtype, device=x.device)
    hi_hits = torch.zeros_like(lo_hits)
    if math.isinf(high):
        hi_idx: Tensor = n_pos[:, None]  # [N, 1]: every c above the low bound
        hi_hits.scatter_(1, hi_idx, n_neg[:, None].to(x.dtype))
    else:
        hi_idx = torch.searchsorted(c_sorted, x + high, side="left")
        lo_idx = torch.minimum(lo_idx, hi_idx)  # equal rounded bounds may cross
        hi_hits.scatter_add_(1, hi_idx, ones)
    lo_hits.scatter_add_(1, lo_idx, ones)
    runs = (hi_hits - lo_hits).to(acc)  # [N, P + 1]
    n_active = (hi_idx - lo_idx) * ones  # [N, M] in x.dtype, 0 off the negatives
    # x side of the sum; a float32 product rounds once, at the input's own precision
    total = (prefix * runs).sum() - (n_active * x).sum(dtype=acc)

    if spec.divide:
        if count_low == sum_low:  # sum_n (hi_idx - lo_idx) = sum_j j * runs[j]
            slot = torch.arange(n_slots + 1, dtype=torch.float64, device=x.device)
            count = (runs.to(torch.float64) @ slot).sum().round().long()
        elif math.isinf(high):  # Mean: every triplet
            count = (n_pos * n_neg).sum()
        else:  # zero terms are kept too: every c below x_an + high
            count = torch.where(neg, hi_idx, 0).sum()

    if not want_grad:
        return total, count, None
    grad = n_active.neg_()  # dSum/dx_an, [N, M]
    covered = -runs.cumsum(dim=1)[:, :n_slots]  # [N, P] runs covering each sorted position
    per_slot = torch.empty_like(covered).scatter_(1, order, covered)  # [N, P] by slot
    grad.scatter_add_(1, p_idx, torch.where(p_valid, per_slot, 0).to(x.dtype))  # dSum/dx_ap
    return total, count, grad


def _blockwise(
    x: Tensor,
    pos: Tensor,
    neg: Tensor,
    margin: float,
    swap: bool,
    smooth_loss: bool,
    spec: IntervalMean,
    max_block_elements: int,
    want_grad: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """General pass (softplus and/or swap) over anchor blocks of ``b * Pmax * M`` terms.

    Non-triplets (padding slots, non-negative columns) get ``v = -inf``, hence ``L = 0`` and a
    zero derivative, so no validity mask of the block's size is needed: with ``low >= 0`` they
    fail ``L > low`` like any zero term, and with an open or negative ``low`` the kept count is
    "all triplets minus those with ``L >= high``".

    Args:
        x: ``Tensor[N, M]`` signed matrix (distance convention), compute dtype.
        pos, neg: ``BoolTensor[N, M]``.

    Returns:
        ``Sum`` of kept terms (0-dim, accumulation dtype), ``Count`` of kept terms (0-dim int64)
        and, when ``want_grad``, ``dSum/dx: Tensor[N, M]``.
    """
    n_rows, n_cols = x.shape
    acc = _sum_dtype(x.dtype)
    total = torch.zeros((), dtype=acc, device=x.device)
    count = torch.zeros((), dtype=torch.long, device=x.device)
    grad = torch.zeros_like(x) if want_grad else None
    p_idx, p_valid = _positive_columns(pos)  # [N, P]
    n_slots = p_idx.shape[1]
    low, high = spec.low, spec.high
    if n_slots == 0 or n_cols == 0 or (high is not None and high <= 0):  # L >= 0 never < high
        return total, count, grad
    zeros_kept = low is None or low < 0  # then every triplet with L < high is kept
    if zeros_kept:
        count = (torch.count_nonzero(p_valid, dim=1) * torch.count_nonzero(neg, dim=1)).sum()
    not_neg = ~neg  # [N, M]

    block = max(1, max_block_elements // (n_slots * n_cols))
    for start in range(0, n_rows, block):
        rows = slice(start, min(start + block, n_rows))
        pi = p_idx[rows]  # [b, P]
        x_rows = x[rows]  # [b, M]
        c = (x_rows.gather(1, pi) + margin).masked_fill_(~p_valid[rows], -math.inf)  # [b, P]
        off = not_neg[rows][:, None, :]  # [b, 1, M]
        if swap:
            x_an = x_rows[:, None, :]  # [b, 1, M]
            x_pn = x[pi]  # [b, P, M]: mat[p, n]
            v = c[:, :, None] - torch.minimum(x_an, x_pn)
            v.masked_fill_(off, -math.inf)
        else:
            v = c[:, :, None] - x_rows.masked_fill(not_neg[rows], math.inf)[:, None, :]
        terms = F.softplus(v) if smooth_loss else F.relu(v)  # [b, P, M]; 0 off the triplets

        # dropped: triplets outside (low, high); with low >= 0 the non-triplets are dropped too
        drop: Tensor | None = None
        if high is not None:
            drop = terms >= high
        if low is not None and low >= 0:  # i.e. not zeros_kept
            below = terms <= low
            drop = below if drop is None else drop.logical_or_(below)
        if drop is not None:
            n_drop = torch.count_nonzero(drop)
            count += -n_drop if zeros_kept else terms.numel() - n_drop
            terms.masked_fill_(drop, 0)
        total += terms.sum(dim=2).sum(dtype=acc)  # per-(a, p) partial sums, then `acc`
        if grad is None:
            continue

        # dL/dv: relu' = 1[v > 0] (0 at 0, like autograd), softplus' = sigmoid; 0 at v = -inf
        dv = torch.sigmoid(v) if smooth_loss else (v > 0).to(x.dtype)
        if drop is not None:
            dv.masked_fill_(drop, 0)
        grad[rows].scatter_add_(1, pi, dv.sum(dim=2))  # d/dx_ap
        if swap:
            # torch.minimum's rule: the smaller input gets the gradient, ties split it in half
            to_an = torch.where(x_an < x_pn, 1.0, torch.where(x_an == x_pn, 0.5, 0.0))
            d_an = dv * to_an  # [b, P, M]
            grad[rows] -= d_an.sum(dim=1)  # d/dx_an
            grad.index_add_(0, pi.reshape(-1), (d_an - dv).reshape(-1, n_cols))  # d/dx_pn
        else:
            grad[rows] -= dv.sum(dim=1)  # d/dx_an
    return total, count, grad
