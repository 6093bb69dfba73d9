"""``EmbeddingsAlreadyPackagedAsTriplets``: the batch is laid out as consecutive triplets."""

from __future__ import annotations

import torch

from .. import _validation as V
from .._registry import MINERS
from .._types import Tensor, TripletIndices
from .base_tuple_miner import BaseTupleMiner


@MINERS.register
class EmbeddingsAlreadyPackagedAsTriplets(BaseTupleMiner):
    """Rows ``3k, 3k + 1, 3k + 2`` are anchor, positive and negative of triplet ``k``.

    Returns ``(arange(0, N, 3), arange(1, N, 3), arange(2, N, 3))`` on the embeddings' device
    (PML creates them on the CPU). ``labels``, ``ref_emb`` and the distance are not used.

    Raises:
        ValueError: when N is not a multiple of 3.
    """

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
    ) -> TripletIndices:
        n = embeddings.shape[0]
        if n % 3:
            V.fail(
                type(self).__name__,
                "a batch size that is a multiple of 3 (anchor, positive, negative per triplet)",
                f"N={n}",
            )
        device = embeddings.device
        return tuple(torch.arange(i, n, 3, device=device) for i in range(3))  # type: ignore[return-value]
