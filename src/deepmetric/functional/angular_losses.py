"""Angular loss: a positive pair's angle at the negative, bounded by ``alpha``.

Wang, Zhou, Wen, Liu, Lin, "Deep Metric Learning with Angular Loss", ICCV 2017,
https://arxiv.org/abs/1708.01682 (eq. 8, the N-pair form of sec. 4.3).

For a positive pair ``(a, p)`` with unit vectors ``x_a``, ``x_p`` and the negatives ``n`` of the
anchor (reference rows whose label differs from the anchor's)::

    f_apn = 4 tan^2(alpha) (x_a + x_p)^T x_n - 2 (1 + tan^2(alpha)) x_a^T x_p
    L_ap  = log(1 + sum_n exp(f_apn))

Like pytorch-metric-learning, the negatives ``x_n`` are the reference rows *as given* (not
normalised) while anchors and positives are unit vectors.

Memory. The ``P x M`` logits (P positive pairs, M reference rows) are never stored: each block
of pairs computes its logits with one ``(b x D) @ (D x M)`` product, takes a masked log-sum-exp and
keeps only ``L`` (``P`` values); the backward pass recomputes the block's soft-max weights and
turns them into ``b x D`` row gradients with two more products. Memory: O(block * M + (P + M) D),
time O(P M D) in matrix products.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from .._types import Tensor
from ._dtype import upcast

__all__ = ["angular_average_angle", "angular_pair_terms"]

#: Upper bound on ``pairs_per_block * M`` logits held at once.
DEFAULT_BLOCK_ELEMENTS = 1 << 21


def angular_pair_terms(
    anchors_unit: Tensor,
    positives_unit: Tensor,
    negatives: Tensor,
    a: Tensor,
    p: Tensor,
    labels: Tensor,
    ref_labels: Tensor,
    *,
    alpha: float,
    max_block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> Tensor:
    """Angular loss ``L_ap`` of every positive pair, negatives taken from the labels.

    Args:
        anchors_unit: ``Tensor[N, D]`` unit query rows (``x_a = anchors_unit[a]``).
        positives_unit: ``Tensor[M, D]`` unit reference rows (``x_p = positives_unit[p]``).
        negatives: ``Tensor[M, D]`` reference rows as given (``x_n``).
        a: ``LongTensor[P]`` anchor rows; ``p``: ``LongTensor[P]`` positive reference rows.
        labels: ``Tensor[N]``; ``ref_labels``: ``Tensor[M]``; ``n`` is a negative of ``a`` iff
            ``ref_labels[n] != labels[a]``.
        alpha: the angle bound in **radians**.
        max_block_elements: bound on the logits held at once (``block * M``).

    Returns:
        ``Tensor[P]`` in the input dtype, differentiable w.r.t. the three embedding tensors;
        ``0`` for a pair whose anchor has no negative. float16/bfloat16 run in float32.
    """
    return _AngularPairs.apply(
        anchors_unit,
        positives_unit,
        negatives,
        a,
        p,
        labels,
        ref_labels,
        math.tan(alpha) ** 2,
        int(max_block_elements),
    )


def angular_average_angle(
    anchors_unit: Tensor,
    positives_unit: Tensor,
    negatives: Tensor,
    a: Tensor,
    p: Tensor,
    labels: Tensor,
    ref_labels: Tensor,
    *,
    max_block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> Tensor:
    """Mean angle at the negative, ``atan(|x_a - x_p| / (2 |c_ap - x_n|))`` with
    ``c_ap = (x_a + x_p) / 2``, over every (positive pair, negative); in **degrees** (no grad).

    Arguments as in :func:`angular_pair_terms`. ``|x_a - x_p|`` carries the ``1e-6`` offset of
    ``torch.nn.functional.pairwise_distance``. Returns a 0-dim float tensor (0 if nothing counts).
    """
    with torch.no_grad():
        A, U, R = upcast(anchors_unit), upcast(positives_unit), upcast(negatives)
        r_sq = (R * R).sum(1)  # [M]
        total = torch.zeros((), dtype=torch.float64, device=A.device)
        count = torch.zeros((), dtype=torch.long, device=A.device)
        for lo, hi in _blocks(len(a), R.shape[0], max_block_elements):
            xa, xp = A[a[lo:hi]], U[p[lo:hi]]  # [b, D]
            ap = torch.nn.functional.pairwise_distance(xa, xp)  # [b]
            centre = (xa + xp) / 2
            nc_sq = (centre * centre).sum(1, keepdim=True) + r_sq - 2 * centre @ R.T  # [b, M]
            angle = torch.atan(ap[:, None] / (2 * nc_sq.clamp_min(0).sqrt()))
            keep = labels[a[lo:hi]][:, None] != ref_labels[None, :]
            total += torch.where(keep, angle, 0).sum(dtype=torch.float64)
            count += keep.sum()
        mean = torch.where(count > 0, total / count.clamp_min(1), 0)
        return torch.rad2deg(mean).to(A.dtype)


# ----------------------------------------------------------------------------------------------
# internals


def _blocks(n_pairs: int, n_cols: int, max_block_elements: int) -> list[tuple[int, int]]:
    step = max(1, max_block_elements // max(n_cols, 1))
    return [(lo, min(lo + step, n_pairs)) for lo in range(0, n_pairs, step)]


def _add_rows(out: Tensor, index: Tensor, rows: Tensor) -> None:
    """``out[index[i]] += rows[i]`` (repeated indices add up). On CPU ``index_put_`` with
    ``accumulate`` is much faster than ``index_add_`` for wide rows; on GPUs ``index_add_``."""
    if out.is_cuda:
        out.index_add_(0, index, rows)
    else:
        out.index_put_((index,), rows, accumulate=True)


def _block_logits(
    A: Tensor,
    U: Tensor,
    R: Tensor,
    ab: Tensor,
    pb: Tensor,
    labels: Tensor,
    ref_labels: Tensor,
    t2: float,
) -> tuple[Tensor, Tensor]:
    """Masked logits ``f: Tensor[b, M]`` of a block of pairs (non-negatives hold the lowest
    finite value, so ``exp`` gives 0) and ``s = x_a + x_p: Tensor[b, D]``."""
    xa, xp = A[ab], U[pb]  # [b, D]
    s = xa + xp
    c = (xa * xp).sum(1, keepdim=True)  # [b, 1]
    f = torch.addmm(c, s, R.T, beta=-2 * (1 + t2), alpha=4 * t2)  # [b, M]
    same = labels[ab][:, None] == ref_labels[None, :]
    return f.masked_fill_(same, torch.finfo(f.dtype).min), s


class _AngularPairs(torch.autograd.Function):
    """``L_ap = log(1 + sum_{n kept} exp f_apn)`` block by block; backward recomputes the
    block's weights ``w = exp(f - L)`` instead of storing the ``P x M`` logits."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        anchors_unit: Tensor,
        positives_unit: Tensor,
        negatives: Tensor,
        a: Tensor,
        p: Tensor,
        labels: Tensor,
        ref_labels: Tensor,
        t2: float,
        max_block_elements: int,
    ) -> Tensor:
        A, U, R = upcast(anchors_unit), upcast(positives_unit), upcast(negatives)
        out = torch.empty(len(a), dtype=A.dtype, device=A.device)
        zero = torch.zeros((), dtype=A.dtype, device=A.device)
        for lo, hi in _blocks(len(a), R.shape[0], max_block_elements):
            f, _ = _block_logits(A, U, R, a[lo:hi], p[lo:hi], labels, ref_labels, t2)
            # log(1 + sum exp f): the "1" is a zero logit; a row without negatives gives 0
            out[lo:hi] = torch.logaddexp(torch.logsumexp(f, dim=1), zero)
        ctx.save_for_backward(A, U, R, a, p, labels, ref_labels, out)
        ctx.t2 = t2  # type: ignore[attr-defined]
        ctx.block = max_block_elements  # type: ignore[attr-defined]
        ctx.dtypes = (anchors_unit.dtype, positives_unit.dtype, negatives.dtype)  # type: ignore[attr-defined]
        return out.to(anchors_unit.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        A, U, R, a, p, labels, ref_labels, out = ctx.saved_tensors  # type: ignore[attr-defined]
        t2: float = ctx.t2  # type: ignore[attr-defined]
        g = grad_out.to(A.dtype)
        dA, dU, dR = torch.zeros_like(A), torch.zeros_like(U), torch.zeros_like(R)
        for lo, hi in _blocks(len(a), R.shape[0], ctx.block):  # type: ignore[attr-defined]
            ab, pb = a[lo:hi], p[lo:hi]
            f, s = _block_logits(A, U, R, ab, pb, labels, ref_labels, t2)
            # dL/df = softmax weight of each negative's logit (the "1" takes the rest)
            w = torch.exp(f.sub_(out[lo:hi, None])).mul_(g[lo:hi, None])  # [b, M]
            dc = (-2 * (1 + t2)) * w.sum(1)  # [b], d/d (x_a . x_p)
            w.mul_(4 * t2)  # d/d (s . x_n)
            ds = w @ R  # [b, D]
            dR += w.T @ s
            _add_rows(dA, ab, ds + dc[:, None] * U[pb])
            _add_rows(dU, pb, ds + dc[:, None] * A[ab])
        da, du, dr = ctx.dtypes  # type: ignore[attr-defined]
        return dA.to(da), dU.to(du), dR.to(dr), None, None, None, None, None, None
