"""PML-compatible ``utils.accuracy_calculator``: re-exports only.

Not provided: PML's module-level helpers (``r_precision``, ``mean_average_precision``,
``get_relevance_mask``, ``get_label_match_counts``, ...); the math is in
:mod:`deepmetric.functional.retrieval`.
"""

from __future__ import annotations

from ..metrics.accuracy_calculator import EQUALITY, AccuracyCalculator
from ..metrics.per_class_table import PerClassTable

__all__ = ["EQUALITY", "AccuracyCalculator", "PerClassTable"]
