"""Metric losses (PML ``losses``)."""

from .base_metric_loss_function import BaseMetricLossFunction
from .contrastive_loss import ContrastiveLoss
from .fast_ap_loss import FastAPLoss
from .generic_pair_loss import GenericPairLoss
from .histogram_loss import HistogramLoss
from .manifold_loss import ManifoldLoss
from .mixins import EmbeddingRegularizerMixin, WeightRegularizerMixin
from .pnp_loss import PNPLoss
from .ranked_list_loss import RankedListLoss
from .triplet_margin_loss import TripletMarginLoss

__all__ = [
    "BaseMetricLossFunction",
    "ContrastiveLoss",
    "EmbeddingRegularizerMixin",
    "FastAPLoss",
    "GenericPairLoss",
    "HistogramLoss",
    "ManifoldLoss",
    "PNPLoss",
    "RankedListLoss",
    "TripletMarginLoss",
    "WeightRegularizerMixin",
]
