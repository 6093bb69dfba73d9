"""Trainers: PML-compatible training loops (plus AMP, checkpoint/resume and progress bars)."""

from .base_trainer import BaseTrainer
from .cascaded_embeddings import CascadedEmbeddings
from .deep_adversarial_metric_learning import DeepAdversarialMetricLearning
from .metric_loss_only import MetricLossOnly
from .train_with_classifier import TrainWithClassifier
from .two_stream_metric_loss import TwoStreamMetricLoss
from .unsupervised_embeddings_using_augmentations import UnsupervisedEmbeddingsUsingAugmentations

__all__ = [
    "BaseTrainer",
    "CascadedEmbeddings",
    "DeepAdversarialMetricLearning",
    "MetricLossOnly",
    "TrainWithClassifier",
    "TwoStreamMetricLoss",
    "UnsupervisedEmbeddingsUsingAugmentations",
]
