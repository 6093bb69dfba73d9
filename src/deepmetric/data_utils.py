"""Datasets over tensors already in memory."""

from __future__ import annotations

from torch.utils.data import Dataset

from ._types import Tensor


class EmbeddingDataset(Dataset[tuple[Tensor, Tensor]]):
    """Item ``i`` is ``(embeddings[i], labels[i])``: feed precomputed embeddings to a tester."""

    def __init__(self, embeddings: Tensor, labels: Tensor) -> None:
        self.embeddings = embeddings
        self.labels = labels

    def __len__(self) -> int:
        return len(self.embeddings)

    def __getitem__(self, idx: int) -> tuple[Tensor, Tensor]:
        return self.embeddings[idx], self.labels[idx]
