"""``MultiSimilarityLoss``: soft-weighted positives and negatives around a shared threshold."""

from __future__ import annotations

from typing import Any

import torch

from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import lse_pair_losses as F
from . import _pair_inputs
from .generic_pair_loss import GenericPairLoss


@LOSSES.register
class MultiSimilarityLoss(GenericPairLoss):
    """Multi-Similarity loss over all positive and negative pairs of each anchor.

    Wang et al., "Multi-Similarity Loss with General Pair Weighting for Deep Metric Learning",
    CVPR 2019, https://arxiv.org/abs/1904.06627. For similarities ``s``, per anchor ``i``::

        L_i = 1/alpha log(1 + sum_p exp(-alpha (s_ip - base)))
            + 1/beta  log(1 + sum_n exp( beta (s_in - base)))

    (for distances the signs flip: ``d_ip - base`` and ``base - d_in``). Terms are per anchor
    (``"element"``), reduced by default with :class:`MeanReducer`. O(N M) time and memory.

    Args:
        alpha: weight of the positive pairs.
        beta: weight of the negative pairs.
        base: the threshold ``lambda`` both sides are measured from.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default
            :class:`CosineSimilarity`), ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("alpha", "beta", "base")

    def __init__(
        self, alpha: float = 2, beta: float = 50, base: float = 0.5, **kwargs: Any
    ) -> None:
        super().__init__(mat_based_loss=True, **kwargs)
        self.alpha = alpha
        self.beta = beta
        self.base = base

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
        return self._compute_loss(*inputs)

    def _compute_loss(self, mat: Tensor, pos_mask: Tensor, neg_mask: Tensor) -> LossDict:
        losses = F.multi_similarity_terms(
            mat,
            pos_mask,
            neg_mask,
            alpha=self.alpha,
            beta=self.beta,
            base=self.base,
            is_inverted=self.distance.is_inverted,
        )
        indices = torch.arange(mat.shape[0], device=mat.device)
        return {"loss": {"losses": losses, "indices": indices, "reduction_type": "element"}}
