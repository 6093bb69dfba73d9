"""Log-sum-exp pair losses: Circle, Multi-Similarity, SupCon, NT-Xent, lifted structure
(plain and generalized) and tuplet margin.

Notation. ``mat: Tensor[N, M]`` compares N queries with M references: distances ``d``
(``is_inverted=False``, small = similar) or similarities ``s`` (``is_inverted=True``).
``pos`` / ``neg`` are ``BoolTensor[N, M]`` masks of positive / negative pairs (0/1 tensors are
accepted too). The pair losses (NT-Xent, lifted, tuplet) take their positive pairs as index
tensors ``a1, p`` (one loss term per pair, in that order, duplicates kept) and their negatives as
``negatives: Tensor[N, M]``: a bool mask, or float multiplicities of the negative pairs
``(a2, n)`` of a miner's tuple (see :func:`negative_pair_counts`), so a negative pair listed twice
counts twice, as in pytorch-metric-learning. ``LSE_{j in S}(x_j) = log sum_{j in S} exp(x_j)``
and an empty ``S`` gives ``-inf`` unless a loss says otherwise.

Memory and time. Every loss here needs, per anchor row, a masked log-sum-exp over its positives
and/or negatives. The per-pair losses use their anchor's negative LSE, computed once per row, so
nothing of size (#positive pairs x #negative pairs) is built: all kernels are O(N M) time and
memory. Each kernel computes its gradient w.r.t. ``mat`` in closed form during the forward pass
(one ``N x M`` buffer; see :mod:`._row_lse`). Masking uses ``torch.finfo(dtype).min``; rows with
nothing kept give finite values and zero gradients. float16/bfloat16 are computed in float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._types import Tensor
from ._dtype import accumulation_dtype, upcast
from ._row_lse import PairBackward, masked_row_exp, pair_terms, row_terms, safe_div

__all__ = [
    "angles_in_degrees",
    "circle_loss_terms",
    "generalized_lifted_structure_terms",
    "lifted_structure_terms",
    "multi_similarity_terms",
    "negative_pair_counts",
    "ntxent_terms",
    "supcon_terms",
    "tuplet_margin_terms",
]


def _bool(mask: Tensor) -> Tensor:
    return mask if mask.dtype == torch.bool else mask != 0


def _keep_and_weight(negatives: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
    if negatives.dtype == torch.bool:
        return negatives, None
    return negatives > 0, negatives.to(dtype)


def negative_pair_counts(
    a2: Tensor, n: Tensor, shape: tuple[int, int], *, dtype: torch.dtype = torch.float32
) -> Tensor:
    """How often each negative pair ``(a2[k], n[k])`` occurs: ``Tensor[N, M]`` of ``dtype``.

    Use as ``negatives`` of the per-pair losses when the pairs come from a miner.
    """
    counts = torch.zeros(shape, dtype=accumulation_dtype(dtype), device=a2.device)
    return counts.index_put_((a2, n), counts.new_ones(len(a2)), accumulate=True)


# ----------------------------------------------------------------------------- row losses
def circle_loss_terms(
    mat: Tensor, pos_mask: Tensor, neg_mask: Tensor, *, m: float, gamma: float
) -> Tensor:
    """Circle loss per anchor row.

    Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity Optimization", CVPR 2020,
    https://arxiv.org/abs/2002.10857 (eq. 6 with the margins of sec. 3.3). With ``O_p = 1 + m``,
    ``O_n = -m``, ``D_p = 1 - m``, ``D_n = m`` and the weights ``a_p = [O_p - s_ip]_+``,
    ``a_n = [s_in - O_n]_+`` (treated as constants in the gradient)::

        L_i = softplus( LSE_{p in P(i)}(-gamma a_p (s_ip - D_p))
                        + LSE_{n in N(i)}(gamma a_n (s_in - D_n)) )

    and ``L_i = 0`` for rows without a positive or without a negative.

    Args:
        mat: ``Tensor[N, M]`` cosine similarities.
        pos_mask, neg_mask: ``BoolTensor[N, M]``, disjoint.
        m: relaxation margin. gamma: scale.

    Returns:
        ``Tensor[N]`` in ``mat``'s dtype.
    """
    return row_terms(
        mat, _circle_kernel, pos=_bool(pos_mask), neg=_bool(neg_mask), m=float(m), gamma=gamma
    )


def _circle_kernel(
    s: Tensor, need: bool, *, pos: Tensor, neg: Tensor, m: float, gamma: float
) -> tuple[Tensor, Tensor | None]:
    slope_p = (1 + m - s).clamp_min_(0).mul_(-gamma)  # d logit_p / d s  (alpha_p detached)
    logit_p = (s - (1 - m)).mul_(slope_p)
    slope_n = (s + m).clamp_min_(0).mul_(gamma)
    logit_n = (s - m).mul_(slope_n)
    mp, ep, sp = masked_row_exp(logit_p, pos, inplace=True)
    mn, en, sn = masked_row_exp(logit_n, neg, inplace=True)
    valid = (sp > 0) & (sn > 0)
    total = torch.where(valid, mp + sp.log() + mn + sn.log(), torch.zeros_like(sp))
    losses = torch.where(valid, F.softplus(total), torch.zeros_like(sp))
    if not need:
        return losses, None
    outer = torch.sigmoid(total)
    grad = ep.mul_(slope_p).mul_(safe_div(outer, sp, valid)[:, None])
    grad.addcmul_(en, slope_n.mul_(safe_div(outer, sn, valid)[:, None]))
    return losses, grad


def multi_similarity_terms(
    mat: Tensor,
    pos_mask: Tensor,
    neg_mask: Tensor,
    *,
    alpha: float,
    beta: float,
    base: float,
    is_inverted: bool,
) -> Tensor:
    """Multi-Similarity loss per anchor row.

    Wang et al., "Multi-Similarity Loss with General Pair Weighting for Deep Metric Learning",
    CVPR 2019, https://arxiv.org/abs/1904.06627 (eq. 12). For similarities::

        L_i = 1/alpha log(1 + sum_{p in P(i)} exp(-alpha (s_ip - base)))
            + 1/beta  log(1 + sum_{n in N(i)} exp( beta (s_in - base)))

    (for distances ``d - base`` replaces ``base - s`` and vice versa). An empty set adds 0.

    Args:
        mat: ``Tensor[N, M]``. pos_mask, neg_mask: ``BoolTensor[N, M]``.

    Returns:
        ``Tensor[N]`` in ``mat``'s dtype.
    """
    return row_terms(
        mat,
        _ms_kernel,
        pos=_bool(pos_mask),
        neg=_bool(neg_mask),
        alpha=alpha,
        beta=beta,
        base=base,
        sign=-1.0 if is_inverted else 1.0,
    )


def _log1p_sum(m: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """``log(1 + s e^m)`` and ``e^m / (1 + s e^m)`` (both 0 for an empty row, ``m = -inf``)."""
    lse = m + s.log()
    out = torch.logaddexp(lse, torch.zeros_like(lse))
    return out, torch.exp(m - out)


def _ms_kernel(
    x: Tensor,
    need: bool,
    *,
    pos: Tensor,
    neg: Tensor,
    alpha: float,
    beta: float,
    base: float,
    sign: float,
) -> tuple[Tensor, Tensor | None]:
    # u = margin(mat, base) = sign * (x - base); v = margin(base, mat) = -u
    mp, ep, sp = masked_row_exp(x, pos, scale=sign * alpha)
    mn, en, sn = masked_row_exp(x, neg, scale=-sign * beta)
    pos_loss, pos_coef = _log1p_sum(mp - sign * alpha * base, sp)
    neg_loss, neg_coef = _log1p_sum(mn + sign * beta * base, sn)
    losses = pos_loss / alpha + neg_loss / beta
    if not need:
        return losses, None
    grad = ep.mul_((pos_coef * sign)[:, None])
    grad.addcmul_(en, (neg_coef * -sign)[:, None])
    return losses, grad


def supcon_terms(
    mat: Tensor,
    pos_mask: Tensor,
    neg_mask: Tensor | None,
    *,
    temperature: float,
    is_inverted: bool,
    exclude_diagonal: bool = False,
) -> Tensor:
    """Supervised contrastive loss per anchor row.

    Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020,
    https://arxiv.org/abs/2004.11362 (eq. 2, L^sup_out). With ``x = s / tau`` (``-d / tau`` for
    distances)::

        L_i = -1/|P(i)| sum_{p in P(i)} ( x_ip - LSE_{k in P(i) u N(i)}(x_ik) )

    and ``L_i = 0`` for rows without a positive.

    Args:
        mat: ``Tensor[N, M]``. pos_mask: ``BoolTensor[N, M]``.
        neg_mask: ``BoolTensor[N, M]``, or None for "every pair that is not positive" (then
            ``exclude_diagonal`` leaves ``(i, i)`` out of ``N(i)``): the labels case, with no
            mask work for the denominator.
        temperature: ``tau``.

    Returns:
        ``Tensor[N]`` in ``mat``'s dtype.
    """
    scale = (-1.0 if not is_inverted else 1.0) / temperature
    pos = _bool(pos_mask)
    keep = None if neg_mask is None else pos | _bool(neg_mask)
    return row_terms(
        mat,
        _supcon_kernel,
        pos=pos,
        keep=keep,
        skip_diagonal=neg_mask is None and exclude_diagonal,
        scale=scale,
    )


def _supcon_kernel(
    x: Tensor,
    need: bool,
    *,
    pos: Tensor,
    keep: Tensor | None,
    skip_diagonal: bool,
    scale: float,
) -> tuple[Tensor, Tensor | None]:
    m, e, s = masked_row_exp(x, keep, scale=scale, skip_diagonal=skip_diagonal)
    pos_f = pos.to(x.dtype)
    n_pos = pos_f.sum(dim=1)
    has = n_pos > 0
    mean_pos = safe_div(torch.linalg.vecdot(x, pos_f) * scale, n_pos, has)
    losses = torch.where(has, m + s.log() - mean_pos, torch.zeros_like(s))
    if not need:
        return losses, None
    grad = e.mul_(safe_div(scale, s, has)[:, None])
    grad.sub_(pos_f.mul_(safe_div(scale, n_pos, has)[:, None]))
    return losses, grad


def generalized_lifted_structure_terms(
    mat: Tensor,
    pos_mask: Tensor,
    neg_mask: Tensor,
    *,
    pos_margin: float,
    neg_margin: float,
    is_inverted: bool,
) -> Tensor:
    """Generalized lifted structure loss per anchor row.

    Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person Re-Identification",
    arXiv 2017, https://arxiv.org/abs/1703.07737 (sec. 2, eq. 4). For distances::

        L_i = [ LSE_{p in P(i)}(d_ip - m_pos) + LSE_{n in N(i)}(m_neg - d_in) ]_+

    (``m_pos - s`` and ``s - m_neg`` for similarities). Following pytorch-metric-learning an
    empty set contributes 0 (not -inf), so a row with only negatives still has a loss.

    Returns:
        ``Tensor[N]`` in ``mat``'s dtype.
    """
    return row_terms(
        mat,
        _generalized_lifted_kernel,
        pos=_bool(pos_mask),
        neg=_bool(neg_mask),
        pos_margin=pos_margin,
        neg_margin=neg_margin,
        sign=-1.0 if is_inverted else 1.0,
    )


def _generalized_lifted_kernel(
    x: Tensor,
    need: bool,
    *,
    pos: Tensor,
    neg: Tensor,
    pos_margin: float,
    neg_margin: float,
    sign: float,
) -> tuple[Tensor, Tensor | None]:
    mp, ep, sp = masked_row_exp(x, pos, scale=sign)  # sign * (x - pos_margin)
    mn, en, sn = masked_row_exp(x, neg, scale=-sign)  # -sign * (x - neg_margin)
    has_p, has_n = sp > 0, sn > 0
    zero = torch.zeros_like(sp)
    lse_p = mp - sign * pos_margin + sp.log()
    lse_n = mn + sign * neg_margin + sn.log()
    total = torch.where(has_p, lse_p, zero) + torch.where(has_n, lse_n, zero)
    losses = torch.relu(total)
    if not need:
        return losses, None
    active = total > 0
    grad = ep.mul_(safe_div(sign, sp, active & has_p)[:, None])
    grad.addcmul_(en, safe_div(-sign, sn, active & has_n)[:, None])
    return losses, grad


# ----------------------------------------------------------------------------- pair losses
def ntxent_terms(
    mat: Tensor,
    a1: Tensor,
    p: Tensor,
    negatives: Tensor,
    *,
    temperature: float,
    is_inverted: bool,
) -> Tensor:
    """NT-Xent / InfoNCE loss per positive pair.

    van den Oord et al., "Representation Learning with Contrastive Predictive Coding", arXiv 2018,
    https://arxiv.org/abs/1807.03748 (eq. 4); Chen et al., "A Simple Framework for Contrastive
    Learning of Visual Representations", ICML 2020, https://arxiv.org/abs/2002.05709 (eq. 1).
    With ``x = s / tau`` (``-d / tau`` for distances), for the positive pair ``k = (a, p)``::

        L_k = -log( e^{x_ap} / (e^{x_ap} + sum_{n in N(a)} e^{x_an}) )
            = softplus( LSE_{n in N(a)}(x_an) - x_ap )

    where ``N(a)`` are the anchor's negatives (other positives are not in the denominator);
    ``L_k = 0`` when the anchor has no negative.

    Args:
        mat: ``Tensor[N, M]``. a1, p: ``LongTensor[P]`` positive pairs.
        negatives: ``Tensor[N, M]`` bool mask or float multiplicities.
        temperature: ``tau``.

    Returns:
        ``Tensor[P]`` in ``mat``'s dtype. O(N M + P) time and memory.
    """
    scale = (1.0 if is_inverted else -1.0) / temperature
    return pair_terms(mat, _ntxent_kernel, a1=a1, p=p, negatives=negatives, scale=scale)


def _ntxent_kernel(
    x: Tensor, need: bool, *, a1: Tensor, p: Tensor, negatives: Tensor, scale: float
) -> tuple[Tensor, PairBackward | None]:
    keep, weight = _keep_and_weight(negatives, x.dtype)
    m, e, s = masked_row_exp(x, keep, weight, scale=scale)
    s_a = s[a1]
    excess = m[a1] + s_a.log() - x[a1, p] * scale  # LSE over negatives minus the positive logit
    losses = torch.logaddexp(excess, torch.zeros_like(excess))
    if not need:
        return losses, None
    share = torch.sigmoid(excess)  # 1 - probability of the positive
    row_coef = safe_div(share * scale, s_a, s_a > 0)
    return losses, (e, [(a1, row_coef)], (a1, p, share * -scale))


def lifted_structure_terms(
    mat: Tensor,
    a1: Tensor,
    p: Tensor,
    negatives: Tensor,
    *,
    pos_margin: float,
    neg_margin: float,
    is_inverted: bool,
) -> Tensor:
    """Lifted structure loss per positive pair.

    Oh Song et al., "Deep Metric Learning via Lifted Structured Feature Embedding", CVPR 2016,
    https://arxiv.org/abs/1511.06452 (eq. 4, the smooth upper bound). For the positive pair
    ``(i, j)`` and distances::

        J_ij = LSE_{(k, l) neg, k in {i, j}}(m_neg - d_kl) + (d_ij - m_pos)
        L_ij = [J_ij]_+^2 / 2

    (``s_kl - m_neg`` and ``m_pos - s_ij`` for similarities). As in pytorch-metric-learning the
    negatives are the negative pairs whose *anchor index* equals ``i`` or ``j`` (``j`` indexes the
    reference set, so with a separate reference this compares indices of two sets), and an empty
    set contributes 0.

    Args:
        mat: ``Tensor[N, M]``. a1, p: ``LongTensor[P]``.
        negatives: ``Tensor[N, M]`` bool mask or float multiplicities.

    Returns:
        ``Tensor[P]`` in ``mat``'s dtype. O(N M + P) time and memory.
    """
    return pair_terms(
        mat,
        _lifted_kernel,
        a1=a1,
        p=p,
        negatives=negatives,
        pos_margin=pos_margin,
        neg_margin=neg_margin,
        sign=-1.0 if is_inverted else 1.0,
    )


def _lifted_kernel(
    x: Tensor,
    need: bool,
    *,
    a1: Tensor,
    p: Tensor,
    negatives: Tensor,
    pos_margin: float,
    neg_margin: float,
    sign: float,
) -> tuple[Tensor, PairBackward | None]:
    keep, weight = _keep_and_weight(negatives, x.dtype)
    m, e, s = masked_row_exp(x, keep, weight, scale=-sign)  # y = -sign * (x - neg_margin)
    m = m + sign * neg_margin
    row_lse = m + s.log()  # -inf for anchors without negatives
    n_rows = x.shape[0]
    j_ok = (p < n_rows) & (p != a1)  # p as an anchor index; i == j counts once
    j = p.clamp(max=n_rows - 1)
    lse_i = row_lse[a1]
    lse_j = torch.where(j_ok, row_lse[j], torch.full_like(lse_i, -math.inf))
    lse = torch.logaddexp(lse_i, lse_j)
    has = (s[a1] > 0) | (j_ok & (s[j] > 0))
    lse = torch.where(has, lse, torch.zeros_like(lse))
    hinge = torch.relu(lse + (x[a1, p] - pos_margin) * sign)
    losses = hinge * hinge / 2
    if not need:
        return losses, None
    coef_i = torch.where(has, hinge * torch.exp(m[a1] - lse), torch.zeros_like(lse)) * -sign
    coef_j = torch.where(has & j_ok, hinge * torch.exp(m[j] - lse), torch.zeros_like(lse))
    return losses, (e, [(a1, coef_i), (j, coef_j * -sign)], (a1, p, hinge * sign))


def tuplet_margin_terms(
    mat: Tensor,
    a1: Tensor,
    p: Tensor,
    negatives: Tensor,
    *,
    margin: float,
    scale: float,
) -> Tensor:
    """Tuplet margin loss per positive pair.

    Yu & Tao, "Deep Metric Learning with Tuplet Margin Loss", ICCV 2019,
    https://openaccess.thecvf.com/content_ICCV_2019/html/Yu_Deep_Metric_Learning_With_Tuplet_Margin_Loss_ICCV_2019_paper.html
    (eq. 5). With ``theta_ap = acos(s_ap)`` and the margin ``beta`` in **radians**::

        L_ap = log(1 + sum_{n in N(a)} exp(scale (s_an - cos(theta_ap - beta))))

    ``cos(theta - beta)`` is evaluated as ``s cos(beta) + sqrt(1 - s^2) sin(beta)`` with ``s``
    clamped to [-1, 1] and ``1 - s^2`` kept above ``finfo.eps``, so ``|s| = 1`` (e.g. duplicate
    samples) gives a large finite gradient instead of NaN.

    Args:
        mat: ``Tensor[N, M]`` cosine similarities. a1, p: ``LongTensor[P]``.
        negatives: ``Tensor[N, M]`` bool mask or float multiplicities.
        margin: ``beta`` in radians. scale: ``s``.

    Returns:
        ``Tensor[P]`` in ``mat``'s dtype. O(N M + P) time and memory.
    """
    return pair_terms(
        mat, _tuplet_kernel, a1=a1, p=p, negatives=negatives, margin=margin, scale=scale
    )


def _tuplet_kernel(
    c: Tensor,
    need: bool,
    *,
    a1: Tensor,
    p: Tensor,
    negatives: Tensor,
    margin: float,
    scale: float,
) -> tuple[Tensor, PairBackward | None]:
    keep, weight = _keep_and_weight(negatives, c.dtype)
    m, e, s = masked_row_exp(c, keep, weight, scale=scale)
    cos_ap = c[a1, p].clamp(-1, 1)
    sin_ap = ((1 - cos_ap) * (1 + cos_ap)).clamp_min(torch.finfo(c.dtype).eps).sqrt()
    cos_b, sin_b = math.cos(margin), math.sin(margin)
    shifted = cos_ap * cos_b + sin_ap * sin_b  # cos(theta_ap - beta)
    s_a = s[a1]
    excess = m[a1] + s_a.log() - scale * shifted
    losses = torch.logaddexp(excess, torch.zeros_like(excess))
    if not need:
        return losses, None
    share = torch.sigmoid(excess)
    row_coef = safe_div(share * scale, s_a, s_a > 0)
    d_shifted = cos_b - cos_ap / sin_ap * sin_b
    return losses, (e, [(a1, row_coef)], (a1, p, share * -scale * d_shifted))


def angles_in_degrees(cosines: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean angle (degrees) of ``cosines`` (clamped to [-1, 1]), optionally weighted."""
    angles = torch.rad2deg(torch.acos(upcast(cosines.detach()).clamp(-1, 1)))
    if weight is None:
        return angles.mean()
    return (angles * upcast(weight)).sum() / upcast(weight).sum()
