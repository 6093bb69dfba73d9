"""``GeneralizedLiftedStructureLoss``: per-anchor soft hardest positive vs soft hardest negative."""

from __future__ import annotations

from typing import Any

import torch

from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..functional import lse_pair_losses as F
from . import _pair_inputs
from .generic_pair_loss import GenericPairLoss


@LOSSES.register
class GeneralizedLiftedStructureLoss(GenericPairLoss):
    """Generalized lifted structure loss.

    Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person Re-Identification",
    arXiv 2017, https://arxiv.org/abs/1703.07737 (sec. 2). For distances ``d``, per anchor ``i``::

        L_i = [ LSE_p(d_ip - pos_margin) + LSE_n(neg_margin - d_in) ]_+

    (``pos_margin - s_ip`` and ``s_in - neg_margin`` for similarities); an anchor without
    positives (or negatives) takes 0 for that log-sum-exp. Terms are per anchor (``"element"``),
    reduced by default with :class:`MeanReducer`. O(N M) time and memory.

    Args:
        neg_margin: negatives should be farther than this.
        pos_margin: positives should be closer than this.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default ``LpDistance()``),
            ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("pos_margin", "neg_margin")

    def __init__(self, neg_margin: float = 1, pos_margin: float = 0, **kwargs: Any) -> None:
        super().__init__(mat_based_loss=True, **kwargs)
        self.neg_margin = neg_margin
        self.pos_margin = pos_margin

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        inputs = _pair_inputs.mat_and_masks(
            self, embeddings, labels, indices_tuple, ref_emb, ref_labels
        )
        if inputs is None:
            return self.zero_losses()
        return self._compute_loss(*inputs)

    def _compute_loss(self, mat: Tensor, pos_mask: Tensor, neg_mask: Tensor) -> LossDict:
        losses = F.generalized_lifted_structure_terms(
            mat,
            pos_mask,
            neg_mask,
            pos_margin=self.pos_margin,
            neg_margin=self.neg_margin,
            is_inverted=self.distance.is_inverted,
        )
        indices = torch.arange(mat.shape[0], device=mat.device)
        return {"loss": {"losses": losses, "indices": indices, "reduction_type": "element"}}
