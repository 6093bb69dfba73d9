"""Masked row-wise log-sum-exp pieces and the two autograd shapes the LSE losses share.

Every loss in :mod:`.lse_pair_losses` and :mod:`.nca` is built from per-row masked sums
``s_i = sum_{j kept} w_ij exp(z_ij - m_i)`` (``m_i`` the row maximum over kept entries), so
``LSE_i = m_i + log s_i``. Their gradient with respect to the ``N x M`` input matrix is known in
closed form, so the kernels compute it during the forward pass into one ``N x M`` buffer and
backward only scales it: autograd would keep several ``N x M`` intermediates instead.

Two shapes of loss:

* :class:`RowTerms`: one term per row (``L_i`` depends on row ``i`` only). The kernel returns
  ``(L, G)`` with ``G_ij = dL_i / dmat_ij``; backward is ``G * grad[:, None]``.
* :class:`PairTerms`: one term per positive pair ``k = (a_k, p_k)``, depending on ``mat[a_k, p_k]``
  and on masked sums of one or two rows. The kernel returns ``E`` (``w_ij exp(z_ij - m_i)``, the
  softmax numerators), per-pair coefficients that say how much of row ``a``'s ``E`` each term's
  gradient takes, and per-pair coefficients of ``mat[a_k, p_k]``. Backward gathers the incoming
  gradient per row with ``index_add`` (O(pairs)) and scales ``E`` once (O(N M)).

float16/bfloat16 are computed in float32; results and gradients return in the input dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from .._types import Tensor
from ._dtype import upcast

#: (anchor row per pair, coefficient per pair): row ``a_k`` of ``E`` gets ``grad_k * coef_k``.
RowContribution = tuple[Tensor, Tensor]
#: ``(E, row contributions, (a, p, coefficient of mat[a, p]))`` from a pair kernel.
PairBackward = tuple[Tensor, list[RowContribution], tuple[Tensor, Tensor, Tensor]]


def exp_floor(dtype: torch.dtype) -> float:
    """Lower clamp for exponents: ``exp`` of anything below is a tiny *normal* number.

    CPU ``exp`` is 10-70x slower where the result is subnormal or the input is huge and negative,
    so masked entries and far-below-maximum entries are clamped here first. The values replaced
    are below ``exp(floor) / exp(0)`` (about 1e-27 in float32, 1e-215 in float64) relative to the
    row's largest term, far under the dtype's precision.
    """
    return 0.7 * math.log(torch.finfo(dtype).tiny)


def masked_row_exp(
    x: Tensor,
    keep: Tensor | None,
    weight: Tensor | None = None,
    *,
    scale: float = 1.0,
    inplace: bool = False,
    skip_diagonal: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per row of ``z = scale * x`` over the kept entries: maximum, exponentials and their sum.

    Args:
        x: ``Tensor[N, M]`` (float32/float64).
        keep: ``BoolTensor[N, M]`` or None (keep everything).
        weight: ``Tensor[N, M]`` non-negative multiplicities (zero where not kept), or None.
        scale: multiplies ``x`` (any sign).
        inplace: ``x`` is a scratch tensor the caller no longer needs: it becomes ``e``.
        skip_diagonal: with ``keep=None``, keep everything but the diagonal ``(i, i)``.

    Returns:
        ``(m, e, s)``: ``m: Tensor[N]`` the row maximum of ``z`` over kept entries (``-inf`` for
        rows with nothing kept; such rows have ``s == 0``),
        ``e: Tensor[N, M] = weight * exp(z - m)`` (0 where not kept) and ``s = e.sum(1)``.
        ``LSE = m + log(s)`` is ``-inf`` for empty rows. No NaN for any mask. One ``N x M``
        allocation (none with ``inplace``).
    """
    finfo = torch.finfo(x.dtype)
    floor = exp_floor(x.dtype)
    if keep is None:
        e = x.mul_(scale) if inplace else torch.mul(x, scale)
        if skip_diagonal:
            e.fill_diagonal_(finfo.min)
        peak = e.amax(dim=1)
        e.sub_(peak[:, None]).clamp_min_(floor).exp_()
        if skip_diagonal:
            e.fill_diagonal_(0)
        if weight is not None:
            e.mul_(weight)
        total = e.sum(dim=1)
        return torch.where(total > 0, peak, torch.full_like(peak, -math.inf)), e, total
    # masked: the extreme fill keeps dropped entries out of the maximum (minimum when scale < 0)
    drop = ~keep
    fill = finfo.min if scale >= 0 else finfo.max
    e = x.masked_fill_(drop, fill) if inplace else x.masked_fill(drop, fill)
    peak = e.amax(dim=1) if scale >= 0 else e.amin(dim=1)
    e.sub_(peak[:, None])  # rows with nothing kept are all 0 here: emptied below
    if scale != 1:
        e.mul_(scale)  # dropped entries go to -inf or below the floor
    e.clamp_min_(floor).exp_().masked_fill_(drop, 0)
    if weight is not None:
        e.mul_(weight)
    total = e.sum(dim=1)  # a kept entry contributes at least exp(floor) > 0
    m = torch.where(total > 0, peak * scale, torch.full_like(peak, -math.inf))
    return m, e, total


def safe_div(num: Tensor | float, den: Tensor, ok: Tensor) -> Tensor:
    """``num / den`` where ``ok``, 0 elsewhere (no inf/NaN from the unselected entries)."""
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))


RowKernel = Callable[..., tuple[Tensor, Tensor | None]]
PairKernel = Callable[..., tuple[Tensor, PairBackward | None]]


class RowTerms(torch.autograd.Function):
    """``losses = kernel(mat)[0]`` with the kernel's closed-form ``dL_i/dmat_ij`` as gradient.

    ``kernel(work, need_grad, **options) -> (losses Tensor[N], G Tensor[N, M] | None)``, where
    ``work`` is ``mat`` detached and upcast from float16/bfloat16.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, mat: Tensor, kernel: RowKernel, options: dict[str, Any]
    ) -> Tensor:
        need = bool(ctx.needs_input_grad[0])  # type: ignore[attr-defined]
        losses, grad = kernel(upcast(mat.detach()), need, **options)
        ctx.grad = grad  # type: ignore[attr-defined]
        ctx.dtype = mat.dtype  # type: ignore[attr-defined]
        return losses.to(mat.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, None, None]:
        g = ctx.grad
        if g is None:
            return None, None, None
        return (g * grad_out.to(g.dtype)[:, None]).to(ctx.dtype), None, None


def row_terms(mat: Tensor, kernel: RowKernel, **options: Any) -> Tensor:
    """Apply :class:`RowTerms` (``options`` are passed to the kernel as keywords)."""
    out: Tensor = RowTerms.apply(mat, kernel, options)
    return out


class PairTerms(torch.autograd.Function):
    """Per-positive-pair losses with gradient ``E * R[:, None]`` plus the positive entries.

    ``kernel(work, need_grad, **options) -> (losses Tensor[P], PairBackward | None)``.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, mat: Tensor, kernel: PairKernel, options: dict[str, Any]
    ) -> Tensor:
        need = bool(ctx.needs_input_grad[0])  # type: ignore[attr-defined]
        losses, back = kernel(upcast(mat.detach()), need, **options)
        ctx.back = back  # type: ignore[attr-defined]
        ctx.dtype = mat.dtype  # type: ignore[attr-defined]
        return losses.to(mat.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, None, None]:
        if ctx.back is None:
            return None, None, None
        e, rows, (a, p, pos_coef) = ctx.back
        g = grad_out.to(e.dtype)
        per_row = e.new_zeros(e.shape[0])
        for anchor, coef in rows:
            per_row.index_add_(0, anchor, g * coef)
        grad = e * per_row[:, None]
        grad.index_put_((a, p), g * pos_coef, accumulate=True)
        return grad.to(ctx.dtype), None, None


def pair_terms(mat: Tensor, kernel: PairKernel, **options: Any) -> Tensor:
    """Apply :class:`PairTerms` (``options`` are passed to the kernel as keywords)."""
    out: Tensor = PairTerms.apply(mat, kernel, options)
    return out
