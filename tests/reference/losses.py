"""Loop references for losses, from the formulas (float64, Python floats)."""

from __future__ import annotations

import math

from reference.pairs import all_pairs, all_triplets, distance_table


def relu(v: float) -> float:
    return max(v, 0.0)


def softplus(v: float) -> float:
    return math.log1p(math.exp(-abs(v))) + max(v, 0.0)


def avg_nonzero(values: list[float]) -> float:
    kept = [v for v in values if v > 0]
    return sum(kept) / len(kept) if kept else 0.0


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def contrastive(
    x,
    labels,
    pos_margin=0.0,
    neg_margin=1.0,
    kind="l2",
    ref=None,
    ref_labels=None,
    pairs=None,
    reduce=avg_nonzero,
) -> float:
    """Hadsell et al. 2006: [d - m_pos]_+ on positives, [m_neg - d]_+ on negatives (flipped for
    similarities); each side reduced separately, then summed."""
    same = ref is None
    ref, ref_labels = (x, labels) if same else (ref, ref_labels)
    d = distance_table(x, ref, kind)
    if pairs is None:
        pos, neg = all_pairs(labels.tolist(), ref_labels.tolist(), same)
    else:
        pos, neg = pairs
    if kind == "cos":
        pos_terms = [relu(pos_margin - d[i][j]) for i, j in pos]
        neg_terms = [relu(d[i][j] - neg_margin) for i, j in neg]
    else:
        pos_terms = [relu(d[i][j] - pos_margin) for i, j in pos]
        neg_terms = [relu(neg_margin - d[i][j]) for i, j in neg]
    return reduce(pos_terms) + reduce(neg_terms)


def triplet_terms(
    x,
    labels,
    margin=0.05,
    swap=False,
    smooth=False,
    kind="l2",
    ref=None,
    ref_labels=None,
    triplets=None,
) -> list[float]:
    """[d_ap - d_an + m]_+ per triplet (s_an - s_ap + m for similarities); swap uses the
    closer of (a, n) and (p, n); smooth uses softplus."""
    same = ref is None
    ref, ref_labels = (x, labels) if same else (ref, ref_labels)
    d = distance_table(x, ref, kind)
    if triplets is None:
        triplets = all_triplets(labels.tolist(), ref_labels.tolist(), same)
    terms = []
    for a, p, n in triplets:
        dap, dan = d[a][p], d[a][n]
        if swap:
            dpn = d[p][n]
            dan = max(dan, dpn) if kind == "cos" else min(dan, dpn)
        v = (dan - dap + margin) if kind == "cos" else (dap - dan + margin)
        terms.append(softplus(v) if smooth else relu(v))
    return terms
