"""Pairs for the log-sum-exp pair losses, as masks or as positive pairs plus negative weights.

These follow ``GenericPairLoss``'s rules (labels or a miner's tuple; triplets ``(a, p, n)`` become
pairs ``(a, p, a, n)``; zero loss when every one of ``a1, p, a2, n`` holds at most one pair) but
skip the round trip labels -> index lists -> masks when no tuple is given: the masks come straight
from the labels, O(N M).
"""

from __future__ import annotations

from typing import Any, cast

import torch

from .. import _validation as V
from .._types import IndicesTuple, Tensor
from ..functional import tuples as T
from ..functional.lse_pair_losses import negative_pair_counts


def check_reference_labels(
    owner: str,
    embeddings: Tensor,
    ref_emb: Tensor,
    ref_labels: Tensor | None,
    indices_tuple: IndicesTuple | None,
) -> None:
    """With a separate ``ref_emb`` and no tuple, pairs need ``ref_labels``."""
    if indices_tuple is None and ref_emb is not embeddings and ref_labels is None:
        V.fail(
            owner,
            "`ref_labels` together with `ref_emb` (or an `indices_tuple`)",
            "ref_emb without ref_labels",
        )


def _too_few(counts: list[int]) -> bool:
    return all(c <= 1 for c in counts)


def pair_masks(
    owner: str,
    labels: Tensor | None,
    ref_labels: Tensor | None,
    indices_tuple: IndicesTuple | None,
    shape: tuple[int, int],
    device: torch.device,
) -> tuple[Tensor, Tensor] | None:
    """``(pos, neg)`` as ``BoolTensor[N, M]``, or None when the zero-loss rule applies.

    A pair given as both positive and negative is refused (it has no meaning for these losses).
    """
    if indices_tuple is None:
        # the loss base guarantees labels when there is no tuple
        pos, neg = T.get_matches_and_diffs(cast(Tensor, labels), ref_labels)
        counts = torch.stack([pos.sum(), neg.sum()]).tolist()
        return None if _too_few(counts) else (pos, neg)
    a1, p, a2, n = T.convert_to_pairs(indices_tuple, labels, ref_labels)
    if _too_few([len(a1), len(p), len(a2), len(n)]):
        return None
    pos = torch.zeros(shape, dtype=torch.bool, device=device)
    neg = torch.zeros(shape, dtype=torch.bool, device=device)
    pos[a1.to(device), p.to(device)] = True
    neg[a2.to(device), n.to(device)] = True
    if bool((pos & neg).any()):
        i, j = (int(v) for v in torch.nonzero(pos & neg)[0])
        V.fail(
            owner,
            "each pair of `indices_tuple` to be either positive or negative",
            f"({i}, {j}) in both",
        )
    return pos, neg


def positive_pairs_and_negatives(
    labels: Tensor | None,
    ref_labels: Tensor | None,
    indices_tuple: IndicesTuple | None,
    shape: tuple[int, int],
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor, Tensor, int] | None:
    """``(a1, p, negatives, num_negative_pairs)``, or None when the zero-loss rule applies.

    ``negatives`` is the negative mask (labels) or the multiplicity of each negative pair of the
    tuple, ``Tensor[N, M]``; ``a1, p`` are the positive pairs in row-major (labels) or tuple order.
    """
    if indices_tuple is None:
        # the loss base guarantees labels when there is no tuple
        pos, neg = T.get_matches_and_diffs(cast(Tensor, labels), ref_labels)
        a1, p = torch.where(pos)
        num_neg = int(neg.sum())
        if _too_few([len(a1), num_neg]):
            return None
        return a1, p, neg, num_neg
    a1, p, a2, n = T.convert_to_pairs(indices_tuple, labels, ref_labels)
    if _too_few([len(a1), len(p), len(a2), len(n)]):
        return None
    a1, p, a2, n = (t.to(device) for t in (a1, p, a2, n))
    return a1, p, negative_pair_counts(a2, n, shape, dtype=dtype), len(a2)


def distance_matrix(loss: Any, embeddings: Tensor, ref_emb: Tensor) -> Tensor:
    """``loss.distance`` between the queries and the reference set (``Tensor[N, M]``)."""
    mat: Tensor = loss.distance(embeddings, None if ref_emb is embeddings else ref_emb)
    return mat


def mat_and_masks(
    loss: Any,
    embeddings: Tensor,
    labels: Tensor | None,
    indices_tuple: IndicesTuple | None,
    ref_emb: Tensor,
    ref_labels: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor] | None:
    """``(mat, pos, neg)`` for a mask-based pair loss, or None for PML's zero-loss rule."""
    owner = type(loss).__name__
    check_reference_labels(owner, embeddings, ref_emb, ref_labels, indices_tuple)
    shape = (embeddings.shape[0], ref_emb.shape[0])
    masks = pair_masks(owner, labels, ref_labels, indices_tuple, shape, embeddings.device)
    if masks is None:
        return None
    return distance_matrix(loss, embeddings, ref_emb), masks[0], masks[1]


def mat_and_pairs(
    loss: Any,
    embeddings: Tensor,
    labels: Tensor | None,
    indices_tuple: IndicesTuple | None,
    ref_emb: Tensor,
    ref_labels: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """``(mat, a1, p, negatives)`` for a per-positive-pair loss, or None when the loss is zero:
    PML's GenericPairLoss rule, or no positive pair, or no negative pair."""
    owner = type(loss).__name__
    check_reference_labels(owner, embeddings, ref_emb, ref_labels, indices_tuple)
    shape = (embeddings.shape[0], ref_emb.shape[0])
    pairs = positive_pairs_and_negatives(
        labels, ref_labels, indices_tuple, shape, embeddings.device, embeddings.dtype
    )
    if pairs is None or len(pairs[0]) == 0 or pairs[3] == 0:
        return None
    a1, p, negatives, _ = pairs
    return distance_matrix(loss, embeddings, ref_emb), a1, p, negatives
