"""Evaluate each query split against its reference splits in one global embedding space."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base_tester import BaseTester


class GlobalEmbeddingSpaceTester(BaseTester):
    """For each evaluated label level ``L``: ``accuracy_calculator.get_accuracy(query,
    query_labels[:, L], reference, reference_labels[:, L], ref_includes_query)``, stored as
    ``"<metric>_level<L>"``; with several levels also ``"AVERAGE_<metric>"``.

    Constructor arguments: see :class:`BaseTester`.
    """

    def do_knn_and_accuracies(
        self,
        accuracies: dict[str, Any],
        embeddings_and_labels: Mapping[str, Any],
        query_split_name: str,
        reference_split_names: Sequence[str],
    ) -> None:
        query, query_labels, reference, reference_labels = self.set_reference_and_query(
            embeddings_and_labels, query_split_name, reference_split_names
        )
        self.label_levels = self.label_levels_to_evaluate(query_labels)
        includes_query = self.ref_includes_query(query_split_name, reference_split_names)
        calculator = self.accuracy_calculator
        for level in self.label_levels:
            result = calculator.get_accuracy(
                query,
                query_labels[:, level],
                reference,
                reference_labels[:, level],
                includes_query,
            )
            for metric, value in result.items():
                accuracies[self.accuracies_keyname(metric, level)] = value
        if len(self.label_levels) > 1:
            self.calculate_average_accuracies(
                accuracies, calculator.get_curr_metrics(), self.label_levels
            )
