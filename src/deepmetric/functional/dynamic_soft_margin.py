"""Dynamic soft margin: weight each ``x = d_pos - d_neg`` by the running CDF of ``x``.

Zhang & Rusinkiewicz, "Learning Local Descriptors With a CDF-Based Dynamic Soft Margin",
ICCV 2019, https://openaccess.thecvf.com/content_ICCV_2019/papers/Zhang_Learning_Local_Descriptors_With_a_CDF-Based_Dynamic_Soft_Margin_ICCV_2019_paper.pdf
(sec. 3.2). With pytorch-metric-learning's numbers:

* bins of width ``delta = 2 |min_val| / num_bins`` starting at ``min_val``; ``x`` has position
  ``t = (x - min_val) / delta``, bin ``k = floor(t)`` and fraction ``frac(t)``; it adds
  ``1 - frac`` to bin ``k`` and ``frac`` to bin ``k + 1`` (soft assignment);
* ``hist <- normalise((1 - mu) * hist + mu * counts)``, ``counts`` being the batch's (un-normalised)
  soft counts and ``mu = 1`` while ``hist`` is all zero;
* ``loss = mean_x CDF[k(x)] * x`` with ``CDF = cumsum(hist)``, the CDF treated as a constant.

Bins are clamped to ``[0, num_bins - 1]``: the last bin holds everything above the range and the
first everything below (pytorch-metric-learning indexes past the histogram there and fails).

Memory. With labels every triplet ``(a, p, n)`` is used, but none is built: for a positive pair
``(a, p)`` the bin of ``x`` only depends on where ``d_an`` falls among ``num_bins`` thresholds, so
after sorting each anchor's negative (and positive) distances, :func:`all_triplets_soft_histogram`
and :func:`all_triplets_cdf_weighted_mean` need ``num_bins`` ``searchsorted`` calls and prefix
sums: O(N M log M + (P + N M) num_bins log M) time and O(N M) memory for P positive pairs. The
gradient w.r.t. the ``N x M`` distance matrix is built in the forward pass.
"""

from __future__ import annotations

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from .._types import Tensor
from ._dtype import upcast
from .triplet_losses import _positive_columns

__all__ = [
    "all_triplets_cdf_weighted_mean",
    "all_triplets_soft_histogram",
    "cdf_weighted_mean",
    "hardest_negatives",
    "matched_rows_margins",
    "soft_histogram",
    "update_histogram",
]


def _bins(x: Tensor, min_val: float, delta: float, num_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Clamped bin ``k``, clamped ``k + 1`` and ``frac`` of each value (same shape as ``x``)."""
    t = (x - min_val) / delta
    k = torch.floor(t).to(torch.long)
    return k.clamp(0, num_bins - 1), (k + 1).clamp(0, num_bins - 1), torch.frac(t)


def soft_histogram(
    x: Tensor,
    *,
    min_val: float,
    delta: float,
    num_bins: int,
    weights: Tensor | None = None,
) -> Tensor:
    """Soft counts of ``x`` over the bins (no grad).

    Args:
        x: ``Tensor[...]`` values.
        weights: optional ``Tensor`` like ``x`` multiplying each value's contribution (0/1 masks).

    Returns:
        ``Tensor[num_bins]`` in ``x``'s (upcast) dtype; it sums to the number of values.
    """
    with torch.no_grad():
        x = upcast(x)
        lo, hi, frac = _bins(x, min_val, delta, num_bins)
        low_part, high_part = 1 - frac, frac
        if weights is not None:
            low_part, high_part = low_part * weights, high_part * weights
        counts = torch.zeros(num_bins, dtype=x.dtype, device=x.device)
        counts.scatter_add_(0, lo.reshape(-1), low_part.reshape(-1))
        counts.scatter_add_(0, hi.reshape(-1), high_part.reshape(-1))
        return counts


def update_histogram(hist: Tensor, counts: Tensor, *, momentum: float) -> Tensor:
    """``normalise((1 - mu) hist + mu counts)``, ``mu = 1`` when ``hist`` is all zero.

    Args:
        hist: ``Tensor[B]`` the running histogram (sums to 1, or all zero before the first batch).
        counts: ``Tensor[B]`` the batch's soft counts.

    Returns:
        ``Tensor[B]`` summing to 1, in ``counts``' dtype.
    """
    hist = hist.to(counts)
    mu = torch.where(hist.sum() != 0, counts.new_tensor(momentum), counts.new_tensor(1.0))
    mixed = (1 - mu) * hist + mu * counts
    return mixed / mixed.sum()


def cdf_weighted_mean(
    x: Tensor, cdf: Tensor, *, min_val: float, delta: float, num_bins: int
) -> Tensor:
    """``mean(CDF[k(x)] * x)``, differentiable w.r.t. ``x`` (the CDF is a constant).

    Args:
        x: ``Tensor[T]`` values (not empty); ``cdf``: ``Tensor[num_bins]``.

    Returns:
        0-dim tensor in ``x``'s dtype.
    """
    work = upcast(x)
    k = _bins(work.detach(), min_val, delta, num_bins)[0]
    return (cdf.to(work.dtype)[k] * work).mean().to(x.dtype)


def hardest_negatives(mat: Tensor) -> tuple[Tensor, Tensor]:
    """For a square ``mat`` whose diagonal holds the matching pairs: ``(d_pos, d_neg)`` with
    ``d_pos = diag(mat)`` and ``d_neg_i`` the smallest off-diagonal entry of row ``i`` and of
    column ``i`` (``finfo.max`` if there is none). ``mat`` is not modified.

    Args:
        mat: ``Tensor[N, N]``.

    Returns:
        ``Tensor[N]`` each.
    """
    masked = mat.clone()
    masked.diagonal().fill_(torch.finfo(mat.dtype).max)
    return mat.diagonal(), torch.minimum(masked.amin(dim=0), masked.amin(dim=1))


def matched_rows_margins(mat: Tensor) -> Tensor:
    """``x_i = d_pos_i - d_neg_i`` when row ``i`` of the query and of the reference match.

    ``d_pos_i = mat[i, i]``; ``d_neg_i`` is the smallest off-diagonal entry of row ``i`` and of
    column ``i``. For a non-square ``mat`` (``r x c``) the result has ``max(r, c)`` entries and,
    like pytorch-metric-learning, a missing diagonal / row / column minimum counts as 0.

    Args:
        mat: ``Tensor[r, c]`` distances, not ``1 x 1``.

    Returns:
        ``Tensor[max(r, c)]``, differentiable w.r.t. ``mat``.
    """
    r, c = mat.shape
    size = max(r, c)
    masked = mat.clone()
    masked.diagonal().fill_(torch.finfo(mat.dtype).max)  # a self pair is never the negative
    zeros = mat.new_zeros(size)
    d_pos = torch.cat([mat.diagonal(), zeros[: size - min(r, c)]])
    col_min = torch.cat([masked.amin(dim=0), zeros[: size - c]])
    row_min = torch.cat([masked.amin(dim=1), zeros[: size - r]])
    return d_pos - torch.minimum(col_min, row_min)


def all_triplets_soft_histogram(
    mat: Tensor, pos: Tensor, neg: Tensor, *, min_val: float, delta: float, num_bins: int
) -> Tensor:
    """:func:`soft_histogram` of ``x = mat[a, p] - mat[a, n]`` over every triplet with
    ``pos[a, p] & neg[a, n]``, without building the triplets (no grad).

    With ``t = (x - min_val) / delta`` clamped to ``[0, num_bins - 1]``, bin ``j`` receives
    ``max(0, 1 - |t - j|)`` from each triplet: linear in ``t`` between consecutive integers. Each
    anchor's negative distances are sorted once; for a positive pair ``(a, p)`` the negatives with
    ``t >= j`` are a prefix of that order (``d_an <= d_ap - min_val - j delta``), found with one
    ``searchsorted`` per cut ``j``; prefix sums of ``d_an`` then give the count and the sum of
    ``t`` in every unit interval. O(N M log M + P num_bins log M) time, O(N M) memory.

    Args:
        mat: ``Tensor[N, M]`` distances; ``pos``, ``neg``: ``BoolTensor[N, M]``.

    Returns:
        ``Tensor[num_bins]`` in ``mat``'s (upcast) dtype.
    """
    with torch.no_grad():
        grid = _TripletGrid(upcast(mat), pos, neg)
        acc = grid.acc
        counts = torch.zeros(num_bins, dtype=acc, device=mat.device)
        if grid.empty:
            return counts.to(grid.dtype)
        shift = grid.d_ap.to(acc) - min_val  # [N, P]; t = (shift - d_an) / delta
        cut, below = grid.cut(min_val, delta, 0)  # t >= 0
        counts[0] += (grid.n_neg[:, None] - cut).masked_fill(~grid.p_valid, 0).sum()  # t < 0
        for j in range(num_bins - 1):  # the unit interval j <= t < j + 1
            cut_next, below_next = grid.cut(min_val, delta, j + 1)
            n_in = (cut - cut_next).to(acc)
            t_sum = (n_in * shift - (below - below_next)) / delta
            counts[j] += torch.where(grid.p_valid, n_in * (1 + j) - t_sum, 0).sum()
            counts[j + 1] += torch.where(grid.p_valid, t_sum - n_in * j, 0).sum()
            cut, below = cut_next, below_next
        counts[num_bins - 1] += cut.masked_fill(~grid.p_valid, 0).sum()  # t >= num_bins - 1
        return counts.to(grid.dtype)


def all_triplets_cdf_weighted_mean(
    mat: Tensor, pos: Tensor, neg: Tensor, cdf: Tensor, *, min_val: float, delta: float
) -> Tensor:
    """:func:`cdf_weighted_mean` over every triplet with ``pos[a, p] & neg[a, n]``, without
    building the triplets.

    A triplet's weight is ``CDF[j]`` for ``j <= t < j + 1`` (clamped as in the module doc), so per
    positive pair the negatives split into ``num_bins`` runs of the sorted order: the loss needs
    their counts and ``d_an`` sums, ``d loss / d d_ap`` their counts, and ``d loss / d d_an`` the
    number of positives of each run, found the same way from the sorted positives.
    O((P + N M) num_bins log M) time, O(N M) memory.

    Args:
        mat: ``Tensor[N, M]`` distances; ``pos``, ``neg``: ``BoolTensor[N, M]`` with at least
            one triplet; ``cdf``: ``Tensor[num_bins]``.

    Returns:
        0-dim tensor in ``mat``'s dtype, differentiable w.r.t. ``mat``.
    """
    return _AllTripletsCdfMean.apply(mat, pos, neg, cdf, float(min_val), float(delta))


# ----------------------------------------------------------------------------------------------
# internals


class _TripletGrid:
    """Each anchor's negatives sorted by distance (with prefix sums) and its positives sorted by
    distance, for run counting with ``searchsorted``."""

    def __init__(self, x: Tensor, pos: Tensor, neg: Tensor) -> None:
        self.dtype = x.dtype
        self.acc = torch.float64 if x.dtype in (torch.float32, torch.float64) else torch.float32
        big = torch.finfo(x.dtype).max  # padding sorts last and is never below a threshold
        self.n_neg = neg.sum(1)  # [N]
        self.n_pos = pos.sum(1)  # [N]
        self.neg_sorted = x.masked_fill(~neg, big).sort(dim=1).values  # [N, M]
        in_row = torch.arange(x.shape[1], device=x.device) < self.n_neg[:, None]
        self.neg_prefix = torch.zeros((x.shape[0], x.shape[1] + 1), dtype=self.acc, device=x.device)
        self.neg_prefix[:, 1:] = torch.where(in_row, self.neg_sorted, 0).to(self.acc).cumsum(1)
        self.p_idx, self.p_valid = _positive_columns(pos)  # [N, P]
        self.d_ap = x.gather(1, self.p_idx)  # [N, P] (padding: column 0, masked by p_valid)
        self.pos_sorted = self.d_ap.masked_fill(~self.p_valid, big).sort(dim=1).values
        self.x = x
        self.neg = neg
        self.empty = self.p_idx.shape[1] == 0 or x.shape[1] == 0

    def cut(self, min_val: float, delta: float, j: int) -> tuple[Tensor, Tensor]:
        """Per positive pair: how many negatives have ``t >= j`` and the sum of their ``d_an``."""
        threshold = self.d_ap - (min_val + j * delta)  # t >= j  <=>  d_an <= threshold
        count = torch.searchsorted(self.neg_sorted, threshold.contiguous(), right=True)
        count = torch.minimum(count, self.n_neg[:, None])  # never count the padding
        return count, self.neg_prefix.gather(1, count)

    def positives_at_least(self, min_val: float, delta: float, j: int) -> Tensor:
        """Per (anchor, column): how many positives have ``t >= j`` against that column as the
        negative (``d_ap >= d_an + min_val + j delta``). ``LongTensor[N, M]``."""
        threshold = self.x + (min_val + j * delta)
        below = torch.searchsorted(self.pos_sorted, threshold.contiguous(), right=False)
        return self.n_pos[:, None] - torch.minimum(below, self.n_pos[:, None])


class _AllTripletsCdfMean(torch.autograd.Function):
    """``sum CDF[j(t)] x / T`` from runs of the sorted distances; ``dSum/dmat`` is built in the
    forward pass (the weights are piecewise constant)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        mat: Tensor,
        pos: Tensor,
        neg: Tensor,
        cdf: Tensor,
        min_val: float,
        delta: float,
    ) -> Tensor:
        grid = _TripletGrid(upcast(mat.detach()), pos, neg)
        acc = grid.acc
        weights = cdf.to(acc)
        num_bins = weights.shape[0]
        valid = grid.p_valid
        d_ap = grid.d_ap.to(acc)
        # runs by bin: bin 0 is t < 1, bin j is j <= t < j + 1, the last bin t >= num_bins - 1
        total = torch.zeros((), dtype=acc, device=mat.device)
        w_ap = torch.zeros_like(d_ap)  # sum over the pair's negatives of CDF[bin]
        upper_count = grid.n_neg[:, None].expand_as(grid.p_idx)
        upper_sum = grid.neg_prefix[:, -1:].expand_as(d_ap)
        for j in range(num_bins):
            if j + 1 < num_bins:
                lower_count, lower_sum = grid.cut(min_val, delta, j + 1)
            else:
                lower_count = torch.zeros_like(upper_count)
                lower_sum = torch.zeros_like(upper_sum)
            n_in = (upper_count - lower_count).to(acc)  # negatives with t in bin j
            sum_in = upper_sum - lower_sum  # their d_an
            total += torch.where(valid, weights[j] * (n_in * d_ap - sum_in), 0).sum()
            w_ap += weights[j] * n_in
            upper_count, upper_sum = lower_count, lower_sum
        count = (grid.n_pos * grid.n_neg).sum().to(acc)
        loss = (total / count).to(mat.dtype)
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            grad = torch.zeros(mat.shape, dtype=acc, device=mat.device)
            grad.scatter_add_(1, grid.p_idx, torch.where(valid, w_ap, 0))  # d/d mat[a, p]
            w_an = grid.n_pos[:, None].to(acc) * weights[0]  # [N, M]
            for j in range(1, num_bins):
                step = weights[j] - weights[j - 1]
                w_an = w_an + step * grid.positives_at_least(min_val, delta, j).to(acc)
            grad -= torch.where(neg, w_an, 0)  # d/d mat[a, n]
            ctx.save_for_backward((grad / count).to(upcast(mat).dtype))
        ctx.mat_dtype = mat.dtype  # type: ignore[attr-defined]
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors  # type: ignore[attr-defined]
        grad_mat = (grad * grad_out.to(grad.dtype)).to(ctx.mat_dtype)  # type: ignore[attr-defined]
        return grad_mat, None, None, None, None, None
