"""Loop references for k-NN search and the retrieval metrics, written from the definitions.

Rankings order references by (squared Euclidean distance, index); with ``same_source`` query i
is reference i and is left out of its own ranking. ``R`` is the number of matching references
(without the query itself), lone queries (``R == 0``) are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def sq_dist(u: Sequence[float], v: Sequence[float]) -> float:
    return sum((a - b) ** 2 for a, b in zip(u, v, strict=True))


def ranking(query: list, reference: list, i: int, same_source: bool, dist=sq_dist) -> list[int]:
    """Reference indices ordered for query ``i``, nearest first, ties to the smaller index."""
    order = [j for j in range(len(reference)) if not (same_source and j == i)]
    return sorted(order, key=lambda j: (dist(query[i], reference[j]), j))


def knn(query: list, reference: list, k: int, same_source: bool = False, dist=sq_dist):
    """(distances, indices) lists of the k nearest references of each query."""
    out_d, out_i = [], []
    for i in range(len(query)):
        order = ranking(query, reference, i, same_source, dist)[:k]
        out_i.append(order)
        out_d.append([dist(query[i], reference[j]) for j in order])
    return out_d, out_i


def same_label(a: Any, b: Any) -> bool:
    return a == b


def per_query(
    query: list,
    query_labels: list,
    reference: list,
    reference_labels: list,
    same_source: bool,
    k: int | None,
    match: Callable[[Any, Any], bool] = same_label,
) -> list[dict[str, float] | None]:
    """Every metric for each query (None for a lone query), from its first k neighbours."""
    rows: list[dict[str, float] | None] = []
    for i, label in enumerate(query_labels):
        count = sum(1 for lab in reference_labels if match(label, lab))
        r = count - (1 if same_source else 0)
        self_match = match(label, label)
        lone = (count - (1 if self_match else 0) <= 0) if same_source else count == 0
        if lone:
            rows.append(None)
            continue
        order = ranking(query, reference, i, same_source)
        cut = len(order) if k is None else min(k, len(order))
        rel = [match(label, reference_labels[j]) for j in order[:cut]]
        r_cut = min(r, cut)
        found, ap, ap_r, first = 0, 0.0, 0.0, 0
        for pos, hit in enumerate(rel, start=1):
            if hit:
                found += 1
                ap += found / pos
                if pos <= r_cut:
                    ap_r += found / pos
                if not first:
                    first = pos
        dcg = sum(1 / math.log2(pos + 1) for pos, hit in enumerate(rel, start=1) if hit)
        idcg = sum(1 / math.log2(pos + 1) for pos in range(1, min(r, cut) + 1))
        row = {
            "precision_at_1": float(rel[0]) if rel else 0.0,
            "r_precision": sum(rel[:r_cut]) / r_cut if r_cut else math.nan,
            "mean_average_precision_at_r": ap_r / r if r else math.nan,
            "mean_average_precision": ap / r if r else math.nan,
            "mean_reciprocal_rank": 1 / first if first else 0.0,
            "ndcg": dcg / idcg if idcg else math.nan,
        }
        for kk in (1, 2, 3, 5):
            if kk <= cut:
                row[f"precision_at_{kk}"] = sum(rel[:kk]) / kk
                row[f"recall_at_{kk}"] = float(any(rel[:kk]))
                dcg_k = sum(1 / math.log2(p + 1) for p, h in enumerate(rel[:kk], start=1) if h)
                idcg_k = sum(1 / math.log2(p + 1) for p in range(1, min(r, kk) + 1))
                row[f"ndcg_at_{kk}"] = dcg_k / idcg_k
        rows.append(row)
    return rows


def aggregate(
    rows: list[dict[str, float] | None],
    query_labels: list,
    name: str,
    mode: str = "mean",
) -> Any:
    """``mode``: "mean" over queries, "avg_of_avgs" (classes first) or "per_class" (list in
    sorted label order, lone classes left out)."""
    kept = [(row[name], lab) for row, lab in zip(rows, query_labels, strict=True) if row]
    if not kept:
        return math.nan
    if mode == "mean":
        return sum(v for v, _ in kept) / len(kept)
    per_class = {}
    for v, lab in kept:
        per_class.setdefault(lab, []).append(v)
    means = [sum(vs) / len(vs) for _, vs in sorted(per_class.items())]
    return means if mode == "per_class" else sum(means) / len(means)
