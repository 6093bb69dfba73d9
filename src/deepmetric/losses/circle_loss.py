"""``CircleLoss``: re-weighted positive and negative similarities with a circular boundary."""

from __future__ import annotations

from typing import Any

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import lse_pair_losses as F
from ..reducers import AvgNonZeroReducer, BaseReducer
from . import _pair_inputs
from .generic_pair_loss import GenericPairLoss


@LOSSES.register
class CircleLoss(GenericPairLoss):
    """Circle loss over all positive and negative pairs of each anchor.

    Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity Optimization", CVPR 2020,
    https://arxiv.org/abs/2002.10857. With cosine similarities ``s``, ``op = 1 + m``,
    ``on = -m``, ``delta_p = 1 - m``, ``delta_n = m`` and the (constant) weights
    ``a_p = [op - s_ip]_+``, ``a_n = [s_in - on]_+``, per anchor ``i``::

        L_i = softplus( LSE_p(-gamma a_p (s_ip - delta_p)) + LSE_n(gamma a_n (s_in - delta_n)) )

    Anchors without a positive or without a negative get 0. Terms are per anchor
    (``"element"``), reduced by default with :class:`AvgNonZeroReducer`. O(N M) time and memory.
    The paper suggests ``m=0.25, gamma=256`` (faces), ``m=0.25, gamma=128`` (re-id) and
    ``m=0.4, gamma=80`` (fine-grained retrieval, the default).

    Args:
        m: relaxation margin.
        gamma: scale.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (must be a
            :class:`CosineSimilarity`, the default), ``embedding_regularizer``,
            ``embedding_reg_weight``.
    """

    recordable = ("m", "gamma", "op", "on", "delta_p", "delta_n")

    def __init__(self, m: float = 0.4, gamma: float = 80, **kwargs: Any) -> None:
        super().__init__(mat_based_loss=True, **kwargs)
        self.m = m
        self.gamma = gamma
        self.soft_plus = torch.nn.Softplus(beta=1)
        self.op = 1 + m
        self.on = -m
        self.delta_p = 1 - m
        self.delta_n = m

    def get_default_reducer(self) -> BaseReducer:
        return AvgNonZeroReducer()

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def check_distance(self, distance: BaseDistance) -> None:
        if not isinstance(distance, CosineSimilarity):
            V.fail(
                type(self).__name__,
                "`distance` to be a CosineSimilarity",
                type(distance).__name__,
                "Omit `distance` to use the default.",
            )

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
        losses = F.circle_loss_terms(mat, pos_mask, neg_mask, m=self.m, gamma=self.gamma)
        indices = torch.arange(mat.shape[0], device=mat.device)
        return {"loss": {"losses": losses, "indices": indices, "reduction_type": "element"}}
