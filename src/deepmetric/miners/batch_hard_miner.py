"""``BatchHardMiner``: the hardest positive and the hardest negative of every anchor."""

from __future__ import annotations

from typing import Any

from .._registry import MINERS
from .._types import Tensor, TripletIndices
from .batch_easy_hard_miner import BatchEasyHardMiner


@MINERS.register
class BatchHardMiner(BatchEasyHardMiner):
    """One triplet per anchor: its farthest positive and its nearest negative (mirrored for
    similarities); anchors lacking either are dropped.

    Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification", 2017,
    https://arxiv.org/abs/1703.07737 (sec. 2, "batch hard").

    ``BatchEasyHardMiner(pos_strategy="hard", neg_strategy="hard")`` returning ``(a, p, n)``.

    Args:
        **kwargs: ``allowed_pos_range``, ``allowed_neg_range``, ``distance`` (default
            ``LpDistance()``), ``collect_stats``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(pos_strategy=self.HARD, neg_strategy=self.HARD, **kwargs)

    def mine(  # type: ignore[override]
        self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
    ) -> TripletIndices:
        a, p, _, n = super().mine(embeddings, labels, ref_emb, ref_labels)
        return a, p, n
