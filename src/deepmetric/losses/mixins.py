"""Regularizer mixins: extra ``already_reduced`` terms added to a loss dict.

They hold methods only (no ``__init__``): the loss base stores ``embedding_regularizer``;
losses with learnable class vectors call :meth:`WeightRegularizerMixin.init_weight_regularizer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._types import LossDict, Tensor

WeightInitFunc = Callable[[Tensor], Any]


class EmbeddingRegularizerMixin:
    """Adds ``"embedding_reg_loss" = embedding_regularizer(embeddings) * embedding_reg_weight``."""

    embedding_regularizer: torch.nn.Module | None
    embedding_reg_weight: float

    def embedding_regularization_loss(self, embeddings: Tensor) -> Tensor:
        if self.embedding_regularizer is None:
            return torch.sum(embeddings * 0)
        return self.embedding_regularizer(embeddings) * self.embedding_reg_weight

    def add_embedding_regularization_to_loss_dict(
        self, loss_dict: LossDict, embeddings: Tensor
    ) -> None:
        if self.embedding_regularizer is not None:
            loss_dict["embedding_reg_loss"] = {
                "losses": self.embedding_regularization_loss(embeddings),
                "indices": None,
                "reduction_type": "already_reduced",
            }


class WeightRegularizerMixin:
    """For losses with learnable class vectors (``W``, ``proxies``, ...): adds
    ``"weight_reg_loss" = weight_regularizer(class_vectors) * weight_reg_weight``, where the
    regularizer receives one row per class."""

    weight_regularizer: torch.nn.Module | None
    weight_reg_weight: float
    weight_init_func: WeightInitFunc

    def init_weight_regularizer(
        self,
        weight_regularizer: torch.nn.Module | None,
        weight_reg_weight: float,
        weight_init_func: WeightInitFunc | None,
    ) -> None:
        """Store the weight regularizer and init function; re-wrap the reducer for the new term.

        Call after ``BaseMetricLossFunction.__init__``, passing the user's ``reducer`` on to
        ``set_reducer`` afterwards if the regularizer is set.
        """
        self.weight_regularizer = weight_regularizer
        self.weight_reg_weight = weight_reg_weight
        self.weight_init_func = (
            self.get_default_weight_init_func() if weight_init_func is None else weight_init_func
        )
        if weight_regularizer is not None:
            self.add_to_recordable_attributes(name="weight_reg_weight")  # type: ignore[attr-defined]

    def get_default_weight_init_func(self) -> WeightInitFunc:
        return torch.nn.init.normal_

    def weight_regularization_loss(self, weights: Tensor) -> Tensor:
        if self.weight_regularizer is None:
            return torch.sum(weights * 0)
        return self.weight_regularizer(weights) * self.weight_reg_weight

    def add_weight_regularization_to_loss_dict(self, loss_dict: LossDict, weights: Tensor) -> None:
        if self.weight_regularizer is not None:
            loss_dict["weight_reg_loss"] = {
                "losses": self.weight_regularization_loss(weights),
                "indices": None,
                "reduction_type": "already_reduced",
            }
