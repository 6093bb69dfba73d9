"""Float64 loop references for the log-sum-exp pair losses and NCA, from the papers' formulas.

Every function takes embeddings ``x`` (and optionally a reference set), a distance ``kind`` and
either labels or explicit pair lists, and returns plain Python floats. Nothing here is vectorised.

Distance kinds: "l2" (Euclidean between unit vectors), "l2sq" (its square), "l2raw" (Euclidean,
not normalised), "cos" (cosine similarity), "dot" (dot product, not normalised).
"""

from __future__ import annotations

import math

from reference.pairs import all_pairs, dot, euclidean, normalized

SIMILARITIES = {"cos", "dot"}


def table(x, ref, kind: str) -> list[list[float]]:
    raw = kind in ("l2raw", "dot")
    xs = x.double().tolist() if raw else normalized(x)
    rs = ref.double().tolist() if raw else normalized(ref)
    if kind in SIMILARITIES:
        return [[dot(u, v) for v in rs] for u in xs]
    power = 2 if kind == "l2sq" else 1
    return [[euclidean(u, v) ** power for v in rs] for u in xs]


def lse(values: list[float]) -> float:
    """log(sum(exp(v))); -inf for an empty list."""
    if not values:
        return -math.inf
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def log1p_sum_exp(values: list[float]) -> float:
    """log(1 + sum(exp(v))) = log(exp(0) + sum(exp(v)))."""
    return lse([0.0, *values])


def softplus(v: float) -> float:
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


def relu(v: float) -> float:
    return max(v, 0.0)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def avg_nonzero(values: list[float]) -> float:
    kept = [v for v in values if v > 0]
    return sum(kept) / len(kept) if kept else 0.0


def _setup(x, labels, kind, ref, ref_labels, pairs):
    same = ref is None
    ref, ref_labels = (x, labels) if same else (ref, ref_labels)
    d = table(x, ref, kind)
    if pairs is None:
        pos, neg = all_pairs(labels.tolist(), ref_labels.tolist(), same)
    else:
        pos, neg = pairs
    return d, pos, neg


def _by_anchor(pairs, n: int, unique: bool = True) -> list[list[int]]:
    rows: list[list[int]] = [[] for _ in range(n)]
    for i, j in pairs:
        if unique and j in rows[i]:
            continue
        rows[i].append(j)
    return rows


# ---------------------------------------------------------------------------- per anchor
def circle(x, labels=None, m=0.4, gamma=80.0, kind="cos", ref=None, ref_labels=None, pairs=None):
    """Sun et al. 2020, eq. 6 with O_p = 1+m, O_n = -m, D_p = 1-m, D_n = m; 0 for an anchor that
    lacks positives or negatives."""
    d, pos, neg = _setup(x, labels, kind, ref, ref_labels, pairs)
    P, N = _by_anchor(pos, len(d)), _by_anchor(neg, len(d))
    out = []
    for i in range(len(d)):
        if not P[i] or not N[i]:
            out.append(0.0)
            continue
        lp = [-gamma * relu(1 + m - d[i][j]) * (d[i][j] - (1 - m)) for j in P[i]]
        ln = [gamma * relu(d[i][j] + m) * (d[i][j] - m) for j in N[i]]
        out.append(softplus(lse(lp) + lse(ln)))
    return out


def multi_similarity(
    x,
    labels=None,
    alpha=2.0,
    beta=50.0,
    base=0.5,
    kind="cos",
    ref=None,
    ref_labels=None,
    pairs=None,
):
    """Wang et al. 2019, eq. 12 (for distances the roles of d - base and base - d swap)."""
    d, pos, neg = _setup(x, labels, kind, ref, ref_labels, pairs)
    P, N = _by_anchor(pos, len(d)), _by_anchor(neg, len(d))
    sim = kind in SIMILARITIES
    out = []
    for i in range(len(d)):
        if sim:
            pos_terms = [-alpha * (d[i][j] - base) for j in P[i]]
            neg_terms = [beta * (d[i][j] - base) for j in N[i]]
        else:
            pos_terms = [alpha * (d[i][j] - base) for j in P[i]]
            neg_terms = [beta * (base - d[i][j]) for j in N[i]]
        out.append(log1p_sum_exp(pos_terms) / alpha + log1p_sum_exp(neg_terms) / beta)
    return out


def supcon(x, labels=None, temperature=0.1, kind="cos", ref=None, ref_labels=None, pairs=None):
    """Khosla et al. 2020, eq. 2 (L_out): mean over positives of -log softmax over P u N."""
    d, pos, neg = _setup(x, labels, kind, ref, ref_labels, pairs)
    P, N = _by_anchor(pos, len(d)), _by_anchor(neg, len(d))
    sign = 1.0 if kind in SIMILARITIES else -1.0
    out = []
    for i in range(len(d)):
        if not P[i]:
            out.append(0.0)
            continue
        logits = {j: sign * d[i][j] / temperature for j in P[i] + N[i]}
        denom = lse(list(logits.values()))
        out.append(-sum(logits[j] - denom for j in P[i]) / len(P[i]))
    return out


def generalized_lifted(
    x, labels=None, neg_margin=1.0, pos_margin=0.0, kind="l2", ref=None, ref_labels=None, pairs=None
):
    """Hermans et al. 2017, sec. 2; an empty set's log-sum-exp counts as 0 (PML)."""
    d, pos, neg = _setup(x, labels, kind, ref, ref_labels, pairs)
    P, N = _by_anchor(pos, len(d)), _by_anchor(neg, len(d))
    sim = kind in SIMILARITIES
    out = []
    for i in range(len(d)):
        if sim:
            pt = [pos_margin - d[i][j] for j in P[i]]
            nt = [d[i][j] - neg_margin for j in N[i]]
        else:
            pt = [d[i][j] - pos_margin for j in P[i]]
            nt = [neg_margin - d[i][j] for j in N[i]]
        total = (lse(pt) if pt else 0.0) + (lse(nt) if nt else 0.0)
        out.append(relu(total))
    return out


# ---------------------------------------------------------------------------- per positive pair
def ntxent(x, labels=None, temperature=0.07, kind="cos", ref=None, ref_labels=None, pairs=None):
    """-log(e^{x_ap} / (e^{x_ap} + sum_n e^{x_an})), negatives = negative pairs of the anchor
    (repeated pairs count repeatedly)."""
    d, pos, neg = _setup(x, labels, kind, ref, ref_labels, pairs)
    sign = 1.0 if kind in SIMILARITIES else -1.0
    out = []
    for a, p in pos:
        x_ap = sign * d[a][p] / temperature
        negs = [sign * d[a2][n] / temperature for a2, n in neg if a2 == a]
        out.append(-(x_ap - lse([x_ap, *negs])))
    return out


def lifted(
    x, labels=None, neg_margin=1.0, pos_margin=0.0, kind="l2", ref=None, ref_labels=None, pairs=None
):
    """Oh Song et al. 2016, eq. 4: [LSE over negatives of i or j + pos term]_+^2 / 2."""
    d, pos, neg = _setup(x, labels, kind, ref, ref_labels, pairs)
    sim = kind in SIMILARITIES
    out = []
    for i, j in pos:
        negs = [
            (d[k][c] - neg_margin) if sim else (neg_margin - d[k][c]) for k, c in neg if k in (i, j)
        ]
        pos_term = (pos_margin - d[i][j]) if sim else (d[i][j] - pos_margin)
        value = (lse(negs) if negs else 0.0) + pos_term
        out.append(relu(value) ** 2 / 2)
    return out


def tuplet(x, labels=None, margin_deg=5.73, scale=64.0, ref=None, ref_labels=None, pairs=None):
    """Yu & Tao 2019, eq. 5: log(1 + sum_n exp(s (cos theta_an - cos(theta_ap - beta))))."""
    d, pos, neg = _setup(x, labels, "cos", ref, ref_labels, pairs)
    beta = math.radians(margin_deg)
    out = []
    for a, p in pos:
        target = math.cos(math.acos(max(-1.0, min(1.0, d[a][p]))) - beta)
        terms = [scale * (d[a2][n] - target) for a2, n in neg if a2 == a]
        out.append(log1p_sum_exp(terms))
    return out


# ---------------------------------------------------------------------------- NCA
def nca(x, labels, softmax_scale=1.0, kind="l2sq", ref=None, ref_labels=None, weights=None):
    """Goldberger et al. 2004: -log sum_{same label} softmax(-scale d) (the sample itself left out
    when there is no separate reference). Returns (row index, loss) for rows with a positive."""
    same = ref is None
    ref, ref_labels = (x, labels) if same else (ref, ref_labels)
    d = table(x, ref, kind)
    sign = 1.0 if kind in SIMILARITIES else -1.0
    ys, ref_ys = labels.tolist(), ref_labels.tolist()
    out = []
    for i, row in enumerate(d):
        cols = [j for j in range(len(row)) if not (same and j == i)]
        logits = {j: softmax_scale * sign * row[j] for j in cols}
        pos = [logits[j] for j in cols if ref_ys[j] == ys[i]]
        if not pos:
            continue
        w = 1.0 if weights is None else weights[i]
        out.append((i, -(lse(pos) - lse(list(logits.values()))) * w))
    return out


def tuple_weights(indices_tuple, n: int, anchors_only: bool = False) -> list[float]:
    """Per-sample weight: occurrences in the tuple over the largest count (all ones if empty)."""
    groups = list(indices_tuple)
    if all(len(t) == 0 for t in groups):
        return [1.0] * n
    if anchors_only:
        groups = [groups[0]] if len(groups) == 3 else [groups[0], groups[2]]
    counts = [0] * n
    for t in groups:
        for i in t.tolist():
            counts[i] += 1
    top = max(counts)
    return [c / top for c in counts]
