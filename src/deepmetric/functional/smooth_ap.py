"""Smooth-AP: average precision with the ranking step function replaced by a sigmoid.

Brown, Xie, Kalogeiton, Zisserman, "Smooth-AP: Smoothing the Path Towards Large-Scale Image
Retrieval", ECCV 2020, https://arxiv.org/abs/2007.12163 (sec. 3, eq. 3-8).

Notation. ``sim: Tensor[N, M]`` holds the similarity ``s_qj`` of query ``q`` to reference ``j``;
``pos: BoolTensor[N, M]`` marks the references relevant to each query (``P_q``, ``K_q = |P_q|``).
With the sigmoid ``G(d) = 1 / (1 + exp(-d / tau))`` of a similarity difference (eq. 6), the rank
of positive ``i`` among all references and among the positives are (eq. 5, 8)::

    R_all(q, i) = 1 + sum_{j != i} G(s_qj - s_qi)
    R_pos(q, i) = 1 + sum_{j in P_q, j != i} G(s_qj - s_qi)

    AP_q = (1 / K_q) sum_{i in P_q} R_pos(q, i) / R_all(q, i),        loss_q = 1 - AP_q

Since ``G(0) = 1/2`` exactly, the sums are taken over every ``j`` and ``1/2`` is added instead of
skipping ``j = i``.

Memory. :func:`smooth_ap_losses` is a custom ``torch.autograd.Function``. The straightforward form
holds the ``N x K x M`` sigmoid tensor and autograd keeps it (and more) for backward; here queries
are processed in blocks of at most ``max_block_elements`` sigmoid terms, and the ``N x M``
gradient is accumulated during the forward pass, so backward is one scaling and the peak memory is
O(N*M + block).

float16/bfloat16 inputs are computed in float32; results and gradients come back in the input
dtype.
"""

from __future__ import annotations

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from .._types import Tensor
from ._dtype import upcast

__all__ = ["smooth_ap_losses"]

#: Upper bound on ``queries_per_block * K * M`` sigmoid terms held at once.
DEFAULT_BLOCK_ELEMENTS = 1 << 21


def smooth_ap_losses(
    sim: Tensor,
    pos: Tensor,
    *,
    temperature: float = 0.01,
    max_block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> Tensor:
    """Per-query Smooth-AP loss ``1 - AP_q`` (see the module docstring for the formula).

    Args:
        sim: ``Tensor[N, M]`` similarities (large = similar).
        pos: ``BoolTensor[N, M]`` positives of each query. Every positive is ranked, so include
            the query's own column when it should count as a positive (as pytorch-metric-learning
            and the authors' code do).
        temperature: ``tau`` of the sigmoid (> 0); small values approach the true AP.
        max_block_elements: at most this many sigmoid terms are held at once.

    Returns:
        ``Tensor[N]`` in ``sim``'s dtype: ``1 - AP_q``; 0 for queries without positives.
        Differentiable w.r.t. ``sim``; the gradient is accumulated during the forward pass.

    Cost: O(N * K * M) time for K positives per query; O(N * M + max_block_elements) memory.
    """
    if sim.ndim != 2 or pos.shape != sim.shape or pos.dtype != torch.bool:
        raise ValueError(
            "smooth_ap_losses: expected `sim` of shape (N, M) and a bool `pos` of the same shape, "
            f"got {tuple(sim.shape)} and {pos.dtype} {tuple(pos.shape)}."
        )
    if not temperature > 0:
        raise ValueError(f"smooth_ap_losses: expected `temperature` > 0, got {temperature!r}.")
    return _SmoothAP.apply(sim, pos, float(temperature), int(max_block_elements))


def _positive_table(pos: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
    """Column of every positive, one row per query: ``(idx LongTensor[N, K], valid, counts)``.

    ``K`` is the largest number of positives of a query; shorter rows are padded with column 0 and
    ``valid`` (``BoolTensor[N, K]``) marks the real entries (``None`` when no row is padded).
    """
    n = pos.shape[0]
    counts = pos.sum(dim=1)  # [N]
    rows, cols = pos.nonzero(as_tuple=True)  # row-major: each query's positives in order
    k = int(counts.max()) if n else 0
    if rows.numel() == n * k:  # every query has K positives
        return cols.view(n, k), None, counts
    starts = torch.cumsum(counts, dim=0) - counts  # [N] first pair of each query
    slot = torch.arange(rows.numel(), device=pos.device) - starts[rows]
    idx = torch.zeros((n, k), dtype=torch.long, device=pos.device)
    valid = torch.zeros((n, k), dtype=torch.bool, device=pos.device)
    idx[rows, slot] = cols
    valid[rows, slot] = True
    return idx, valid, counts


class _SmoothAP(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        sim: Tensor,
        pos: Tensor,
        temperature: float,
        max_block_elements: int,
    ) -> Tensor:
        want_grad = bool(ctx.needs_input_grad[0])  # type: ignore[attr-defined]
        x = upcast(sim.detach()) / temperature  # [N, M] s / tau
        n, m = x.shape
        idx, valid, counts = _positive_table(pos)  # [N, K]
        k = idx.shape[1]
        losses = x.new_zeros(n)
        jac = x.new_zeros((n, m)) if want_grad else None  # d losses[q] / d s[q, :]
        if k > 0:
            x_pos = x.gather(1, idx)  # [N, K] s_qi / tau of the positives
            inv_count = 1.0 / counts.clamp_min(1).to(x.dtype)  # [N]
            block = max(1, max_block_elements // max(k * m, 1))
            for start in range(0, n, block):
                stop = min(start + block, n)
                _block(
                    x[start:stop],
                    x_pos[start:stop],
                    idx[start:stop],
                    None if valid is None else valid[start:stop],
                    inv_count[start:stop],
                    losses[start:stop],
                    None if jac is None else jac[start:stop],
                )
            has_pos = counts > 0
            losses = torch.where(has_pos, 1.0 - losses, 0.0)
            if jac is not None:
                jac.div_(temperature)  # d / d s = (1 / tau) d / d (s / tau)
        ctx.save_for_backward(jac if jac is not None else x.new_zeros(0))
        ctx.sim_dtype = sim.dtype  # type: ignore[attr-defined]
        return losses.to(sim.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (jac,) = ctx.saved_tensors  # type: ignore[attr-defined]
        grad = jac * grad_out.to(jac.dtype)[:, None]
        return grad.to(ctx.sim_dtype), None, None, None  # type: ignore[attr-defined]


def _block(
    xq: Tensor,
    xp: Tensor,
    idx: Tensor,
    valid: Tensor | None,
    inv_count: Tensor,
    ap_out: Tensor,
    jac_out: Tensor | None,
) -> None:
    """AP of a block of ``B`` queries into ``ap_out`` (``[B]``) and, when ``jac_out`` is given,
    ``d (1 - AP_q) / d (s_qj / tau)`` into its rows (``[B, M]``, written, not added).

    ``xq``: ``[B, M]`` scaled similarities; ``xp``/``idx``/``valid``: ``[B, K]`` the positives'
    values, columns and validity; ``inv_count``: ``[B]`` ``1 / K_q``.
    """
    # all references: sig[b, i, j] = G(s_qj - s_qi)
    sig = (xq[:, None, :] - xp[:, :, None]).sigmoid_()  # [B, K, M]
    r_all = sig.sum(dim=2).add_(0.5)  # [B, K] 1 + sum_{j != i}
    # positives only: sig_pos[b, i, j] = G(s_q,idx_j - s_q,idx_i)
    sig_pos = (xp[:, None, :] - xp[:, :, None]).sigmoid_()  # [B, K, K]
    if valid is not None:
        sig_pos.mul_(valid[:, None, :])
    r_pos = sig_pos.sum(dim=2).add_(0.5)  # [B, K]
    ratio = r_pos / r_all
    if valid is not None:
        ratio.mul_(valid)
    ap_out.copy_(ratio.sum(dim=1) * inv_count)
    if jac_out is None:
        return
    # loss = 1 - (1/K) sum_i R_pos_i / R_all_i:
    #   alpha_i = d loss / d R_pos_i = -1 / (K R_all_i)
    #   beta_i  = d loss / d R_all_i = R_pos_i / (K R_all_i^2)
    inv_all = r_all.reciprocal_()
    alpha = (inv_all * -inv_count[:, None]).mul_(1.0 if valid is None else valid)  # [B, K]
    beta = ratio.mul_(inv_all).mul_(inv_count[:, None])  # [B, K] (0 on padding)
    # dR_all_i / d x_j = G'_ij for every column j, and -sum_j G'_ij more at column idx_i
    slope = sig.addcmul_(sig, sig, value=-1.0)  # [B, K, M] G' = G (1 - G), in place
    jac_out.copy_(torch.bmm(beta[:, None, :], slope).squeeze(1))  # [B, M]
    slot = slope.sum(dim=2).mul_(beta).neg_()  # [B, K]
    # the same for R_pos over the positive columns
    slope_pos = sig_pos.addcmul_(sig_pos, sig_pos, value=-1.0)  # [B, K, K] (0 on padding)
    slot.add_(torch.bmm(alpha[:, None, :], slope_pos).squeeze(1))
    slot.sub_(slope_pos.sum(dim=2).mul_(alpha))
    jac_out.scatter_add_(1, idx, slot)
