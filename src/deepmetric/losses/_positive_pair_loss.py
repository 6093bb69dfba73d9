"""``PositivePairLoss``: base of the losses with one term per positive pair ``(a, p)`` that
weighs it against the negative pairs of its anchor (NTXent, LiftedStructure, TupletMargin)."""

from __future__ import annotations

from .._types import IndicesTuple, LossDict, PairIndices, Tensor
from ..functional import lse_pair_losses as F
from . import _pair_inputs
from .generic_pair_loss import GenericPairLoss


class PositivePairLoss(GenericPairLoss):
    """Hands ``_pair_loss(mat, a1, p, negatives)`` the positive pairs and an ``N x M`` count of
    each anchor's negative pairs, built from labels (as masks, O(N*M)) or from a miner's tuple.

    Subclasses call ``super().__init__(mat_based_loss=False, **kwargs)`` and implement
    ``_pair_loss``.
    """

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        inputs = _pair_inputs.mat_and_pairs(
            self, embeddings, labels, indices_tuple, ref_emb, ref_labels
        )
        if inputs is None:
            return self.zero_losses()
        return self._pair_loss(*inputs)

    def pair_based_loss(self, mat: Tensor, indices_tuple: PairIndices) -> LossDict:
        a1, p, a2, n = indices_tuple
        if len(a1) == 0 or len(a2) == 0:
            return self.zero_losses()
        negatives = F.negative_pair_counts(a2, n, (mat.shape[0], mat.shape[1]), dtype=mat.dtype)
        return self._pair_loss(mat, a1, p, negatives)

    def _pair_loss(self, mat: Tensor, a1: Tensor, p: Tensor, negatives: Tensor) -> LossDict:
        raise NotImplementedError
