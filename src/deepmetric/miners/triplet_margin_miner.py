"""``TripletMarginMiner``: the triplets of a batch selected by their margin."""

from __future__ import annotations

from typing import Any, ClassVar

from .. import _validation as V
from .._registry import MINERS
from .._types import Tensor, TripletIndices
from ..functional import mining as F
from ..functional import tuples as T
from .base_tuple_miner import BaseTupleMiner


@MINERS.register
class TripletMarginMiner(BaseTupleMiner):
    """Triplets ``(a, p, n)`` chosen by their margin ``m = d_an - d_ap`` (``s_ap - s_an`` for
    similarities), over every triplet of the batch.

    Schroff et al., "FaceNet: A Unified Embedding for Face Recognition and Clustering",
    CVPR 2015, https://arxiv.org/abs/1503.03832 (sec. 3.2, semi-hard negatives).

    * ``"all"``: ``m <= margin`` (every margin-violating triplet);
    * ``"hard"``: ``m <= margin`` and ``m <= 0``;
    * ``"semihard"``: ``0 < m <= margin``;
    * ``"easy"``: ``m > margin``.

    The triplets are found block by block (never the N x P x M candidates at once) and come out
    ordered by anchor, positive, negative, as in PML.

    Args:
        margin: in the distance's units.
        type_of_triplets: one of the four names above (PML treats an unknown name as ``"all"``;
            here it raises ``ValueError``).
        **kwargs: ``distance`` (default ``LpDistance()``), ``collect_stats``.

    Stats (means over every triplet before selection): ``avg_triplet_margin``,
    ``pos_pair_dist``, ``neg_pair_dist``.
    """

    TYPES: ClassVar[tuple[str, ...]] = ("all", "hard", "semihard", "easy")
    recordable = ("margin",)
    stats = ("avg_triplet_margin", "pos_pair_dist", "neg_pair_dist")

    def __init__(self, margin: float = 0.2, type_of_triplets: str = "all", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        V.check_choice(type(self).__name__, "type_of_triplets", type_of_triplets, self.TYPES)
        self.margin = margin
        self.type_of_triplets = type_of_triplets

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
    ) -> TripletIndices:
        mat = self.distance_matrix(embeddings, ref_emb)
        pos, neg = T.get_matches_and_diffs(labels, ref_labels)
        inverted = self.distance.is_inverted
        if self.collect_stats:
            margin, ap, an = F.triplet_margin_stats(mat, pos, neg, is_inverted=inverted)
            self.record_stat("avg_triplet_margin", margin)
            self.record_stat("pos_pair_dist", ap)
            self.record_stat("neg_pair_dist", an)
        return F.triplet_margin_select(
            mat,
            pos,
            neg,
            margin=self.margin,
            type_of_triplets=self.type_of_triplets,
            is_inverted=inverted,
        )
