"""Gather helpers for ``torch.distributed``: embeddings, labels and masks from every rank.

Convention (as in PML 2.x): after a gather the local batch comes **first**, followed by the
other ranks' batches in rank order. The local rows keep their autograd graph; the other ranks'
rows are constants here (their gradients are computed on their own ranks). Batches may differ
in size between ranks (they are padded for the collective and trimmed afterwards).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from .. import _validation as V
from .._types import IndicesTuple, Tensor
from ..functional import tuples as T
from .runtime import is_distributed, world_size

__all__ = [
    "all_gather",
    "all_gather_embeddings_and_labels",
    "gather",
    "gather_emb_and_ref",
    "gather_enqueue_mask",
    "gather_rows_to_main",
    "get_indices_tuple",
    "is_distributed",
    "select_ref_or_regular",
    "world_size",
]

_OWNER = "deepmetric.distributed"


def _padded(x: Tensor) -> tuple[Tensor, list[int]]:
    """``x`` detached and zero-padded to the largest row count of any rank (bool sent as uint8,
    which every backend supports), and every rank's true row count."""
    local = x.detach().contiguous()
    # Sizes first, so ranks with different batch sizes can still use one fixed-shape collective.
    size = torch.tensor([local.shape[0]], dtype=torch.long, device=local.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]  # one small sync per gather, not per sample
    pad_to = max(counts)
    if local.shape[0] < pad_to:
        local = torch.cat([local, local.new_zeros((pad_to - local.shape[0], *local.shape[1:]))])
    return (local.to(torch.uint8) if local.dtype == torch.bool else local), counts


def _unpad(buffers: list[Tensor], counts: list[int], like: Tensor, skip: int = -1) -> Tensor:
    """The true rows of each rank's buffer (except rank ``skip``), concatenated, in ``like``'s
    dtype."""
    rows = [buf[:n] for q, (buf, n) in enumerate(zip(buffers, counts, strict=True)) if q != skip]
    out = torch.cat(rows)
    return out.to(torch.bool) if like.dtype == torch.bool else out


def _gather_others(x: Tensor) -> Tensor:
    """Rows of ``x`` from every other rank, concatenated in rank order (no gradient).

    ``x``: ``Tensor[n_r, ...]``; returns ``Tensor[sum_{q != r} n_q, ...]``.
    """
    send, counts = _padded(x)
    buffers = [torch.empty_like(send) for _ in counts]
    dist.all_gather(buffers, send)
    return _unpad(buffers, counts, x, skip=dist.get_rank())


def all_gather(x: Tensor) -> Tensor | None:
    """The other ranks' ``x`` concatenated in rank order, or ``None`` when there are no others.

    PML-compatible: the local rows are **not** included (see :func:`gather`).
    """
    if world_size() <= 1:
        return None
    return _gather_others(x)


def all_gather_embeddings_and_labels(
    emb: Tensor, labels: Tensor | None
) -> tuple[Tensor | None, Tensor | None]:
    """The other ranks' embeddings and labels (``(None, None)`` when there are no others)."""
    if world_size() <= 1:
        return None, None
    others_emb = _gather_others(emb)
    others_labels = None if labels is None else _gather_others(labels.to(emb.device))
    return others_emb, others_labels


def gather(emb: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(all_emb, all_labels, labels)``: the local batch first (keeping its gradient), then
    the other ranks' rows. Without other ranks the inputs come back unchanged."""
    others_emb, others_labels = all_gather_embeddings_and_labels(emb, labels)
    if others_emb is None:
        return emb, labels, labels
    all_emb = torch.cat([emb, others_emb.to(emb.dtype)])
    all_labels = None
    if labels is not None and others_labels is not None:
        labels = labels.to(emb.device)
        all_labels = torch.cat([labels, others_labels.to(labels.dtype)])
    return all_emb, all_labels, labels


def gather_emb_and_ref(
    emb: Tensor,
    labels: Tensor | None,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """``(all_emb, all_labels, all_ref_emb, all_ref_labels, labels)``; the ref entries are
    ``None`` when ``ref_emb`` is."""
    all_emb, all_labels, labels = gather(emb, labels)
    all_ref_emb = all_ref_labels = None
    if ref_emb is not None:
        all_ref_emb, all_ref_labels, _ = gather(ref_emb, ref_labels)
    return all_emb, all_labels, all_ref_emb, all_ref_labels, labels


def gather_enqueue_mask(enqueue_mask: Tensor | None, device: torch.device) -> Tensor | None:
    """The ``CrossBatchMemory`` enqueue mask of every rank, local first (bool)."""
    if enqueue_mask is None:
        return None
    enqueue_mask = enqueue_mask.to(device=device, dtype=torch.bool)
    others = all_gather(enqueue_mask)
    return enqueue_mask if others is None else torch.cat([enqueue_mask, others])


def select_ref_or_regular(regular: Any, ref: Any) -> Any:
    """``regular`` when ``ref`` is ``None``, else ``ref``."""
    return regular if ref is None else ref


def get_indices_tuple(
    labels: Tensor,
    ref_labels: Tensor,
    embeddings: Tensor | None = None,
    ref_emb: Tensor | None = None,
    miner: Any = None,
) -> IndicesTuple:
    """Index tuple of local anchors (``labels``) against gathered references (``ref_labels``,
    local batch first): the miner's output if ``miner`` is given, else every pair; then each
    anchor paired with its own row ``i`` of the references is dropped as a positive."""
    if miner is not None:
        if embeddings is None or ref_emb is None:
            V.fail(_OWNER, "`embeddings` and `ref_emb` together with `miner`", "None")
        indices_tuple = miner(embeddings, labels, ref_emb, ref_labels)
    else:
        indices_tuple = T.get_all_pairs_indices(labels, ref_labels)
    curr_batch_idx = torch.arange(len(labels), device=labels.device)
    return T.remove_self_comparisons(indices_tuple, curr_batch_idx, len(ref_labels))


def gather_rows_to_main(x: Tensor) -> Tensor | None:
    """Every rank's rows of ``x``, concatenated in rank order, on rank 0; ``None`` elsewhere.

    ``x``: ``Tensor[n_r, ...]`` (``n_r`` may differ between ranks, and may be 0); rank 0 gets
    ``Tensor[sum_r n_r, ...]`` without gradient. Unlike :func:`all_gather`, only rank 0 holds the
    result, so evaluating a large split costs the other ranks no extra memory. Without other
    ranks, ``x`` comes back detached.
    """
    if world_size() <= 1:
        return x.detach()
    send, counts = _padded(x)
    buffers = [torch.empty_like(send) for _ in counts] if dist.get_rank() == 0 else None
    dist.gather(send, buffers, dst=0)
    return None if buffers is None else _unpad(buffers, counts, x)
