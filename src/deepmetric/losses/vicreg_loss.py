"""``VICRegLoss``: variance-invariance-covariance regularization of two views."""

from __future__ import annotations

from typing import Any

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..functional import vicreg as F
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class VICRegLoss(BaseMetricLossFunction):
    """VICReg loss between two views ``embeddings`` (Z) and ``ref_emb`` (Z') of the same inputs.

    Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning", ICLR 2022, https://arxiv.org/abs/2105.04906.

    ``L = lambda * s(Z, Z') + mu * (v(Z) + v(Z')) / 2 + nu * (c(Z) + c(Z'))`` with the invariance
    ``s`` (mean squared difference), the variance hinge ``v = mean_d [1 - sqrt(Var_d + eps)]_+``
    and the covariance ``c = sum_{d != e} C_de^2 / D`` (see :mod:`deepmetric.functional.vicreg`).
    Four sub-losses are reduced separately and summed: ``invariance_loss`` (per sample),
    ``variance_loss1`` / ``variance_loss2`` (per dimension, one per view) and
    ``covariance_loss`` (already reduced).

    Call it as ``loss(z1, ref_emb=z2)``: labels and ``indices_tuple`` are not supported, and
    ``ref_emb`` is required (without the second view the loss would be meaningless).

    Args:
        invariance_lambda: weight ``lambda`` of the invariance term.
        variance_mu: weight ``mu`` of the variance terms.
        covariance_v: weight ``nu`` of the covariance terms.
        eps: added to the variance before the square root (>= 0).
        **kwargs: ``collect_stats``, ``reducer`` (default :class:`MeanReducer` per sub-loss).
            ``distance`` and ``embedding_regularizer`` are refused (ValueError).
    """

    recordable = ("invariance_lambda", "variance_mu", "covariance_v", "eps")
    requires_labels_or_indices_tuple = False
    supports_labels = False
    supports_indices_tuple = False

    def __init__(
        self,
        invariance_lambda: float = 25,
        variance_mu: float = 25,
        covariance_v: float = 1,
        eps: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        for key in ("distance", "embedding_regularizer"):
            if key in kwargs:
                V.fail("VICRegLoss", f"no `{key}` (VICReg uses neither)", f"{key}=...")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
            V.fail("VICRegLoss", "`eps` to be a number >= 0", repr(eps))
        super().__init__(**kwargs)
        self.invariance_lambda = invariance_lambda
        self.variance_mu = variance_mu
        self.covariance_v = covariance_v
        self.eps = eps

    def _sub_loss_names(self) -> list[str]:
        return ["invariance_loss", "variance_loss1", "variance_loss2", "covariance_loss"]

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        if ref_emb is embeddings:
            V.fail(
                "VICRegLoss",
                "`ref_emb`, the second view",
                "none (ref_emb missing, or the embeddings themselves)",
                "Call loss(z1, ref_emb=z2).",
            )
        if ref_emb.shape != embeddings.shape:
            V.fail(
                "VICRegLoss",
                f"`ref_emb` of the embeddings' shape {tuple(embeddings.shape)}",
                str(tuple(ref_emb.shape)),
            )
        n, d = embeddings.shape
        if n < 2:
            V.fail("VICRegLoss", "a batch of at least 2 (variances need N >= 2)", f"N={n}")
        invariance = self.invariance_lambda * F.invariance_terms(embeddings, ref_emb)
        variance1 = self.variance_mu * F.variance_terms(embeddings, eps=self.eps)
        variance2 = self.variance_mu * F.variance_terms(ref_emb, eps=self.eps)
        covariance = self.covariance_v * (
            F.covariance_term(embeddings) + F.covariance_term(ref_emb)
        )
        samples = torch.arange(n, device=embeddings.device)
        dims = torch.arange(d, device=embeddings.device)
        return {
            "invariance_loss": {
                "losses": invariance,
                "indices": samples,
                "reduction_type": "element",
            },
            "variance_loss1": {"losses": variance1, "indices": dims, "reduction_type": "element"},
            "variance_loss2": {"losses": variance2, "indices": dims, "reduction_type": "element"},
            "covariance_loss": {
                "losses": covariance,
                "indices": None,
                "reduction_type": "already_reduced",
            },
        }
