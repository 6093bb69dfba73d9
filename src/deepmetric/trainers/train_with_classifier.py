"""``TrainWithClassifier``: ``metric_loss`` on embeddings plus ``classifier_loss`` on logits."""

from __future__ import annotations

from typing import Any

import torch

from .base_trainer import not_set_up
from .metric_loss_only import MetricLossOnly


class TrainWithClassifier(MetricLossOnly):
    """Adds model ``"classifier"`` (embeddings -> logits) and loss ``"classifier_loss"``
    (e.g. ``torch.nn.CrossEntropyLoss()``)."""

    def schema(self) -> dict[str, dict[str, list[str]]]:
        schema = super().schema()
        schema["models"]["allowed"] = schema["models"]["allowed"] + ["classifier"]
        schema["models"]["important"] = schema["models"]["important"] + ["classifier"]
        schema["loss_funcs"]["allowed"] = schema["loss_funcs"]["allowed"] + ["classifier_loss"]
        schema["loss_funcs"]["important"] = schema["loss_funcs"]["important"] + ["classifier_loss"]
        return schema

    def calculate_loss(self, curr_batch: tuple[Any, torch.Tensor]) -> None:
        data, labels = curr_batch
        embeddings = self.compute_embeddings(data)
        labels = labels.to(embeddings.device)
        logits = self.maybe_get_logits(embeddings)
        indices_tuple = self.maybe_mine_embeddings(embeddings, labels)
        self.losses["metric_loss"] = self.maybe_get_metric_loss(embeddings, labels, indices_tuple)
        self.losses["classifier_loss"] = self.maybe_get_classifier_loss(logits, labels)

    def maybe_get_logits(self, embeddings: torch.Tensor) -> torch.Tensor | None:
        if self.loss_weights is None:
            raise not_set_up(self, "loss_weights")
        if "classifier" in self.models and self.loss_weights.get("classifier_loss", 0) > 0:
            return self.models["classifier"](embeddings)
        return None

    def maybe_get_classifier_loss(self, logits: torch.Tensor | None, labels: torch.Tensor) -> Any:
        if logits is not None and "classifier_loss" in self.loss_funcs:
            return self.loss_funcs["classifier_loss"](logits, labels.to(logits.device))
        return 0
