"""``CascadedEmbeddings``: a generalisation of Hard-Aware Deeply Cascaded Embedding.

Yuan, Yang & Zhang, "Hard-Aware Deeply Cascaded Embedding", ICCV 2017,
https://arxiv.org/abs/1611.05720. The embedding's columns are split by ``embedding_sizes``;
slice ``i`` gets miner ``tuple_miner_<i>``, loss ``metric_loss_<i>`` and optionally a
``classifier_<i>`` with ``classifier_loss_<i>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._validation import fail
from .base_trainer import BaseTrainer, not_set_up


class CascadedEmbeddings(BaseTrainer):
    """``CascadedEmbeddings(embedding_sizes, *args, **kwargs)``; an ``HDCMiner`` at slice ``i`` is
    first given slice ``i-1``'s tuple (``set_idx_externally``) and reset afterwards."""

    def __init__(self, embedding_sizes: Sequence[int], *args: Any, **kwargs: Any) -> None:
        if isinstance(embedding_sizes, (str, bytes)) or not isinstance(embedding_sizes, Sequence):
            fail(
                "CascadedEmbeddings",
                "`embedding_sizes` to be a list of ints",
                type(embedding_sizes).__name__,
                exc=TypeError,
            )
        if not embedding_sizes or any(int(s) < 1 for s in embedding_sizes):
            fail("CascadedEmbeddings", "positive `embedding_sizes`", repr(embedding_sizes))
        self.embedding_sizes = [int(s) for s in embedding_sizes]
        super().__init__(*args, **kwargs)

    def schema(self) -> dict[str, dict[str, list[str]]]:
        schema = super().schema()
        schema["models"]["allowed"] = schema["models"]["allowed"] + ["classifier_[0-9]+"]
        schema["loss_funcs"] = {
            "allowed": ["metric_loss_[0-9]+", "classifier_loss_[0-9]+"],
            "essential": [],
            "important": [],
        }
        schema["mining_funcs"] = {
            "allowed": ["tuple_miner_[0-9]+"],
            "essential": [],
            "important": [],
        }
        return schema

    def calculate_loss(self, curr_batch: tuple[Any, torch.Tensor]) -> None:
        data, labels = curr_batch
        embeddings = self.compute_embeddings(data)
        labels = labels.to(embeddings.device)
        if embeddings.shape[1] != sum(self.embedding_sizes):
            fail(
                self.owner,
                f"embeddings of width sum(embedding_sizes)={sum(self.embedding_sizes)}",
                f"width {embeddings.shape[1]}",
            )
        if self.loss_weights is None:
            raise not_set_up(self, "loss_weights")
        indices_tuple = None
        start = 0
        for i, size in enumerate(self.embedding_sizes):
            curr = embeddings[:, start : start + size]
            start += size
            miner = self.mining_funcs.get(f"tuple_miner_{i}")
            if miner is not None:
                external = indices_tuple is not None and hasattr(miner, "set_idx_externally")
                if external:
                    miner.set_idx_externally(indices_tuple, labels)
                indices_tuple = miner(curr, labels)
                if external and hasattr(miner, "reset_idx"):
                    miner.reset_idx()
            loss_key = f"metric_loss_{i}"
            if loss_key in self.loss_funcs and self.loss_weights.get(loss_key, 0) > 0:
                self.losses[loss_key] = self.loss_funcs[loss_key](curr, labels, indices_tuple)
            cls_key = f"classifier_{i}"
            cls_loss_key = f"classifier_loss_{i}"
            if (
                cls_key in self.models
                and cls_loss_key in self.loss_funcs
                and self.loss_weights.get(cls_loss_key, 0) > 0
            ):
                logits = self.models[cls_key](curr)
                self.losses[cls_loss_key] = self.loss_funcs[cls_loss_key](logits, labels)
