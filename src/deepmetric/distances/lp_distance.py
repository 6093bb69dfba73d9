"""``LpDistance``: the Minkowski distance between (by default L2-normalised) embeddings."""

from __future__ import annotations

from .._registry import DISTANCES
from .._types import Tensor
from ..functional import distances as F
from .base_distance import BaseDistance


@DISTANCES.register
class LpDistance(BaseDistance):
    """``d_ij = ||x_i - y_j||_p ** power``; the default distance of most losses and miners.

    With the defaults (``normalize_embeddings=True, p=2, power=1``) it is the Euclidean distance
    between unit vectors, in [0, 2]. Half-precision inputs are computed in float32.
    """

    def __init__(
        self,
        normalize_embeddings: bool = True,
        p: float = 2,
        power: float = 1,
        collect_stats: bool | None = None,
    ) -> None:
        super().__init__(
            normalize_embeddings, p, power, is_inverted=False, collect_stats=collect_stats
        )

    def compute_mat(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        return F.lp_distance_matrix(query_emb, ref_emb, p=self.p)

    def pairwise_distance(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        return F.lp_pairwise(query_emb, ref_emb, p=self.p)
