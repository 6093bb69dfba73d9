"""Loop references for FastAP, Histogram, PNP, Ranked List and Manifold losses (float64, Python
floats), written from the papers' formulas with pytorch-metric-learning's conventions."""

from __future__ import annotations

import math

from reference.pairs import distance_table, dot, normalized


def sigmoid(v: float) -> float:
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


# ------------------------------------------------------------------------------------ FastAP
def fast_ap_terms(x, labels, num_bins=10, power=2, weights=None) -> list[float]:
    """One term ``(1 - FastAP_i) w_i`` per anchor with a positive (Cakir et al. 2019, eq. 9-11):
    triangular kernels on ``num_bins + 1`` nodes over ``[0, 2**power]``."""
    y = labels.tolist()
    n = len(y)
    d = [[v**power for v in row] for row in distance_table(x, x, "l2")]
    top = 2.0**power
    width = top / num_bins
    nodes = [z * width for z in range(num_bins + 1)]
    terms = []
    for i in range(n):
        positives = [j for j in range(n) if j != i and y[j] == y[i]]
        negatives = [j for j in range(n) if y[j] != y[i]]
        if not positives:
            continue
        h_pos = [sum(max(0.0, 1 - abs(d[i][j] - c) / width) for j in positives) for c in nodes]
        h_neg = [sum(max(0.0, 1 - abs(d[i][j] - c) / width) for j in negatives) for c in nodes]
        total, cum_pos, cum_all = 0.0, 0.0, 0.0
        for hp, hn in zip(h_pos, h_neg, strict=True):
            cum_pos += hp
            cum_all += hp + hn
            if hp * cum_pos > 0 and cum_all > 0:
                total += hp * cum_pos / cum_all
        w = 1.0 if weights is None else weights[i]
        terms.append((1 - total / len(positives)) * w)
    return terms


# ------------------------------------------------------------------------------------ Histogram
def _density(values: list[float], delta: float) -> list[float]:
    nodes = round(1 + 2 / delta)
    out = [0.0] * nodes
    for v in values:
        r = min(max(math.floor((v + 1) / delta), 0), nodes - 2)
        left = -1 + r * delta
        share = (v - left) / delta  # to node r + 1
        out[r + 1] += share
        out[r] += 1 - share
    return [c / len(values) for c in out]


def histogram(x, labels=None, delta=0.02, triplets=None) -> float:
    """Ustinova & Lempitsky 2016, eq. 4, over the unordered pairs of all triplets."""
    if triplets is None:
        y = labels.tolist()
        n = len(y)
        triplets = [
            (a, p, m)
            for a in range(n)
            for p in range(n)
            for m in range(n)
            if p != a and y[p] == y[a] and y[m] != y[a]
        ]
    if not triplets:
        return 0.0
    s = distance_table(x, x, "cos")
    pos_pairs = sorted({(min(a, p), max(a, p)) for a, p, _ in triplets})
    neg_pairs = sorted({(min(a, m), max(a, m)) for a, _, m in triplets})
    p_pos = _density([s[i][j] for i, j in pos_pairs], delta)
    p_neg = _density([s[i][j] for i, j in neg_pairs], delta)
    loss, cdf = 0.0, 0.0
    for pp, pn in zip(p_pos, p_neg, strict=True):
        cdf += pp
        loss += pn * cdf
    return loss


def pair_tuple_to_triplets(a1, p, a2, n) -> list[tuple[int, int, int]]:
    return [
        (i, j, k)
        for i, j in zip(a1, p, strict=True)
        for i2, k in zip(a2, n, strict=True)
        if i == i2
    ]


# ------------------------------------------------------------------------------------ PNP
def pnp(x, labels, variant="O", b=2.0, alpha=1.0, anneal=0.01) -> float:
    """Li et al. 2022: mean over queries (with another positive) of the mean over positives
    (the query included) of f(R), R = soft count of negatives ranked above the positive."""
    y = labels.tolist()
    n = len(y)
    s = distance_table(x, x, "cos")
    per_query = []
    for q in range(n):
        if not any(j != q and y[j] == y[q] for j in range(n)):
            continue
        positives = [i for i in range(n) if y[i] == y[q]]  # includes q
        values = []
        for i in positives:
            r = sum(sigmoid((s[q][j] - s[q][i]) / anneal) for j in range(n) if y[j] != y[q])
            if variant == "O":
                values.append(r)
            elif variant == "Ds":
                values.append(math.log(1 + r))
            elif variant == "Dq":
                values.append(1 / (1 + r) ** alpha)
            elif variant == "Iu":
                values.append((1 + r) * math.log(1 + r))
            else:
                values.append((b * r - math.log(1 + b * r)) / b**2)
        per_query.append(sum(values) / len(values))
    if not per_query:
        return 0.0
    loss = sum(per_query) / len(per_query)
    return 1 - loss if variant == "Dq" else loss


# ------------------------------------------------------------------------------------ Ranked List
def ranked_list_terms(x, labels, margin, Tn, imbalance=0.5, alpha=None, Tp=0.0) -> list[float]:
    """Wang et al. 2019, per anchor; pairs at distance 0 are never violators; 1e-5 per column."""
    alpha = 1 + margin / 2 if alpha is None else alpha
    boundary = alpha - margin
    y = labels.tolist()
    n = len(y)
    d = distance_table(x, x, "l2")
    terms = []
    for i in range(n):
        wp_sum = wp_loss = wn_sum = wn_loss = 0.0
        for j in range(n):
            if j == i or d[i][j] <= 0:
                continue
            if y[j] == y[i] and d[i][j] > boundary:
                w = math.exp(Tp * (d[i][j] - boundary))
                wp_sum += w
                wp_loss += w * (d[i][j] - boundary)
            if y[j] != y[i] and d[i][j] < alpha:
                w = math.exp(Tn * (alpha - d[i][j]))
                wn_sum += w
                wn_loss += w * (alpha - d[i][j])
        loss_p = wp_loss / (wp_sum + 1e-5 * n)
        loss_n = wn_loss / (wn_sum + 1e-5 * n)
        terms.append((1 - imbalance) * loss_p + imbalance * loss_n)
    return terms


# ------------------------------------------------------------------------------------ Manifold
def _inverse(a: list[list[float]]) -> list[list[float]]:
    """Gauss-Jordan elimination with partial pivoting."""
    n = len(a)
    m = [row[:] + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(a)]
    for c in range(n):
        pivot = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[pivot] = m[pivot], m[c]
        scale = m[c][c]
        m[c] = [v / scale for v in m[c]]
        for r in range(n):
            if r != c and m[r][c] != 0:
                f = m[r][c]
                m[r] = [v - f * w for v, w in zip(m[r], m[c], strict=True)]
    return [row[n:] for row in m]


def _hinge_term(scores: list[float], own: int, margin: float) -> float:
    total = 0.0
    for k, v in enumerate(scores):
        value = v - scores[own] + margin
        if k != own and value >= 0:
            total += math.exp(value)
    return math.log(1 + total)


def manifold(x, proxies, assignment, lambdaC=1.0, alpha=0.8, margin=5e-4) -> float:
    """Aziere & Todorovic 2019: random-walk similarity F over embeddings + proxies, intrinsic
    and context hinge log-sum-exp terms; lambdaC = inf means context only."""
    import torch

    nodes = normalized(torch.cat([x.double(), proxies.double()]))
    v = len(nodes)
    n = x.shape[0]
    w = [
        [0.0 if i == j else math.exp(max(dot(nodes[i], nodes[j]), 0.0) / 0.5) for j in range(v)]
        for i in range(v)
    ]
    deg = [sum(row) for row in w]
    system = [
        [(1.0 if i == j else 0.0) - alpha * w[i][j] / math.sqrt(deg[i] * deg[j]) for j in range(v)]
        for i in range(v)
    ]
    f = [[(1 - alpha) * val for val in row] for row in _inverse(system)]
    own = assignment.tolist()
    k = v - n
    intrinsic = [_hinge_term(f[i][n:], own[i], margin) for i in range(n)]
    norms = [math.sqrt(dot(row, row)) for row in f]
    cos = [[dot(f[i], f[n + c]) / (norms[i] * norms[n + c]) for c in range(k)] for i in range(n)]
    context = [_hinge_term(cos[i], own[i], margin) for i in range(n)]
    l_int, l_ctx = sum(intrinsic) / n, sum(context) / n
    if math.isinf(lambdaC):
        return l_ctx
    return l_int + lambdaC * l_ctx
