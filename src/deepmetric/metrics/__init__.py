"""Evaluation metrics: ``AccuracyCalculator`` (PML ``utils.accuracy_calculator``) and its
per-class table. Every metric calculator is in the ``METRICS`` registry."""

from .accuracy_calculator import EQUALITY, AccuracyCalculator
from .per_class_table import PerClassTable

__all__ = ["EQUALITY", "AccuracyCalculator", "PerClassTable"]
