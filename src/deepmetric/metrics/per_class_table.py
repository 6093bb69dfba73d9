"""``PerClassTable``: retrieval metrics per query class, as a table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .._optional import MissingDependencyError


@dataclass
class PerClassTable:
    """One row per query class (sorted as ``torch.unique`` sorts the labels).

    ``labels`` are Python ints (or floats, or tuples for multi-dimensional labels);
    ``num_queries`` counts the class's queries, ``num_relevant`` its matching references (R,
    without the query itself when the reference includes the queries). Metric columns hold the
    class average over its queries; NaN for a class with no match in the reference ("lone").
    """

    labels: list[Any]
    num_queries: list[int]
    num_relevant: list[int]
    columns: dict[str, list[float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, metric: str) -> list[float]:
        return self.columns[metric]

    @property
    def metrics(self) -> list[str]:
        return list(self.columns)

    def to_dict(self) -> dict[str, list[Any]]:
        """Column name -> values, starting with ``label``, ``num_queries``, ``num_relevant``."""
        return {
            "label": list(self.labels),
            "num_queries": list(self.num_queries),
            "num_relevant": list(self.num_relevant),
            **{k: list(v) for k, v in self.columns.items()},
        }

    def rows(self) -> list[dict[str, Any]]:
        """One dict per class."""
        table = self.to_dict()
        return [{k: v[i] for k, v in table.items()} for i in range(len(self))]

    def to_markdown(self, digits: int = 4) -> str:
        """A GitHub-flavoured markdown table."""
        table = self.to_dict()
        head = "| " + " | ".join(table) + " |"
        rule = "|" + "|".join("---" for _ in table) + "|"
        lines = [head, rule]
        for row in self.rows():
            cells = []
            for value in row.values():
                if isinstance(value, float):
                    cells.append("nan" if math.isnan(value) else f"{value:.{digits}f}")
                else:
                    cells.append(str(value))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` (needs pandas)."""
        try:
            import pandas
        except ImportError as err:
            raise MissingDependencyError(
                "PerClassTable.to_pandas needs pandas, which is not installed. "
                "Install it with: pip install pandas"
            ) from err
        return pandas.DataFrame(self.to_dict())
