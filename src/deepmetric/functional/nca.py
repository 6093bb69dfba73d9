"""Neighbourhood Components Analysis: the NCA and ProxyNCA loss terms.

Goldberger, Roweis, Hinton, Salakhutdinov, "Neighbourhood Components Analysis", NeurIPS 2004,
https://www.cs.toronto.edu/~hinton/absps/nca.pdf (eq. 1 and the log objective of sec. 2);
Movshovitz-Attias et al., "No Fuss Distance Metric Learning using Proxies", ICCV 2017,
https://arxiv.org/abs/1703.07464 (eq. 4: the references are class proxies).

With ``z_ij = scale * s_ij`` (``-scale * d_ij`` for distances) and the softmax over the references
(the query itself excluded when the references are the queries)::

    p_i = sum_{j: y_j = y_i} softmax_j(z_i)        L_i = -log p_i
        = LSE_{j: y_j = y_i}(z_ij) - LSE_j(z_ij)

computed as that difference of log-sum-exps, which stays exact where ``p_i`` underflows.
O(N M) time and memory; the gradient ``softmax_all - softmax_same`` is formed in the forward pass.
"""

from __future__ import annotations

import torch

from .._types import Tensor
from ._row_lse import masked_row_exp, row_terms, safe_div

__all__ = ["nca_terms"]


def nca_terms(
    mat: Tensor,
    same: Tensor,
    *,
    softmax_scale: float,
    is_inverted: bool,
    exclude_diagonal: bool = False,
) -> tuple[Tensor, Tensor]:
    """NCA loss ``-log p_i`` per query row.

    Args:
        mat: ``Tensor[N, M]`` distances, or similarities when ``is_inverted``.
        same: ``BoolTensor[N, M]``, True where query i and reference j share a label.
        softmax_scale: multiplies the logits.
        is_inverted: ``mat`` holds similarities.
        exclude_diagonal: the references are the queries (``N == M``): leave ``j = i`` out of
            both sums.

    Returns:
        ``(losses Tensor[N], has_positive BoolTensor[N])``: ``losses`` in ``mat``'s dtype, 0 for
        rows without a same-label reference (those rows have no defined loss).
    """
    same = same.clone() if same.dtype == torch.bool else same != 0
    if exclude_diagonal:
        same.fill_diagonal_(False)
    has = same.any(dim=1)
    scale = softmax_scale * (1.0 if is_inverted else -1.0)
    losses = row_terms(
        mat, _nca_kernel, same=same, skip_diagonal=exclude_diagonal, has=has, scale=scale
    )
    return losses, has


#: Below this, a row's same-label mass (relative to its largest term) is recomputed exactly.
_FAST_PATH_MIN = 1e-12


def _nca_kernel(
    x: Tensor, need: bool, *, same: Tensor, skip_diagonal: bool, has: Tensor, scale: float
) -> tuple[Tensor, Tensor | None]:
    m_all, e_all, s_all = masked_row_exp(x, None, scale=scale, skip_diagonal=skip_diagonal)
    e_same = torch.where(same, e_all, 0.0)
    mass = e_same.sum(dim=1)  # sum over same-label j of exp(z_ij - max_j z_ij)
    if bool((has & (mass < _FAST_PATH_MIN)).any()):
        # the positives of some row lie far below its maximum (p_i would underflow): take
        # their log-sum-exp around their own maximum instead
        m_same, e_same, mass = masked_row_exp(x, same, scale=scale)
        log_p = m_same + mass.log() - m_all - s_all.log()
    else:
        log_p = mass.log() - s_all.log()
    losses = -torch.where(has, log_p, torch.zeros_like(log_p))
    if not need:
        return losses, None
    grad = e_all.mul_(safe_div(scale, s_all, has)[:, None])
    grad.sub_(e_same.mul_(safe_div(scale, mass, has)[:, None]))
    return losses, grad
