"""``SNRDistance``: the signal-to-noise-ratio distance."""

from __future__ import annotations

from .._registry import DISTANCES
from .._types import Tensor
from ..functional import distances as F
from .base_distance import BaseDistance


@DISTANCES.register
class SNRDistance(BaseDistance):
    """``d_ij = Var(x_i - y_j) / Var(x_i)`` (noise variance over signal variance).

    Yuan et al., "Signal-to-Noise Ratio: A Robust Distance Metric for Deep Metric Learning",
    CVPR 2019, https://arxiv.org/abs/1904.02616. Embeddings are L2-normalised first by default.
    Computed with one GEMM: memory O(N*M), not O(N*M*D).
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
        return F.snr_distance_matrix(query_emb, ref_emb)

    def pairwise_distance(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        return F.snr_pairwise(query_emb, ref_emb)
