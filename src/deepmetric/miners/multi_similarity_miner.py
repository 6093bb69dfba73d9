"""``MultiSimilarityMiner``: pairs that are informative relative to the anchor's hardest pair."""

from __future__ import annotations

from typing import Any

from .._registry import MINERS
from .._types import PairIndices, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import mining as F
from ..functional import tuples as T
from .base_tuple_miner import BaseTupleMiner


@MINERS.register
class MultiSimilarityMiner(BaseTupleMiner):
    """Keeps a negative pair when it is more similar than the anchor's least similar positive
    (minus ``epsilon``), and a positive pair when it is less similar than the anchor's most
    similar negative (plus ``epsilon``).

    Wang et al., "Multi-Similarity Loss with General Pair Weighting for Deep Metric Learning",
    CVPR 2019, https://arxiv.org/abs/1904.06627 (sec. 3.3, eq. 5-6). For similarities::

        keep (i, n)  if  s_in + epsilon > min_p s_ip
        keep (i, p)  if  s_ip - epsilon < max_n s_in

    and mirrored for distances. Pairs come out grouped by anchor and, within an anchor, ordered
    by ascending value, as in PML. When ``embeddings is ref_emb`` an element is never paired with
    itself.

    Args:
        epsilon: the slack, in the distance's units.
        **kwargs: ``distance`` (default ``CosineSimilarity()``), ``collect_stats``.
    """

    recordable = ("epsilon",)

    def __init__(self, epsilon: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
    ) -> PairIndices:
        mat = self.distance_matrix(embeddings, ref_emb)
        pos, neg = T.get_matches_and_diffs(labels, ref_labels)
        if ref_emb is embeddings:  # a copy of labels keeps (i, i) in pos; PML drops it here
            pos.fill_diagonal_(False)
        return F.multi_similarity_select(
            mat, pos, neg, epsilon=self.epsilon, is_inverted=self.distance.is_inverted
        )
