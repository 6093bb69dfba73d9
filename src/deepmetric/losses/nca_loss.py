"""``NCALoss``: neighbourhood components analysis, a softmax over the reference set."""

from __future__ import annotations

from typing import Any, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, LpDistance
from ..functional import tuples as T
from ..functional.nca import nca_terms
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class NCALoss(BaseMetricLossFunction):
    """Neighbourhood Components Analysis loss.

    Goldberger, Roweis, Hinton, Salakhutdinov, "Neighbourhood Components Analysis",
    NeurIPS 2004, https://www.cs.toronto.edu/~hinton/absps/nca.pdf. With
    ``z_ij = -softmax_scale * d_ij`` (``+softmax_scale * s_ij`` for similarities), the softmax
    taken over the references (the sample itself excluded when the reference set is the batch)::

        L_i = -log sum_{j: y_j = y_i} softmax_j(z_i)

    Samples without a same-label reference are left out (zero loss when that is every sample;
    pytorch-metric-learning returns NaN there). With a miner's ``indices_tuple`` each
    term is multiplied by the sample's weight (how often it occurs in the tuple over the largest
    count; only anchors count when ``ref_emb`` is given). Terms are per sample (``"element"``),
    reduced by default with :class:`MeanReducer`. Zero loss for a batch of one. O(N M).

    The log-probability is computed as a difference of log-sum-exps, so it stays finite where the
    softmax of every same-label reference underflows (pytorch-metric-learning drops such rows).

    Args:
        softmax_scale: multiplies the logits.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default
            ``LpDistance(power=2)``, squared Euclidean), ``embedding_regularizer``,
            ``embedding_reg_weight``.
    """

    recordable = ("softmax_scale",)
    requires_labels = True

    def __init__(self, softmax_scale: float = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.softmax_scale = softmax_scale

    def get_default_distance(self) -> BaseDistance:
        return LpDistance(power=2)

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        if len(embeddings) <= 1:
            return self.zero_losses()
        if ref_emb is not embeddings and ref_labels is None:
            V.fail(type(self).__name__, "`ref_labels` together with `ref_emb`", "None")
        # labels are required (checked by the loss base)
        return self.nca_computation(
            embeddings, ref_emb, cast(Tensor, labels), cast(Tensor, ref_labels), indices_tuple
        )

    def nca_computation(
        self,
        query: Tensor,
        reference: Tensor,
        query_labels: Tensor,
        reference_labels: Tensor,
        indices_tuple: IndicesTuple | None,
    ) -> LossDict:
        """NCA terms of ``query`` against ``reference`` (the same object: self excluded)."""
        same_source = query is reference
        weights = T.convert_to_weights(
            indices_tuple, query_labels, dtype=query.dtype, using_ref=not same_source
        )
        same = query_labels[:, None] == reference_labels.to(query_labels.device)[None, :]
        if same_source:
            same.fill_diagonal_(False)
        if not bool(same.any()):  # no sample has a same-label reference (PML: mean of nothing)
            return self.zero_losses()
        mat = self.distance(query, None if same_source else reference)
        losses, kept = nca_terms(
            mat,
            same,
            softmax_scale=self.softmax_scale,
            is_inverted=self.distance.is_inverted,
            exclude_diagonal=same_source,
        )
        indices = torch.arange(len(query), device=query.device)[kept]
        return {
            "loss": {
                "losses": (losses * weights)[kept],
                "indices": indices,
                "reduction_type": "element",
            }
        }
