"""Metric losses (PML ``losses``)."""

from .base_metric_loss_function import BaseMetricLossFunction
from .contrastive_loss import ContrastiveLoss
from .generic_pair_loss import GenericPairLoss
from .mixins import EmbeddingRegularizerMixin, WeightRegularizerMixin
from .triplet_margin_loss import TripletMarginLoss

__all__ = [
    "BaseMetricLossFunction",
    "ContrastiveLoss",
    "EmbeddingRegularizerMixin",
    "GenericPairLoss",
    "TripletMarginLoss",
    "WeightRegularizerMixin",
]
