"""``CrossBatchMemory``: compare each batch against a queue of past embeddings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import _validation as V
from .._types import IndicesTuple, PairMasks, Tensor
from ..functional import tuples as T
from .base_loss_wrapper import BaseLossWrapper

_OWNER = "CrossBatchMemory"


class CrossBatchMemory(BaseLossWrapper):
    """Cross-batch memory: the loss compares the batch with a queue of recent embeddings.

    Wang, Zhang, Huang, Scott, "Cross-Batch Memory for Embedding Learning", CVPR 2020,
    https://arxiv.org/abs/1912.06798.

    Each call writes the (detached) batch into a ring buffer of ``memory_size`` slots, then calls
    ``loss(batch, labels, indices_tuple, memory, memory_labels)``: the memory, the current batch
    included, is the loss's ``ref_emb``. Without a miner the tuple holds every (batch, memory)
    pair except each sample paired with its own copy in memory (negatives are never removed);
    with ``miner``, the tuple is ``miner(batch, labels, memory, memory_labels)`` with the same
    self-positives removed. Gradients reach the batch only: the memory holds detached copies.
    Before the first wrap-around only the slots written so far take part.

    MoCo-style use (He et al., "Momentum Contrast for Unsupervised Visual Representation
    Learning", CVPR 2020): pass queries and keys in one batch with ``enqueue_mask`` True on the
    keys; the keys are enqueued (and are not queries), the queries are compared with the memory.

    The wrapped loss must declare ``supports_labels``, ``supports_indices_tuple`` and
    ``supports_ref_emb`` (otherwise ``TypeError``). Losses that also declare
    ``supports_pair_masks`` receive the all-pairs case as :class:`~deepmetric._types.PairMasks`,
    so no pair or triplet index list of batch x memory is ever built.

    State (all in ``state_dict``): buffers ``embedding_memory`` ``[memory_size,
    embedding_size]``, ``label_memory`` ``[memory_size]``, ``queue_idx`` (next slot, 0-dim long)
    and ``has_been_filled`` (0-dim bool). The memory follows the embeddings' device and dtype.

    Args:
        loss: the loss to compute against the memory.
        embedding_size: D, the embeddings' dimension.
        memory_size: number of slots in the queue.
        miner: optional miner called as ``miner(batch, labels, memory, memory_labels)``.
        **kwargs: ``collect_stats``.
    """

    required_capabilities = ("supports_labels", "supports_indices_tuple", "supports_ref_emb")

    embedding_memory: Tensor
    label_memory: Tensor
    queue_idx: Tensor
    has_been_filled: Tensor

    def __init__(
        self,
        loss: torch.nn.Module,
        embedding_size: int,
        memory_size: int = 1024,
        miner: Callable[..., IndicesTuple] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(loss, **kwargs)
        for name, value in (("embedding_size", embedding_size), ("memory_size", memory_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                V.fail(_OWNER, f"`{name}` to be a positive int", repr(value), exc=TypeError)
            if value < 1:
                V.fail(_OWNER, f"`{name}` to be a positive int", repr(value))
        if miner is not None and not callable(miner):
            V.fail(
                _OWNER,
                "`miner` to be a callable miner or None",
                type(miner).__name__,
                exc=TypeError,
            )
        self.miner = miner
        self.embedding_size = embedding_size
        self.memory_size = memory_size
        self.curr_batch_idx = torch.empty(0, dtype=torch.long)
        self.reset_queue()
        self.add_to_recordable_attributes(
            list_of_names=["embedding_size", "memory_size", "queue_idx"]
        )

    # ----------------------------------------------------------------- state
    def reset_queue(self) -> None:
        """Empty the memory: zero buffers (on the current device), ``queue_idx`` 0, not filled."""
        old = getattr(self, "embedding_memory", None)
        device = old.device if old is not None else None
        dtype = old.dtype if old is not None else torch.float32
        label_dtype = self.label_memory.dtype if old is not None else torch.long
        size = (self.memory_size, self.embedding_size)
        self.register_buffer("embedding_memory", torch.zeros(size, dtype=dtype, device=device))
        self.register_buffer(
            "label_memory", torch.zeros(self.memory_size, dtype=label_dtype, device=device)
        )
        self.register_buffer("queue_idx", torch.zeros((), dtype=torch.long, device=device))
        self.register_buffer("has_been_filled", torch.zeros((), dtype=torch.bool, device=device))

    def add_to_memory(self, embeddings: Tensor, labels: Tensor, batch_size: int) -> None:
        """Write ``embeddings``/``labels`` (detached) at the next ``batch_size`` slots, wrapping
        around; ``curr_batch_idx`` holds the slots written."""
        start = int(self.queue_idx)
        device = self.embedding_memory.device
        self.curr_batch_idx = (torch.arange(batch_size, device=device) + start) % self.memory_size
        if batch_size == 0:
            return
        self.embedding_memory.index_copy_(0, self.curr_batch_idx, embeddings.detach())
        self.label_memory.index_copy_(0, self.curr_batch_idx, labels.detach())
        self.queue_idx.fill_((start + batch_size) % self.memory_size)
        if start + batch_size >= self.memory_size:
            self.has_been_filled.fill_(True)

    def _memory(self) -> tuple[Tensor, Tensor]:
        """The slots in use: all once filled, else the ones written so far."""
        if bool(self.has_been_filled):
            return self.embedding_memory, self.label_memory
        end = int(self.queue_idx)
        return self.embedding_memory[:end], self.label_memory[:end]

    def _follow(self, embeddings: Tensor, labels: Tensor) -> None:
        """Move the buffers to the embeddings' device and dtype (labels' dtype for labels)."""
        if (
            self.embedding_memory.device != embeddings.device
            or self.embedding_memory.dtype != embeddings.dtype
        ):
            self.embedding_memory = self.embedding_memory.to(embeddings.device, embeddings.dtype)
        if self.label_memory.device != labels.device or self.label_memory.dtype != labels.dtype:
            self.label_memory = self.label_memory.to(labels.device, labels.dtype)
        if self.queue_idx.device != embeddings.device:
            self.queue_idx = self.queue_idx.to(embeddings.device)
            self.has_been_filled = self.has_been_filled.to(embeddings.device)

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        indices_tuple: IndicesTuple | None = None,
        enqueue_mask: Tensor | None = None,
    ) -> Any:
        self.reset_stats()
        self._check_inputs(embeddings, labels, indices_tuple, enqueue_mask)
        labels = labels.to(embeddings.device)
        self._follow(embeddings, labels)
        if enqueue_mask is not None:
            mask = enqueue_mask.to(embeddings.device)
            to_queue, queue_labels = embeddings[mask], labels[mask]
            embeddings, labels = embeddings[~mask], labels[~mask]
        else:
            to_queue, queue_labels = embeddings, labels
        self.add_to_memory(to_queue, queue_labels, len(to_queue))
        mem_emb, mem_labels = self._memory()
        if len(embeddings) == 0 or len(mem_emb) == 0:
            # no query (every row enqueued) or an empty memory: a zero connected to the graph
            return (embeddings * 0).sum()
        remove_self = enqueue_mask is None
        tuples: Any
        if self.miner is None and indices_tuple is None and self._loss_takes_masks():
            tuples = self._all_pair_masks(labels, mem_labels, remove_self)
        else:
            tuples = self.create_indices_tuple(
                embeddings, labels, mem_emb, mem_labels, indices_tuple, remove_self
            )
        return self.loss(embeddings, labels, tuples, mem_emb, mem_labels)

    def _check_inputs(
        self,
        embeddings: Tensor,
        labels: Tensor,
        indices_tuple: IndicesTuple | None,
        enqueue_mask: Tensor | None,
    ) -> None:
        V.check_embeddings(_OWNER, embeddings)
        n, d = embeddings.shape
        if d != self.embedding_size:
            V.fail(
                _OWNER,
                f"`embeddings` of shape (N, {self.embedding_size}) (embedding_size)",
                str(tuple(embeddings.shape)),
            )
        if labels is None:
            V.fail(_OWNER, "`labels` (the memory stores class labels)", "None")
        V.check_labels(_OWNER, labels, n)
        if enqueue_mask is None:
            if n > self.memory_size:
                V.fail(
                    _OWNER,
                    f"a batch of at most memory_size={self.memory_size} rows",
                    f"N={n}",
                    "Increase memory_size.",
                )
            return
        if indices_tuple is not None:
            V.fail(
                _OWNER,
                "`indices_tuple` or `enqueue_mask`, not both (they are mutually exclusive)",
                "both",
            )
        V.check_tensor(_OWNER, enqueue_mask, "enqueue_mask")
        if enqueue_mask.dtype != torch.bool:
            V.fail(_OWNER, "a bool `enqueue_mask`", str(enqueue_mask.dtype), exc=TypeError)
        if tuple(enqueue_mask.shape) != (n,):
            V.fail(
                _OWNER, f"`enqueue_mask` of shape (N,) with N={n}", str(tuple(enqueue_mask.shape))
            )
        queued = int(enqueue_mask.sum())
        if queued > self.memory_size:
            V.fail(
                _OWNER,
                f"at most memory_size={self.memory_size} rows to enqueue",
                f"{queued}",
                "Increase memory_size.",
            )

    def _loss_takes_masks(self) -> bool:
        return getattr(type(self.loss), "supports_pair_masks", False) is True

    def _all_pair_masks(self, labels: Tensor, mem_labels: Tensor, remove_self: bool) -> PairMasks:
        """Every (query, memory) pair as masks, minus each query's own slot among the positives."""
        pos = labels[:, None] == mem_labels[None, :]  # [N, M]
        neg = ~pos
        if remove_self:
            rows = torch.arange(len(labels), device=labels.device)
            pos[rows, self.curr_batch_idx.to(labels.device)] = False
        return PairMasks(pos, neg)

    def create_indices_tuple(
        self,
        embeddings: Tensor,
        labels: Tensor,
        E_mem: Tensor,
        L_mem: Tensor,
        input_indices_tuple: IndicesTuple | None,
        do_remove_self_comparisons: bool,
    ) -> IndicesTuple:
        """The index tuple handed to the loss (anchors index ``embeddings``, the rest the memory).

        The miner's output (or every pair), minus self-positives when asked; a caller's
        ``input_indices_tuple`` is converted to the same form and appended.
        """
        tuples: IndicesTuple
        if self.miner is not None:
            tuples = self.miner(embeddings, labels, E_mem, L_mem)
        else:
            tuples = T.get_all_pairs_indices(labels, L_mem)
        if do_remove_self_comparisons:
            tuples = T.remove_self_comparisons(tuples, self.curr_batch_idx, self.memory_size)
        if input_indices_tuple is not None:
            extra: IndicesTuple = input_indices_tuple
            if len(extra) == 3 and len(tuples) == 4:
                extra = T.convert_to_pairs(extra, labels)
            elif len(extra) == 4 and len(tuples) == 3:
                extra = T.convert_to_triplets(extra, labels)
            tuples = T.concatenate_indices_tuples(tuples, extra)  # type: ignore[assignment]
        return tuples
