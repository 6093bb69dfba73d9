"""``TupletMarginLoss``: positive pairs against their anchor's negatives, with an angular margin."""

from __future__ import annotations

import math
from typing import Any

from .. import _validation as V
from .._registry import LOSSES
from .._types import LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import lse_pair_losses as F
from ._positive_pair_loss import PositivePairLoss


@LOSSES.register
class TupletMarginLoss(PositivePairLoss):
    """Tuplet margin loss, one term per positive pair.

    Yu & Tao, "Deep Metric Learning with Tuplet Margin Loss", ICCV 2019,
    https://openaccess.thecvf.com/content_ICCV_2019/html/Yu_Deep_Metric_Learning_With_Tuplet_Margin_Loss_ICCV_2019_paper.html.
    With cosine similarities, ``theta_ap = acos(s_ap)`` and the negative pairs ``(a, n)`` of the
    anchor::

        L_ap = log(1 + sum_n exp(scale * (s_an - cos(theta_ap - margin))))

    ``margin`` is given in **degrees** and stored in radians (``self.margin``, about 0.1 for the
    default 5.73). Zero loss without a positive or without a negative pair. Terms are
    ``"pos_pair"``, reduced by default with :class:`MeanReducer`. O(N M) time and memory.

    Args:
        margin: angular margin in degrees.
        scale: multiplies the cosine differences.
        **kwargs: ``collect_stats`` (stats ``avg_pos_angle``, ``avg_neg_angle`` in degrees),
            ``reducer``, ``distance`` (must be a :class:`CosineSimilarity`, the default),
            ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("margin", "scale")
    stats = ("avg_pos_angle", "avg_neg_angle")

    def __init__(self, margin: float = 5.73, scale: float = 64, **kwargs: Any) -> None:
        super().__init__(mat_based_loss=False, **kwargs)
        self.margin = math.radians(margin)
        self.scale = scale

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

    def _pair_loss(self, mat: Tensor, a1: Tensor, p: Tensor, negatives: Tensor) -> LossDict:
        if self.collect_stats:
            weight = negatives.to(mat.dtype).flatten()
            self.record_stat("avg_pos_angle", F.angles_in_degrees(mat[a1, p]))
            self.record_stat("avg_neg_angle", F.angles_in_degrees(mat.flatten(), weight))
        losses = F.tuplet_margin_terms(mat, a1, p, negatives, margin=self.margin, scale=self.scale)
        return {"loss": {"losses": losses, "indices": (a1, p), "reduction_type": "pos_pair"}}
