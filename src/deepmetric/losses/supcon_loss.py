"""``SupConLoss``: supervised contrastive loss, every same-label sample a positive."""

from __future__ import annotations

from typing import Any

import torch

from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import lse_pair_losses as F
from ..reducers import AvgNonZeroReducer, BaseReducer
from . import _pair_inputs
from .generic_pair_loss import GenericPairLoss


@LOSSES.register
class SupConLoss(GenericPairLoss):
    """Supervised contrastive loss.

    Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020,
    https://arxiv.org/abs/2004.11362. With ``x = s / temperature`` (``-d / temperature`` for
    distances), per anchor ``i`` with positives ``P(i)`` and negatives ``N(i)``::

        L_i = -1/|P(i)| sum_{p in P(i)} ( x_ip - LSE_{k in P(i) u N(i)}(x_ik) )

    Anchors without a positive get 0; the loss is zero when the batch has no positive or no
    negative pair at all. Terms are per anchor (``"element"``), reduced by default with
    :class:`AvgNonZeroReducer`. O(N M) time and memory.

    Args:
        temperature: divides the similarities.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default
            :class:`CosineSimilarity`), ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("temperature",)

    def __init__(self, temperature: float = 0.1, **kwargs: Any) -> None:
        super().__init__(mat_based_loss=True, **kwargs)
        self.temperature = temperature

    def get_default_reducer(self) -> BaseReducer:
        return AvgNonZeroReducer()

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

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
        mat, pos_mask, neg_mask = inputs
        if indices_tuple is not None:
            return self._compute_loss(mat, pos_mask, neg_mask)
        if not bool(pos_mask.any() & neg_mask.any()):
            return self.zero_losses()
        # From labels the negatives are all other pairs, minus (i, i) when the reference is the
        # batch itself: the kernel then needs no mask for its denominator.
        same_source = ref_labels is None or ref_labels is labels
        return self._loss_dict(mat, pos_mask, None, exclude_diagonal=same_source)

    def _compute_loss(self, mat: Tensor, pos_mask: Tensor, neg_mask: Tensor) -> LossDict:
        pos_mask, neg_mask = pos_mask.bool(), neg_mask.bool()
        if not bool(pos_mask.any() & neg_mask.any()):
            return self.zero_losses()
        return self._loss_dict(mat, pos_mask, neg_mask)

    def _loss_dict(
        self,
        mat: Tensor,
        pos_mask: Tensor,
        neg_mask: Tensor | None,
        exclude_diagonal: bool = False,
    ) -> LossDict:
        losses = F.supcon_terms(
            mat,
            pos_mask,
            neg_mask,
            temperature=self.temperature,
            is_inverted=self.distance.is_inverted,
            exclude_diagonal=exclude_diagonal,
        )
        indices = torch.arange(mat.shape[0], device=mat.device)
        return {"loss": {"losses": losses, "indices": indices, "reduction_type": "element"}}
