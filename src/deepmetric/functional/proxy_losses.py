"""Proxy-based loss kernels: Proxy Anchor terms and SoftTriple's relaxed class similarity.

Notation: ``sim: Tensor[N, C]`` compares every embedding with every proxy (class vector); it
holds similarities (``is_inverted=True``, e.g. cosine) or distances. ``labels: LongTensor[N]``
in ``[0, C)``.

Memory: ``O(N * C)``. Proxy Anchor never builds the ``N x C`` one-hot masks: the positive term
only needs the ``N`` target entries (each sample is positive for exactly one proxy), and the
negative term masks the target entries in place. float16/bfloat16 are computed in float32.
"""

from __future__ import annotations

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from .._types import Tensor
from ._dtype import upcast

__all__ = [
    "proxy_anchor_terms",
    "soft_triple_class_similarity",
    "soft_triple_logits",
]


def proxy_anchor_terms(
    sim: Tensor,
    labels: Tensor,
    *,
    margin: float,
    alpha: float,
    is_inverted: bool = True,
    log_weights: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-proxy positive and negative terms of the Proxy Anchor loss.

    Kim, Kim, Cho, Kwak, "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020,
    https://arxiv.org/abs/2003.13911 (eq. 4). For similarities ``s`` and proxy ``c``::

        pos_c = log(1 + sum_{x: y_x = c} exp(-alpha (s_xc - margin) + lw_x))
        neg_c = log(1 + sum_{x: y_x != c} exp( alpha (s_xc + margin) + lw_x))

    For distances ``d`` the signs flip: ``alpha (d_xc - margin)`` and ``alpha (-margin - d_xc)``.
    ``lw`` are additive log-weights (a miner's per-sample weight minus one); a proxy with no
    sample in a sum gets 0.

    Args:
        sim: ``Tensor[N, C]``.
        labels: ``LongTensor[N]``.
        margin: ``delta``.
        alpha: the scale.
        is_inverted: ``sim`` holds similarities.
        log_weights: ``Tensor[N]`` added inside every exponent (None: 0).

    Returns:
        ``(pos, neg)``, each ``Tensor[C]`` in the upcast dtype of ``sim``. Reduce ``pos`` over the
        proxies that have a positive and ``neg`` over all proxies.
    """
    work = upcast(sim)
    lw = (
        work.new_zeros(work.shape[0])
        if log_weights is None
        else log_weights.to(device=work.device, dtype=work.dtype)
    )
    sign = 1.0 if is_inverted else -1.0
    return _ProxyAnchorTerms.apply(work, labels, lw, float(alpha), float(margin), sign)


class _ProxyAnchorTerms(torch.autograd.Function):
    """Both Proxy Anchor sums with a closed-form backward.

    With ``k = alpha * sign`` (``sign = -1`` for distances) the exponents are
    ``k (margin - s_xc) + lw_x`` (positives) and ``k (s_xc + margin) + lw_x`` (negatives); each
    term is ``log(1 + sum exp(.))`` over its set. The forward keeps one ``N x C`` buffer (the
    shifted negative exponentials) and the backward is one pass over it, where autograd through
    the masked log-sum-exp keeps several ``N x C`` tensors and makes about a dozen passes.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        sim: Tensor,
        labels: Tensor,
        lw: Tensor,
        alpha: float,
        margin: float,
        sign: float,
    ) -> tuple[Tensor, Tensor]:
        k = alpha * sign
        num_classes = sim.shape[1]
        col = labels[:, None]
        # positives: each sample is positive for its own proxy only -> N terms
        pos_exp = k * (margin - sim.gather(1, col).squeeze(1)) + lw  # [N]
        pos_shift = sim.new_zeros(num_classes).scatter_reduce(
            0, labels, pos_exp, "amax", include_self=True
        )  # [C], >= 0 covers the "1 +"
        pos_e = torch.exp(pos_exp - pos_shift[labels])  # [N]
        pos_den = torch.exp(-pos_shift).index_add_(0, labels, pos_e)  # [C]
        pos = pos_shift + torch.log(pos_den)
        # negatives: every entry but the targets
        neg_e = torch.add((k * margin + lw)[:, None], sim, alpha=k)  # [N, C] exponents
        neg_e.scatter_(1, col, torch.finfo(sim.dtype).min)
        neg_shift = neg_e.amax(dim=0).clamp_min_(0)  # [C]
        neg_e.sub_(neg_shift).exp_()
        neg_den = torch.exp(-neg_shift).add_(neg_e.sum(dim=0))  # [C]
        neg = neg_shift + torch.log(neg_den)
        ctx.save_for_backward(labels, pos_e, pos_den, neg_e, neg_den)
        ctx.k = k  # type: ignore[attr-defined]
        return pos, neg

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: FunctionCtx, grad_pos: Tensor, grad_neg: Tensor
    ) -> tuple[Tensor | None, ...]:
        labels, pos_e, pos_den, neg_e, neg_den = ctx.saved_tensors  # type: ignore[attr-defined]
        k = ctx.k  # type: ignore[attr-defined]
        dtype = neg_e.dtype
        # d neg_c / d s_xc = k exp(z_xc) / (1 + sum) ; the masked targets have exp = 0
        grad = neg_e * (grad_neg.to(dtype) * k / neg_den)[None, :]
        # d pos_c / d s_{x, c} = -k exp(z_x) / (1 + sum), only at x's own proxy
        coef = (grad_pos.to(dtype) / pos_den)[labels]
        grad.scatter_add_(1, labels[:, None], (-k * coef * pos_e)[:, None])
        return grad, None, None, None, None, None


def soft_triple_class_similarity(
    sim: Tensor, *, centers_per_class: int, inverse_gamma: float
) -> Tensor:
    """SoftTriple's relaxed similarity to each class, ``Tensor[N, C * K]`` -> ``Tensor[N, C]``.

    Qian et al., "SoftTriple Loss: Deep Metric Learning Without Triplet Sampling", ICCV 2019,
    https://arxiv.org/abs/1909.05235 (eq. 9)::

        S_ic = sum_k softmax_k(s_ick / gamma) * s_ick

    Args:
        sim: ``Tensor[N, C * K]`` similarities to every center (column ``c * K + k``).
        centers_per_class: ``K``.
        inverse_gamma: ``1 / gamma`` (gamma is the paper's temperature, 0.1 by default).
    """
    work = upcast(sim)
    per_class = work.view(work.shape[0], -1, centers_per_class)  # [N, C, K]
    prob = torch.softmax(per_class * inverse_gamma, dim=2)
    return (prob * per_class).sum(dim=2).to(sim.dtype)


def soft_triple_logits(class_sim: Tensor, labels: Tensor, *, la: float, margin: float) -> Tensor:
    """``la * (S_ic - margin * 1[c = y_i])`` (SoftTriple eq. 10) -> ``Tensor[N, C]``."""
    work = upcast(class_sim)
    offset = work.new_full((work.shape[0], 1), -margin)
    return la * work.scatter_add(1, labels[:, None], offset)
