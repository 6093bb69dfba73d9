"""``AngularLoss``: bound the angle at the negative of every (positive pair, negative)."""

from __future__ import annotations

import math
from typing import Any, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, PairMasks, Tensor
from ..distances import BaseDistance, LpDistance
from ..functional import angular_losses as F
from ..functional import tuples as T
from ._reference_labels import check_ref_labels
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class AngularLoss(BaseMetricLossFunction):
    """Angular loss in its N-pair form.

    Wang et al., "Deep Metric Learning with Angular Loss", ICCV 2017,
    https://arxiv.org/abs/1708.01682. For each positive pair ``(a, p)`` (unit vectors) and the
    negatives ``n`` of the anchor::

        L_ap = log(1 + sum_n exp(4 tan^2(alpha) (x_a + x_p)^T x_n - 2 (1 + tan^2(alpha)) x_a^T x_p))

    Positive pairs come from the labels or from a miner's ``indices_tuple``; the negatives are
    **always** every reference row whose label differs from the anchor's (a tuple's negatives
    only decide whether there are any), and are used as given, not normalised -- as in
    pytorch-metric-learning. Reduced per positive pair (``"pos_pair"``, default mean).

    Memory: O(N M) plus one block of logits, never ``P x M`` (P positive pairs).

    Args:
        alpha: the angle bound, in **degrees** (stored as ``self.alpha``, a float64 tensor in
            radians).
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (must be
            ``LpDistance(p=2, power=1, normalize_embeddings=True)``, the default),
            ``embedding_regularizer``, ``embedding_reg_weight``.

    Stats (with ``collect_stats``): ``average_angle`` -- mean angle at the negative, degrees.
    """

    requires_labels = True
    supports_pair_masks = True
    recordable = ("alpha",)
    stats = ("average_angle",)

    def __init__(self, alpha: float = 40, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = torch.tensor(math.radians(alpha), dtype=torch.float64)

    def check_distance(self, distance: BaseDistance) -> None:
        ok = (
            isinstance(distance, LpDistance)
            and distance.p == 2
            and distance.power == 1
            and distance.normalize_embeddings
        )
        if not ok:
            V.fail(
                type(self).__name__,
                "`distance` to be LpDistance(p=2, power=1, normalize_embeddings=True)",
                repr(distance),
            )

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        owner = type(self).__name__
        check_ref_labels(owner, embeddings, labels, ref_emb, ref_labels, required=True)
        labels, ref_labels = cast(Tensor, labels), cast(Tensor, ref_labels)  # both validated
        if isinstance(indices_tuple, PairMasks):
            a1, p = torch.where(indices_tuple.pos)
            has_neg = bool(indices_tuple.neg.any())
        else:
            a1, p, a2, _ = T.convert_to_pairs(indices_tuple, labels, ref_labels)
            has_neg = len(a2) > 0
        if len(a1) == 0 or not has_neg:
            return self.zero_losses()
        anchors = self.distance.normalize(embeddings)
        positives = anchors if ref_emb is embeddings else self.distance.normalize(ref_emb)
        args = (anchors, positives, ref_emb, a1, p, labels, ref_labels)
        if self.collect_stats:
            self.record_stat("average_angle", F.angular_average_angle(*args))
        losses = F.angular_pair_terms(*args, alpha=float(self.alpha))
        return {"loss": {"losses": losses, "indices": (a1, p), "reduction_type": "pos_pair"}}
