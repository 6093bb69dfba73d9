"""Evaluate each label level only among items that share the parent label (the next column)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .._validation import fail
from .base_tester import BaseTester


class WithSameParentLabelTester(BaseTester):
    """Labels must have at least two columns; level ``L`` is scored separately for each parent
    label ``labels[:, L + 1]`` of the queries, among the queries and references with that parent,
    and the stored value is the mean over those groups. Levels with no parent column are dropped.

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
        num_columns = query_labels.shape[1]
        levels = [x for x in self.label_levels_to_evaluate(query_labels) if x < num_columns - 1]
        if not levels:
            fail(
                type(self).__name__,
                "a `label_hierarchy_level` below the last label column (the parents are the "
                "next column), and labels with >= 2 columns",
                f"level {self.label_hierarchy_level!r} with {num_columns} label column(s)",
            )
        self.label_levels = levels
        includes_query = self.ref_includes_query(query_split_name, reference_split_names)
        calculator = self.accuracy_calculator
        for level in levels:
            per_metric: defaultdict[str, list[Any]] = defaultdict(list)
            query_parents = query_labels[:, level + 1]
            reference_parents = reference_labels[:, level + 1]
            for parent in torch.unique(query_parents):
                q_mask = query_parents == parent
                r_mask = reference_parents == parent
                result = calculator.get_accuracy(
                    query[q_mask],
                    query_labels[q_mask, level],
                    reference[r_mask],
                    reference_labels[r_mask, level],
                    includes_query,
                )
                for metric, value in result.items():
                    per_metric[metric].append(value)
            for metric, values in per_metric.items():
                accuracies[self.accuracies_keyname(metric, level)] = float(np.mean(values))
        if len(levels) > 1:
            self.calculate_average_accuracies(accuracies, calculator.get_curr_metrics(), levels)
