"""``TwoStreamMetricLoss``: dataset items ``(anchor, posneg, label)``, anchors paired with the
second stream."""

from __future__ import annotations

from typing import Any

import torch

from .._validation import fail
from ..functional.tuples import get_all_triplets_indices, shift_indices_tuple
from .base_trainer import BaseTrainer, not_set_up


def _two_stream_getter(batch: Any) -> Any:
    anchors, posnegs, labels = batch
    return (anchors, posnegs), labels


class TwoStreamMetricLoss(BaseTrainer):
    """Embeds both streams; tuples come from ``tuple_miner(anchor_emb, labels, posneg_emb,
    labels.clone())`` or else all triplets; the loss sees ``cat([anchor_emb, posneg_emb])``."""

    def initialize_data_and_label_getter(self) -> None:
        if self.data_and_label_getter is None:
            self.data_and_label_getter = _two_stream_getter

    def schema(self) -> dict[str, dict[str, list[str]]]:
        schema = super().schema()
        schema["mining_funcs"]["allowed"] = ["tuple_miner"]
        return schema

    def maybe_do_batch_mining(self, data: Any, labels: torch.Tensor) -> tuple[Any, torch.Tensor]:
        return data, labels

    def calculate_loss(self, curr_batch: tuple[Any, torch.Tensor]) -> None:
        data, labels = curr_batch
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            fail(self.owner, "batches of (anchors, posnegs, labels)", type(data).__name__)
        anchors, posnegs = data
        anchor_emb = self.compute_embeddings(anchors)
        posneg_emb = self.compute_embeddings(posnegs)
        labels = labels.to(anchor_emb.device)
        ref_labels = labels.clone()
        miner = self.mining_funcs.get("tuple_miner")
        if miner is not None:
            indices_tuple = miner(anchor_emb, labels, posneg_emb, ref_labels)
        else:
            indices_tuple = get_all_triplets_indices(labels, ref_labels)
        indices_tuple = shift_indices_tuple(indices_tuple, anchor_emb.shape[0])
        if self.loss_weights is None:
            raise not_set_up(self, "loss_weights")
        if self.loss_weights.get("metric_loss", 0) > 0:
            embeddings = torch.cat([anchor_emb, posneg_emb], dim=0)
            all_labels = torch.cat([labels, labels], dim=0)
            self.losses["metric_loss"] = self.loss_funcs["metric_loss"](
                embeddings, all_labels, indices_tuple
            )
