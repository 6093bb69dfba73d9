"""Testers: embed dataset splits and compute retrieval accuracies (PML's ``testers``)."""

from .base_tester import BaseTester
from .global_embedding_space import GlobalEmbeddingSpaceTester
from .global_two_stream_embedding_space import GlobalTwoStreamEmbeddingSpaceTester
from .with_same_parent_label import WithSameParentLabelTester

__all__ = [
    "BaseTester",
    "GlobalEmbeddingSpaceTester",
    "GlobalTwoStreamEmbeddingSpaceTester",
    "WithSameParentLabelTester",
]
