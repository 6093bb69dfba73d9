"""Ranking losses: FastAP, PNP (soft rank of positives) and the Ranked List loss.

* FastAP -- Cakir, He, Xia, Kulis, Sclaroff, "Deep Metric Learning to Rank", CVPR 2019,
  https://arxiv.org/abs/1906.08590 (sec. 3.2, eq. 9-11).
* PNP -- Li, Zhou, Liu, Fang, Zhang, Lu, "Rethinking the Optimization of Average Precision: Only
  Penalizing Negative Instances before Positive Ones is Enough", AAAI 2022,
  https://arxiv.org/abs/2102.04640 (sec. 3, eq. 6-10).
* Ranked List -- Wang, Hua, Kodirov, Hu, Garnier, Robertson, "Ranked List Loss for Deep Metric
  Learning", CVPR 2019, https://arxiv.org/abs/1903.03238 (sec. 3.2-3.4).

Notation. ``mat: Tensor[N, M]`` is a query x reference matrix of distances (FastAP, Ranked List)
or similarities (PNP); ``pos``/``neg: BoolTensor[N, M]`` say which references are relevant /
irrelevant to each query. Every kernel returns one term per query row, so row ``q`` of the
gradient only depends on row ``q`` of ``mat``.

Memory. Each kernel is a custom ``torch.autograd.Function``:

* :func:`fast_ap` soft-assigns every distance to its two neighbouring histogram nodes with a
  scatter (O(N*M + N*bins), never the ``bins x N x M`` pulse tensor); backward recomputes the
  node of each distance and gathers a closed-form per-node gradient.
* :func:`pnp_query_losses` walks the (query, positive) pairs in blocks of at most
  ``max_block_elements`` sigmoid terms (never the ``N x N x N`` tensor) and accumulates the
  ``N x M`` gradient during the forward pass, so backward is a scaling and peak memory is
  O(N*M + block).
* :func:`ranked_list_terms` is elementwise; the forward pass also writes the per-row gradient,
  so autograd keeps one ``N x M`` matrix instead of every intermediate.

float16/bfloat16 inputs are computed in float32; results and gradients come back in the input
dtype.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from .._types import Tensor
from ._dtype import upcast

__all__ = [
    "PNP_VARIANTS",
    "fast_ap",
    "pnp_query_losses",
    "ranked_list_terms",
]

#: Upper bound on ``pairs_per_block * M`` sigmoid terms held at once by :func:`pnp_query_losses`.
DEFAULT_BLOCK_ELEMENTS = 1 << 21

PNPVariant = Literal["Ds", "Dq", "Iu", "Ib", "O"]
#: The PNP rank transforms ``f(R)`` (R = soft number of negatives ranked above a positive).
PNP_VARIANTS: tuple[str, ...] = ("Ds", "Dq", "Iu", "Ib", "O")


# ============================================================ FastAP
def fast_ap(mat: Tensor, pos: Tensor, neg: Tensor, *, num_bins: int, max_value: float) -> Tensor:
    """Per-query FastAP: average precision from soft distance histograms.

    ``num_bins + 1`` triangular kernels of width ``delta = max_value / num_bins`` sit on the
    nodes ``z * delta`` (``z = 0 .. num_bins``); a distance ``d`` adds
    ``max(0, 1 - |d - z delta| / delta)`` to node ``z``. For query ``q``, ``h+_z`` and ``h-_z``
    sum that over its positives and negatives, ``H+_z = sum_{k<=z} h+_k`` and
    ``H_z = sum_{k<=z} (h+_k + h-_k)``::

        FastAP_q = (1 / N+_q) * sum_{z : h+_z H+_z > 0, H_z > 0} h+_z H+_z / H_z

    Args:
        mat: ``Tensor[N, M]`` distances (small = similar), expected in ``[0, max_value]``.
        pos: ``BoolTensor[N, M]`` positives of each query (self pairs already removed).
        neg: ``BoolTensor[N, M]`` negatives of each query (disjoint from ``pos``).
        num_bins: number of histogram bins (>= 1).
        max_value: the largest distance (right edge of the histogram).

    Returns:
        ``Tensor[N]`` in ``mat``'s dtype: ``FastAP_q``, 0 for queries without positives.
        Differentiable w.r.t. ``mat``.

    Cost: O(N*M) time and memory (plus O(N * num_bins)).
    """
    return _FastAP.apply(mat, pos, neg, int(num_bins), float(max_value))


def _fast_ap_columns(
    x: Tensor, neg: Tensor, num_bins: int, delta: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Where each distance lands in the padded ``[N, 2 * (num_bins + 4)]`` soft-count table.

    The table holds positives in its first half and negatives in its second; within a half,
    column ``c`` is node ``c - 1`` (columns 0 and ``num_bins + 2 ..`` catch distances outside
    ``[0, max_value]``). Returns the column of the lower neighbouring node, the weight ``t`` of
    the upper node (the lower one gets ``1 - t``) and where the kernels have a slope
    (``-1 < d / delta < num_bins + 1``).
    """
    u = x / delta
    sloped = (u > -1) & (u < num_bins + 1)
    u.clamp_(-1, num_bins + 1)
    lower = torch.floor(u)
    t = u.sub_(lower)  # in place: u is not needed any more
    col = lower.add_(neg, alpha=num_bins + 4).add_(1).long()
    return col, t, sloped


class _FastAP(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        mat: Tensor,
        pos: Tensor,
        neg: Tensor,
        num_bins: int,
        max_value: float,
    ) -> Tensor:
        x = upcast(mat.detach())  # [N, M]
        delta = max_value / num_bins
        width = num_bins + 4
        col, t, _ = _fast_ap_columns(x, neg, num_bins, delta)
        weight = (pos | neg).to(x.dtype)
        upper = t.mul_(weight)  # t is not needed any more
        counts = x.new_zeros((x.shape[0], 2 * width))
        counts.scatter_add_(1, col + 1, upper)
        counts.scatter_add_(1, col, weight.sub_(upper))
        del col, upper, weight
        h_pos = counts[:, 1 : num_bins + 2]  # [N, B+1]
        h_neg = counts[:, width + 1 : width + num_bins + 2]  # [N, B+1]
        cum_pos = torch.cumsum(h_pos, dim=1)
        cum_all = torch.cumsum(h_pos + h_neg, dim=1)
        product = h_pos * cum_pos
        safe = (product > 0) & (cum_all > 0)
        inv_all = torch.where(safe, 1.0 / torch.where(safe, cum_all, 1.0), 0.0)  # [N, B+1]
        n_pos = pos.sum(dim=1).clamp_min(1).to(x.dtype)  # [N]
        ap = (product * inv_all).sum(dim=1) / n_pos
        ctx.save_for_backward(mat, pos, neg, h_pos, cum_pos, inv_all, n_pos)
        ctx.num_bins, ctx.delta = num_bins, delta  # type: ignore[attr-defined]
        return ap.to(mat.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        mat, pos, neg, h_pos, cum_pos, inv_all, n_pos = ctx.saved_tensors  # type: ignore[attr-defined]
        num_bins, delta = ctx.num_bins, ctx.delta  # type: ignore[attr-defined]
        x = upcast(mat)
        g = grad_out.to(x.dtype) / n_pos  # [N] d loss / d sum_z f_z

        def rev_cumsum(v: Tensor) -> Tensor:
            return v.flip(1).cumsum(1).flip(1)

        # f_z = h+_z H+_z / H_z on safe nodes; H+ = cumsum(h+), H = cumsum(h+ + h-)
        d_all = -rev_cumsum(h_pos * cum_pos * inv_all * inv_all)  # d F / d (h+ + h-)_k
        d_pos = cum_pos * inv_all + rev_cumsum(h_pos * inv_all) + d_all  # d F / d h+_k
        width = num_bins + 4
        table = x.new_zeros((x.shape[0], 2 * width + 1))
        table[:, 1 : num_bins + 2] = d_pos * g[:, None]
        table[:, width + 1 : width + num_bins + 2] = d_all * g[:, None]
        step = table[:, 1:] - table[:, :-1]  # [N, 2 width] upper node minus lower node
        col, _, sloped = _fast_ap_columns(x, neg, num_bins, delta)
        grad = step.gather(1, col).mul_(sloped & (pos | neg)).div_(delta)
        return grad.to(mat.dtype), None, None, None, None


# ============================================================ PNP
def pnp_query_losses(
    sim: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    variant: PNPVariant = "O",
    b: float = 2,
    alpha: float = 1,
    anneal: float = 0.01,
    max_block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> Tensor:
    """Per-query PNP term: the mean of ``f(R_qi)`` over the query's positives ``i``.

    The soft number of negatives ranked above positive ``i`` for query ``q`` is::

        R_qi = sum_{j in neg(q)} sigmoid((s_qj - s_qi) / anneal)

    and ``f`` is the variant: ``"O"`` ``R``; ``"Ds"`` ``log(1 + R)``; ``"Dq"`` ``(1 + R)^-alpha``;
    ``"Iu"`` ``(1 + R) log(1 + R)``; ``"Ib"`` ``(b R - log(1 + b R)) / b^2``.
    (pytorch-metric-learning clamps the sigmoid's input to ``[-50, 50]``; that changes a term by
    less than ``2e-22``.)

    Args:
        sim: ``Tensor[N, M]`` similarities (large = similar).
        pos: ``BoolTensor[N, M]`` positives whose rank counts (PNP includes the query itself).
        neg: ``BoolTensor[N, M]`` negatives.
        variant, b, alpha, anneal: as above (``anneal > 0``).
        max_block_elements: at most this many sigmoid terms are held at once.

    Returns:
        ``Tensor[N]`` in ``sim``'s dtype, 0 for queries without positives. Differentiable w.r.t.
        ``sim``; the gradient is accumulated during the forward pass.

    Cost: O(P * M) time for P positive pairs; O(N * M + max_block_elements) memory.
    """
    if variant not in PNP_VARIANTS:
        raise ValueError(
            f"pnp_query_losses: expected `variant` to be one of {list(PNP_VARIANTS)}, "
            f"got {variant!r}."
        )
    return _PNP.apply(
        sim, pos, neg, variant, float(b), float(alpha), float(anneal), int(max_block_elements)
    )


def _pnp_transform(rank: Tensor, variant: str, b: float, alpha: float) -> tuple[Tensor, Tensor]:
    """``f(R)`` and ``f'(R)`` of a PNP variant (``R >= 0``)."""
    if variant == "O":
        return rank, torch.ones_like(rank)
    if variant == "Ds":
        return torch.log1p(rank), 1.0 / (1.0 + rank)
    if variant == "Dq":
        value = (1.0 + rank) ** (-alpha)
        return value, -alpha * value / (1.0 + rank)
    if variant == "Iu":
        log_term = torch.log1p(rank)
        return (1.0 + rank) * log_term, log_term + 1.0
    # "Ib"
    scaled = b * rank
    return (scaled - torch.log1p(scaled)) / (b * b), rank / (1.0 + scaled)


class _PNP(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        sim: Tensor,
        pos: Tensor,
        neg: Tensor,
        variant: str,
        b: float,
        alpha: float,
        anneal: float,
        max_block_elements: int,
    ) -> Tensor:
        want_grad = bool(ctx.needs_input_grad[0])  # type: ignore[attr-defined]
        x = upcast(sim.detach()) / anneal  # [N, M] s / anneal
        n, m = x.shape
        # negatives keep s_qj / anneal; other columns get the lowest value, so sigmoid gives 0
        x_neg = x.masked_fill(~neg, torch.finfo(x.dtype).min)
        rows_all, cols_all = pos.nonzero(as_tuple=True)  # [P] positive pairs, by query
        pair_weight = 1.0 / pos.sum(dim=1).to(x.dtype).clamp_min(1)  # [N] 1 / |pos(q)|
        losses = x.new_zeros(n)
        jac = x.new_zeros((n, m)) if want_grad else None  # d losses[q] / d s[q, :]
        block = max(1, max_block_elements // max(m, 1))
        for start in range(0, rows_all.numel(), block):
            rows = rows_all[start : start + block]
            cols = cols_all[start : start + block]
            sig = x_neg.index_select(0, rows)  # [B, M] s_qj / anneal
            sig.sub_(x[rows, cols][:, None]).sigmoid_()  # sigmoid((s_qj - s_qi) / anneal)
            rank = sig.sum(dim=1)  # [B] R_qi
            value, slope = _pnp_transform(rank, variant, b, alpha)
            w = pair_weight.index_select(0, rows)
            losses.index_add_(0, rows, value * w)
            if jac is not None:
                # d R_qi / d s_qj = sig' / anneal (j negative), d R_qi / d s_qi = -sum_j of it
                coef = slope * w / anneal  # [B]
                grad = sig.sub_(sig * sig).mul_(coef[:, None])  # [B, M]; sig no longer needed
                jac.index_add_(0, rows, grad)
                jac.index_put_((rows, cols), -grad.sum(dim=1), accumulate=True)
        ctx.save_for_backward(jac if jac is not None else x.new_zeros(0))
        ctx.sim_dtype = sim.dtype  # type: ignore[attr-defined]
        return losses.to(sim.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (jac,) = ctx.saved_tensors  # type: ignore[attr-defined]
        grad = jac * grad_out.to(jac.dtype)[:, None]
        return grad.to(ctx.sim_dtype), None, None, None, None, None, None, None  # type: ignore[attr-defined]


# ============================================================ Ranked List
def ranked_list_terms(
    mat: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    margin: float,
    alpha: float,
    imbalance: float,
    Tp: float,
    Tn: float,
) -> Tensor:
    """Per-query Ranked List loss.

    With the boundary ``beta = alpha - margin``, the violating positives ``P*`` (``d > beta``) and
    negatives ``N*`` (``d < alpha``) of query ``q`` are weighted by ``w = exp(Tp (d - beta))`` and
    ``w = exp(Tn (alpha - d))``::

        L_P = sum_{P*} w (d - beta) / (sum_{P*} w + 1e-5 M)
        L_N = sum_{N*} w (alpha - d) / (sum_{N*} w + 1e-5 M)
        L_q = (1 - imbalance) L_P + imbalance L_N

    As in pytorch-metric-learning, only values ``d > 0`` can be selected and the ``1e-5`` is
    added once per reference column (``M`` times).

    Args:
        mat: ``Tensor[N, M]`` distances.
        pos: ``BoolTensor[N, M]`` positives (self pairs removed); ``neg``: negatives.
        margin, alpha, imbalance, Tp, Tn: as above.

    Returns:
        ``Tensor[N]`` in ``mat``'s dtype, differentiable w.r.t. ``mat``.

    Cost: O(N*M) time and memory.
    """
    return _RankedList.apply(
        mat, pos, neg, float(margin), float(alpha), float(imbalance), float(Tp), float(Tn)
    )


class _RankedList(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        mat: Tensor,
        pos: Tensor,
        neg: Tensor,
        margin: float,
        alpha: float,
        imbalance: float,
        Tp: float,
        Tn: float,
    ) -> Tensor:
        want_grad = bool(ctx.needs_input_grad[0])  # type: ignore[attr-defined]
        x = upcast(mat.detach())  # [N, M]
        pad = 1e-5 * x.shape[1]
        boundary = alpha - margin
        # positives: excess e = d - beta > 0, weight exp(Tp e); negatives: e = alpha - d > 0
        loss_p, grad_p = _rll_side(x - boundary, pos & (x > max(boundary, 0.0)), Tp, pad, want_grad)
        sel = neg & (x < alpha) & (x > 0)
        loss_n, grad_n = _rll_side(alpha - x, sel, Tn, pad, want_grad)
        losses = (1 - imbalance) * loss_p + imbalance * loss_n
        if grad_p is not None and grad_n is not None:
            jac = grad_p.mul_(1 - imbalance).sub_(grad_n.mul_(imbalance))  # d / d e_n = -d / d d
        else:
            jac = x.new_zeros(0)
        ctx.save_for_backward(jac)
        ctx.mat_dtype = mat.dtype  # type: ignore[attr-defined]
        return losses.to(mat.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (jac,) = ctx.saved_tensors  # type: ignore[attr-defined]
        grad = jac * grad_out.to(jac.dtype)[:, None]
        return grad.to(ctx.mat_dtype), None, None, None, None, None, None, None  # type: ignore[attr-defined]


def _rll_side(
    excess: Tensor, sel: Tensor, temperature: float, pad: float, want_grad: bool
) -> tuple[Tensor, Tensor | None]:
    """One side of the Ranked List loss: ``L = sum_sel w e / (sum_sel w + pad)``, ``w = exp(T e)``,
    and (when asked) ``dL/de = w / den (1 + T (e - L))`` per entry. ``excess`` is overwritten."""
    excess.mul_(sel)  # e, 0 outside the selection
    weight = sel.to(excess.dtype) if temperature == 0 else torch.exp(excess * temperature).mul_(sel)
    den = weight.sum(dim=1) + pad  # [N]
    loss = (weight * excess).sum(dim=1) / den
    if not want_grad:
        return loss, None
    if temperature == 0:
        return loss, weight.div_(den[:, None])
    grad = excess.sub_(loss[:, None]).mul_(temperature).add_(1).mul_(weight).div_(den[:, None])
    return loss, grad
