"""``NTXentLoss``: normalized temperature-scaled cross entropy (InfoNCE) per positive pair."""

from __future__ import annotations

from typing import Any

from .._registry import LOSSES
from .._types import LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import lse_pair_losses as F
from ._positive_pair_loss import PositivePairLoss


@LOSSES.register
class NTXentLoss(PositivePairLoss):
    """NT-Xent (InfoNCE) loss, one term per positive pair.

    van den Oord et al., "Representation Learning with Contrastive Predictive Coding", arXiv 2018,
    https://arxiv.org/abs/1807.03748; He et al., "Momentum Contrast for Unsupervised Visual
    Representation Learning", CVPR 2020, https://arxiv.org/abs/1911.05722; Chen et al.,
    "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020,
    https://arxiv.org/abs/2002.05709. With ``x = s / temperature`` (``-d / temperature`` for
    distances), for the positive pair ``(a, p)`` and the negative pairs ``(a, n)`` of its anchor::

        L_ap = -log( e^{x_ap} / (e^{x_ap} + sum_n e^{x_an}) )

    Other positives of ``a`` are not in the denominator. Zero loss without a positive or without a
    negative pair. Terms are ``"pos_pair"``, reduced by default with :class:`MeanReducer`.

    Each anchor's negative log-sum-exp is computed once, so time and memory are O(N M), not
    O(#positive pairs x #negative pairs).

    Args:
        temperature: divides the similarities.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default
            :class:`CosineSimilarity`), ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("temperature",)

    def __init__(self, temperature: float = 0.07, **kwargs: Any) -> None:
        super().__init__(mat_based_loss=False, **kwargs)
        self.temperature = temperature

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def _pair_loss(self, mat: Tensor, a1: Tensor, p: Tensor, negatives: Tensor) -> LossDict:
        losses = F.ntxent_terms(
            mat,
            a1,
            p,
            negatives,
            temperature=self.temperature,
            is_inverted=self.distance.is_inverted,
        )
        return {"loss": {"losses": losses, "indices": (a1, p), "reduction_type": "pos_pair"}}
