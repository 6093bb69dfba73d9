"""``CosineSimilarity``: the inner product of L2-normalised embeddings."""

from __future__ import annotations

from .._registry import DISTANCES
from .dot_product_similarity import DotProductSimilarity


@DISTANCES.register
class CosineSimilarity(DotProductSimilarity):
    """``s_ij = cos(x_i, y_j) ** power`` in [-1, 1]; embeddings are always normalised."""

    def __init__(self, p: float = 2, power: float = 1, collect_stats: bool | None = None) -> None:
        super().__init__(normalize_embeddings=True, p=p, power=power, collect_stats=collect_stats)
