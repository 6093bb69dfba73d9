"""``RankedListLoss``: separate positives and negatives of every anchor by a margin."""

from __future__ import annotations

import warnings
from typing import Any, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..functional import ranking_losses as F
from ..functional import tuples as T
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class RankedListLoss(BaseMetricLossFunction):
    """Ranked List loss (RLL): push negatives beyond ``alpha`` and pull positives within
    ``alpha - margin``, weighting violators by how far they are inside.

    Wang, Hua, Kodirov, Hu, Garnier, Robertson, "Ranked List Loss for Deep Metric Learning",
    CVPR 2019, https://arxiv.org/abs/1903.03238.

    Per anchor, with ``beta = alpha - margin``, violating positives ``P*`` (``d > beta``) and
    negatives ``N*`` (``d < alpha``)::

        L_P = sum_{P*} w (d - beta) / (sum_{P*} w + 1e-5 N),   w = exp(Tp (d - beta))
        L_N = sum_{N*} w (alpha - d) / (sum_{N*} w + 1e-5 N),  w = exp(Tn (alpha - d))
        L   = (1 - imbalance) L_P + imbalance L_N

    One term per anchor (``"element"``, all anchors), reduced with ``MeanReducer`` by default.
    Like pytorch-metric-learning, pairs at distance exactly 0 never count as violators.
    ``Tp = 0`` gives the simpler RLL of the paper.

    Args:
        margin: gap between the positive boundary and the negative boundary (required).
        Tn: temperature of the negative weights (required).
        imbalance: weight of the negative term, in ``[0, 1]``.
        alpha: the negative boundary; default ``1 + margin / 2``.
        Tp: temperature of the positive weights.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default ``LpDistance()``),
            ``embedding_regularizer``, ``embedding_reg_weight``.

    A ``UserWarning`` is issued when ``Tp`` or ``Tn`` exceeds 5 (``exp`` may overflow).
    """

    recordable = ("imbalance", "alpha", "margin", "Tp", "Tn")
    requires_labels = True
    supports_indices_tuple = False
    supports_ref_emb = False

    def __init__(
        self,
        margin: float,
        Tn: float,
        imbalance: float = 0.5,
        alpha: float | None = None,
        Tp: float = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= imbalance <= 1:
            V.fail(type(self).__name__, "`imbalance` in [0, 1]", repr(imbalance))
        if Tp > 5 or Tn > 5:
            warnings.warn(
                f"RankedListLoss: Tp={Tp!r} or Tn={Tn!r} is above 5; such temperatures may "
                "overflow exp().",
                UserWarning,
                stacklevel=2,
            )
        self.margin = margin
        self.imbalance = imbalance
        self.alpha = alpha if alpha is not None else 1 + margin / 2
        self.Tp = Tp
        self.Tn = Tn

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        labels = cast(Tensor, labels)  # guaranteed by `requires_labels`
        pos, neg = T.get_matches_and_diffs(labels)
        mat = self.distance(embeddings)
        losses = F.ranked_list_terms(
            mat,
            pos,
            neg,
            margin=self.margin,
            alpha=self.alpha,
            imbalance=self.imbalance,
            Tp=self.Tp,
            Tn=self.Tn,
        )
        indices = torch.arange(len(losses), device=losses.device)
        return {"loss": {"losses": losses, "indices": indices, "reduction_type": "element"}}
