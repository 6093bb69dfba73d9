"""Loop references for distances and pair/triplet enumeration."""

from __future__ import annotations

import math

import torch


def normalized(x: torch.Tensor) -> list[list[float]]:
    rows = []
    for row in x.double().tolist():
        norm = math.sqrt(sum(v * v for v in row))
        rows.append([v / norm for v in row])
    return rows


def euclidean(u: list[float], v: list[float]) -> float:
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))


def dot(u: list[float], v: list[float]) -> float:
    return sum(a * b for a, b in zip(u, v, strict=True))


def distance_table(x, y, kind: str) -> list[list[float]]:
    """``kind``: "l2" (normalised Euclidean) or "cos" (cosine similarity)."""
    xs, ys = normalized(x), normalized(y)
    fn = euclidean if kind == "l2" else dot
    return [[fn(u, v) for v in ys] for u in xs]


def all_pairs(labels, ref_labels, same_source: bool):
    """Positive and negative (i, j) pairs in row-major order."""
    pos, neg = [], []
    for i, li in enumerate(labels):
        for j, lj in enumerate(ref_labels):
            if same_source and i == j:
                continue
            (pos if li == lj else neg).append((i, j))
    return pos, neg


def all_triplets(labels, ref_labels, same_source: bool):
    out = []
    for a, la in enumerate(labels):
        for p, lp in enumerate(ref_labels):
            if lp != la or (same_source and p == a):
                continue
            for n, ln in enumerate(ref_labels):
                if ln != la:
                    out.append((a, p, n))
    return out
