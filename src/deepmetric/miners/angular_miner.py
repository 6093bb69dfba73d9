"""``AngularMiner``: triplets whose angle at the negative exceeds a threshold."""

from __future__ import annotations

import math
from typing import Any

from .._registry import MINERS
from .._types import Tensor, TripletIndices
from ..distances import BaseDistance
from ..functional import mining as F
from ..functional import tuples as T
from .base_tuple_miner import BaseTupleMiner, require_unit_l2


@MINERS.register
class AngularMiner(BaseTupleMiner):
    """Triplets ``(a, p, n)`` with ``atan(||x_a - x_p|| / (2 ||x_n - c||)) > angle``,
    ``c = (x_a + x_p) / 2``: the angle at ``x_n`` that the angular loss bounds.

    Wang et al., "Deep Metric Learning with Angular Loss", ICCV 2017,
    https://arxiv.org/abs/1708.01682 (sec. 3.2). Computed on the raw (un-normalised)
    embeddings, like PML, block by block: every triplet is scored, none is stored unless kept.
    Output ordered by anchor, positive, negative.

    Args:
        angle: threshold in **degrees**; stored in radians (``self.angle``), as in PML.
        **kwargs: ``distance`` (must be ``LpDistance(p=2, power=1, normalize_embeddings=True)``,
            the default), ``collect_stats``.

    Stats (degrees, over every triplet before selection): ``average_angle``, ``min_angle``,
    ``max_angle``, ``std_of_angle``, ``average_angle_above_threshold``,
    ``average_angle_below_threshold``.
    """

    recordable = ("angle",)
    stats = (
        "average_angle",
        "average_angle_above_threshold",
        "average_angle_below_threshold",
        "min_angle",
        "max_angle",
        "std_of_angle",
    )

    def __init__(self, angle: float = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.angle = math.radians(angle)

    def check_distance(self, distance: BaseDistance) -> None:
        require_unit_l2(type(self).__name__, distance)

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
    ) -> TripletIndices:
        pos, neg = T.get_matches_and_diffs(labels, ref_labels)
        triplets, stats = F.angular_select(
            embeddings, ref_emb, pos, neg, angle=self.angle, with_stats=self.collect_stats
        )
        if stats is not None:
            self.set_stats(stats)
        return triplets

    def set_stats(self, stats: F.AngleStats) -> None:
        """Record the angle statistics in degrees (left at 0 when there is nothing to average)."""
        count = float(stats.num)
        if count == 0:
            return
        deg = 180 / math.pi
        variance = (stats.total_sq - stats.total**2 / count).clamp_min(0) / (count - 1)
        self.record_stat("average_angle", stats.total / count * deg)
        self.record_stat("min_angle", stats.minimum * deg)
        self.record_stat("max_angle", stats.maximum * deg)
        self.record_stat("std_of_angle", variance.sqrt() * deg)
        above = float(stats.num_above)
        if above > 0:
            self.record_stat("average_angle_above_threshold", stats.total_above / above * deg)
        if count - above > 0:
            below = (stats.total - stats.total_above) / (count - above)
            self.record_stat("average_angle_below_threshold", below * deg)
