"""``DotProductSimilarity``: inner products (cosine similarity with the default normalisation)."""

from __future__ import annotations

from .._registry import DISTANCES
from .._types import Tensor
from ..functional import distances as F
from .base_distance import BaseDistance


@DISTANCES.register
class DotProductSimilarity(BaseDistance):
    """``s_ij = <x_i, y_j> ** power``, a similarity (``is_inverted=True``).

    Embeddings are normalised by default, which makes it the cosine similarity; pass
    ``normalize_embeddings=False`` for raw inner products.
    """

    def __init__(
        self,
        normalize_embeddings: bool = True,
        p: float = 2,
        power: float = 1,
        collect_stats: bool | None = None,
    ) -> None:
        super().__init__(
            normalize_embeddings, p, power, is_inverted=True, collect_stats=collect_stats
        )

    def compute_mat(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        return F.dot_product_matrix(query_emb, ref_emb)

    def pairwise_distance(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        return F.dot_product_pairwise(query_emb, ref_emb)
