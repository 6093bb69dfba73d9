"""``MetricLossOnly``: embeddings -> (optional tuple miner) -> ``metric_loss``."""

from __future__ import annotations

from typing import Any

import torch

from .base_trainer import BaseTrainer, not_set_up


class MetricLossOnly(BaseTrainer):
    """Trains ``trunk`` (+ ``embedder``) with ``loss_funcs["metric_loss"]`` alone."""

    def calculate_loss(self, curr_batch: tuple[Any, torch.Tensor]) -> None:
        data, labels = curr_batch
        embeddings = self.compute_embeddings(data)
        labels = labels.to(embeddings.device)
        indices_tuple = self.maybe_mine_embeddings(embeddings, labels)
        self.losses["metric_loss"] = self.maybe_get_metric_loss(embeddings, labels, indices_tuple)

    def maybe_get_metric_loss(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: Any
    ) -> Any:
        if self.loss_weights is None:
            raise not_set_up(self, "loss_weights")
        if self.loss_weights.get("metric_loss", 0) > 0:
            return self.loss_funcs["metric_loss"](embeddings, labels, indices_tuple)
        return 0
