"""Histogram loss: the probability that a negative pair is more similar than a positive pair.

Ustinova & Lempitsky, "Learning Deep Embeddings with Histogram Loss", NeurIPS 2016,
https://arxiv.org/abs/1611.00822 (sec. 2, eq. 1-4).

Similarities in ``[-1, 1]`` are soft-assigned to the ``R = round(1 + 2 / delta)`` nodes
``t_r = -1 + r delta`` by linear interpolation between the two neighbouring nodes (eq. 2), giving
the densities ``p+`` (positive pairs) and ``p-`` (negative pairs), each normalised by its pair
count. With ``Phi+_r = sum_{k <= r} p+_k`` (eq. 3)::

    L = sum_r p-_r Phi+_r                                                    (eq. 4)

Pairs. Like pytorch-metric-learning the pairs are those of the triplets ``(a, p, n)`` a batch (or a
miner's tuple) yields: every ``(a, p)`` and ``(a, n)`` that occurs in some triplet, counted once
as an *unordered* pair ``{a, p}``. :func:`triplet_pair_masks` finds them from boolean ``N x N``
masks in O(N^2) time and memory, without building the triplets; :func:`unordered_pairs` folds a
mask onto its upper triangle.
"""

from __future__ import annotations

import torch

from .._types import IndicesTuple, Tensor
from ._dtype import upcast

__all__ = [
    "histogram_loss",
    "num_histogram_nodes",
    "soft_histogram",
    "triplet_pair_masks",
    "unordered_pairs",
]


def num_histogram_nodes(delta: float) -> int:
    """``round(1 + 2 / delta)``: the nodes covering ``[-1, 1]`` with spacing ``delta``."""
    return round(1 + 2 / delta)


def triplet_pair_masks(
    n: int,
    labels: Tensor | None = None,
    indices_tuple: IndicesTuple | None = None,
) -> tuple[Tensor, Tensor, bool]:
    """The anchor-positive and anchor-negative pairs of all triplets, as ``N x N`` masks.

    Triplets come from ``indices_tuple`` when given -- ``(a, p, n)`` as is; pairs
    ``(a1, p, a2, n)`` combine a positive and a negative pair with the same anchor -- otherwise
    from ``labels`` (every ``(a, p, n)`` with ``y_a = y_p != y_n``, ``a != p``).

    Args:
        n: batch size N.
        labels: ``Tensor[N]`` (used when ``indices_tuple`` is None).
        indices_tuple: a triplet or pair tuple indexing the batch.

    Returns:
        ``(ap, an, any_triplet)``: ``BoolTensor[N, N]`` with ``ap[a, p]`` iff ``(a, p, *)`` is a
        triplet and ``an[a, m]`` iff ``(a, *, m)`` is one; ``any_triplet`` says whether there is
        at least one triplet.
    """
    if indices_tuple is None:
        if labels is None:
            raise ValueError(
                "triplet_pair_masks: expected `labels` or `indices_tuple`, got neither."
            )
        same = labels[:, None] == labels[None, :]
        diff = ~same
        same.fill_diagonal_(False)
        anchors = same.any(dim=1) & diff.any(dim=1)  # [N] anchors of at least one triplet
        return same & anchors[:, None], diff & anchors[:, None], bool(anchors.any())
    device = indices_tuple[0].device
    ap = torch.zeros((n, n), dtype=torch.bool, device=device)
    an = torch.zeros((n, n), dtype=torch.bool, device=device)
    if len(indices_tuple) == 3:
        a, p, neg = indices_tuple
        ap[a, p] = True
        an[a, neg] = True
        return ap, an, a.numel() > 0
    a1, p, a2, neg = indices_tuple
    # a positive pair belongs to a triplet iff its anchor also anchors a negative pair (and back)
    has_neg = torch.zeros(n, dtype=torch.bool, device=device)
    has_neg[a2] = True
    has_pos = torch.zeros(n, dtype=torch.bool, device=device)
    has_pos[a1] = True
    keep_p, keep_n = has_neg[a1], has_pos[a2]
    ap[a1[keep_p], p[keep_p]] = True
    an[a2[keep_n], neg[keep_n]] = True
    return ap, an, bool(keep_p.any())


def unordered_pairs(mask: Tensor) -> Tensor:
    """Each pair ``{i, j}`` of ``mask`` (either order) once, as ``(min, max)``: the upper
    triangle (diagonal included) of ``mask | mask.T``. ``BoolTensor[N, N]`` in and out."""
    return torch.triu(mask | mask.T)


def soft_histogram(values: Tensor, *, delta: float) -> Tensor:
    """Density of ``values`` over the nodes ``-1 + r delta`` by linear interpolation (eq. 2).

    A value between nodes ``r`` and ``r + 1`` gives ``(v + 1 - r delta) / delta`` to node ``r + 1``
    and the rest to node ``r``; the result is divided by ``len(values)``. Values outside
    ``[-1, 1]`` use the first or last interval (extrapolated).

    Args:
        values: ``Tensor[P]`` similarities, ``P >= 1``.
        delta: node spacing, ``0 < delta <= 2``.

    Returns:
        ``Tensor[R]`` (``R = num_histogram_nodes(delta)``) in the compute dtype (float32 for
        half inputs); differentiable w.r.t. ``values``.
    """
    v = upcast(values)
    nodes = num_histogram_nodes(delta)
    lower = torch.floor((v.detach() + 1) / delta).clamp_(0, nodes - 2)
    upper_share = (v + 1 - lower * delta) / delta
    lower_share = ((lower + 1) * delta - 1 - v) / delta
    index = lower.long()
    density = v.new_zeros(nodes).scatter_add(0, index + 1, upper_share)
    density = density.scatter_add(0, index, lower_share)
    return density / v.numel()


def histogram_loss(pos_values: Tensor, neg_values: Tensor, *, delta: float) -> Tensor:
    """``L = sum_r p-_r Phi+_r`` (eq. 4) from positive- and negative-pair similarities.

    Args:
        pos_values: ``Tensor[P]`` similarities of positive pairs (``P >= 1``).
        neg_values: ``Tensor[Q]`` similarities of negative pairs (``Q >= 1``).
        delta: node spacing, ``0 < delta <= 2``.

    Returns:
        0-dim tensor in ``pos_values``' dtype.
    """
    p_pos = soft_histogram(pos_values, delta=delta)
    p_neg = soft_histogram(neg_values, delta=delta)
    return (p_neg * torch.cumsum(p_pos, dim=0)).sum().to(pos_values.dtype)
