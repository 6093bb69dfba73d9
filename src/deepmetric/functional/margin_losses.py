"""Margin loss: positives inside ``beta - margin``, negatives beyond ``beta + margin``.

Wu, Manmatha, Smola, Krähenbühl, "Sampling Matters in Deep Embedding Learning", ICCV 2017,
https://arxiv.org/abs/1706.07567 (eq. 3). Per triplet ``(a, p, n)`` and boundary ``beta``
(one value, or one per class indexed by the anchor's label)::

    pos = [d_ap - beta + margin]_+        neg = [beta - d_an + margin]_+        (distances)
    pos = [beta - s_ap + margin]_+        neg = [s_an - beta + margin]_+        (similarities)

The terms of a triplet separate into an ``(a, p)`` part and an ``(a, n)`` part. Over *all*
triplets, ``(a, p)`` occurs once per negative of ``a`` and ``(a, n)`` once per positive, so

    sum_triplets (pos + neg) = sum_a [ n_neg(a) sum_p pos_ap + n_pos(a) sum_n neg_an ]
    #(pos > 0) + #(neg > 0)  = sum_a [ n_neg(a) #_p(pos_ap > 0) + n_pos(a) #_n(neg_an > 0) ]

which :func:`margin_all_triplets_sums` evaluates in O(N M) without building a triplet.
"""

from __future__ import annotations

import torch

from .._types import Tensor
from ._dtype import upcast

__all__ = ["margin_all_triplets_sums", "margin_pair_matrix", "margin_triplet_terms"]


def margin_triplet_terms(
    d_ap: Tensor, d_an: Tensor, beta: Tensor, *, margin: float, is_inverted: bool
) -> tuple[Tensor, Tensor]:
    """``(pos, neg)`` terms of explicit triplets.

    Args:
        d_ap, d_an: ``Tensor[T]`` anchor-positive / anchor-negative distances (similarities when
            ``is_inverted``).
        beta: ``Tensor[T]`` (each triplet's boundary) or ``Tensor[1]``.
        margin: half-width of the band around ``beta``.

    Returns:
        ``Tensor[T]`` each, in the inputs' dtype.
    """
    if is_inverted:
        return torch.relu(beta - d_ap + margin), torch.relu(d_an - beta + margin)
    return torch.relu(d_ap - beta + margin), torch.relu(beta - d_an + margin)


def margin_pair_matrix(
    mat: Tensor, pos: Tensor, neg: Tensor, beta_rows: Tensor, *, margin: float, is_inverted: bool
) -> tuple[Tensor, Tensor]:
    """Per-pair terms: ``pos_ap`` on the positive pairs, ``neg_an`` on the negative pairs.

    Args:
        mat: ``Tensor[N, M]`` distances (similarities when ``is_inverted``).
        pos, neg: ``BoolTensor[N, M]`` positive / negative pairs.
        beta_rows: ``Tensor[N, 1]`` each anchor's boundary, or ``Tensor[1]``.

    Returns:
        ``(pos_terms, neg_terms)``, ``Tensor[N, M]`` each, zero off their pairs.
    """
    p_terms, n_terms = margin_triplet_terms(
        mat, mat, beta_rows, margin=margin, is_inverted=is_inverted
    )
    return torch.where(pos, p_terms, 0), torch.where(neg, n_terms, 0)


def margin_all_triplets_sums(
    mat: Tensor, pos: Tensor, neg: Tensor, beta_rows: Tensor, *, margin: float, is_inverted: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Closed-form sums over every triplet (see the module docstring).

    Args:
        mat, pos, neg, beta_rows, margin, is_inverted: as in :func:`margin_pair_matrix`.

    Returns:
        ``per_anchor: Tensor[N]``, each anchor's ``sum (pos + neg)`` over its triplets (float32
        for half inputs, else the input dtype; differentiable w.r.t. ``mat`` and ``beta_rows``);
        ``divisor``: 0-dim int64, ``#(pos > 0) + #(neg > 0)`` over all triplets;
        ``triplets_per_anchor: LongTensor[N]``, ``n_pos(a) * n_neg(a)``.
    """
    work = upcast(mat)
    p_terms, n_terms = margin_pair_matrix(
        work, pos, neg, upcast(beta_rows), margin=margin, is_inverted=is_inverted
    )
    n_pos = pos.sum(1)  # [N]
    n_neg = neg.sum(1)  # [N]
    per_anchor = p_terms.sum(1) * n_neg.to(work.dtype) + n_terms.sum(1) * n_pos.to(work.dtype)
    with torch.no_grad():
        active = (p_terms > 0).sum(1) * n_neg + (n_terms > 0).sum(1) * n_pos  # [N]
    return per_anchor, active.sum(), n_pos * n_neg
