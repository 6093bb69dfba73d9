"""Loop references for the classification / proxy losses, from the papers' formulas.

Plain Python floats (float64), one sample / class at a time; independent of src/. ``x`` are
embeddings (rows), ``vectors`` the class vectors as rows (``W.t()``, ``proxies``, ``fc.t()``).
"""

from __future__ import annotations

import math


def _rows(t) -> list[list[float]]:
    return [[float(v) for v in row] for row in t.tolist()]


def norm(u: list[float]) -> float:
    return math.sqrt(sum(a * a for a in u))


def dot(u: list[float], v: list[float]) -> float:
    return sum(a * b for a, b in zip(u, v, strict=True))


def cosine(u: list[float], v: list[float]) -> float:
    return dot(u, v) / (norm(u) * norm(v))


def log_sum_exp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def cross_entropy(logits: list[float], target: int) -> float:
    return log_sum_exp(logits) - logits[target]


def miner_weights(indices_tuple, n: int) -> list[float]:
    """Count / max count over every index of the tuple; all ones for None or an empty tuple."""
    if indices_tuple is None or all(len(t) == 0 for t in indices_tuple):
        return [1.0] * n
    counts = [0] * n
    for t in indices_tuple:
        for i in t.tolist():
            counts[i] += 1
    top = max(counts)
    return [c / top for c in counts]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


# ------------------------------------------------------------------ margin softmax family
def lsoftmax_psi(c: float, m: int) -> float:
    """L-Softmax eq. 6: (-1)^k cos(m theta) - 2k, k = floor(m theta / pi)."""
    theta = math.acos(max(-1.0, min(1.0, c)))
    k = math.floor(theta / (math.pi / m))
    return (-1) ** k * math.cos(m * theta) - 2 * k


def arcface_psi(c: float, m: float) -> float:
    """ArcFace eq. 3 with the monotone continuation past theta = pi - m (m in radians)."""
    theta = math.acos(max(-1.0, min(1.0, c)))
    if theta <= math.pi - m:
        return math.cos(theta + m)
    return math.cos(theta) - m * math.sin(m)


def margin_softmax_loss(
    x,
    labels,
    W,
    *,
    kind: str,
    margin: float,
    scale: float,
    indices_tuple=None,
    sub_centers: int = 1,
) -> float:
    """Mean over samples of w_i * CE(logits_i, y_i).

    ``kind``: "lsoftmax" (logits scaled by ||w_j|| ||x_i|| scale), "sphereface" (||x_i|| scale),
    "arcface" / "cosface" (scale); ``margin`` as the loss stores it (int, radians, cosine).
    ``W`` is ``Tensor[D, C * sub_centers]``; the cosine to a class is the max over its
    sub-centers (column ``c * K + k``).
    """
    xs, ws = _rows(x), _rows(W.t())
    y = labels.tolist()
    weights = miner_weights(indices_tuple, len(xs))
    num_classes = len(ws) // sub_centers
    losses = []
    for i, xi in enumerate(xs):
        logits = []
        for c in range(num_classes):
            cos = max(cosine(xi, ws[c * sub_centers + k]) for k in range(sub_centers))
            if c == y[i]:
                if kind in ("lsoftmax", "sphereface"):
                    cos = lsoftmax_psi(cos, int(margin))
                elif kind == "arcface":
                    cos = arcface_psi(cos, margin)
                else:
                    cos = cos - margin
            if kind == "lsoftmax":
                logits.append(cos * norm(ws[c]) * norm(xi) * scale)
            elif kind == "sphereface":
                logits.append(cos * norm(xi) * scale)
            else:
                logits.append(cos * scale)
        losses.append(weights[i] * cross_entropy(logits, y[i]))
    return _mean(losses)


def normalized_softmax_loss(
    x, labels, W, *, temperature: float, indices_tuple=None, kind: str = "cos"
) -> float:
    """Zhai & Wu 2019: CE over sim(x_i, w_j / ||w_j||) / T; ``kind`` "cos" (default distance),
    "l2" (normalised Euclidean distance, negated)."""
    xs, ws = _rows(x), _rows(W.t())
    y = labels.tolist()
    weights = miner_weights(indices_tuple, len(xs))
    losses = []
    for i, xi in enumerate(xs):
        logits = []
        for wj in ws:
            c = cosine(xi, wj)
            s = c if kind == "cos" else -math.sqrt(max(2 - 2 * c, 0.0))
            logits.append(s / temperature)
        losses.append(weights[i] * cross_entropy(logits, y[i]))
    return _mean(losses)


def p2sgrad_loss(x, labels, weight) -> float:
    """mean_{i, j} (cos_ij - 1[j = y_i])^2, cos_ij = x_i . w_j / ||x_i|| (the class vectors are
    taken to have unit norm, as the loss keeps them)."""
    xs, ws = _rows(x), _rows(weight.t())
    y = labels.tolist()
    terms = []
    for i, xi in enumerate(xs):
        for j, wj in enumerate(ws):
            c = max(-1.0, min(1.0, dot(xi, wj) / norm(xi)))
            terms.append((c - (1.0 if j == y[i] else 0.0)) ** 2)
    return _mean(terms)


# ------------------------------------------------------------------ proxies
def proxy_anchor_terms(
    x, labels, proxies, *, margin: float, alpha: float, indices_tuple=None, kind: str = "cos"
) -> tuple[list[float], list[float]]:
    """Kim et al. 2020 eq. 4, per proxy; miner weights enter as (w - 1) in the exponent.
    ``kind`` "cos" (similarity) or "l2" (normalised Euclidean distance)."""
    xs, ps = _rows(x), _rows(proxies)
    y = labels.tolist()
    w = miner_weights(indices_tuple, len(xs))
    pos, neg = [], []
    for c, pc in enumerate(ps):
        pos_sum, neg_sum = 0.0, 0.0
        for i, xi in enumerate(xs):
            s = cosine(xi, pc)
            if kind == "cos":
                pos_e, neg_e = -alpha * (s - margin), alpha * (s + margin)
            else:
                d = math.sqrt(max(2 - 2 * s, 0.0))
                pos_e, neg_e = alpha * (d - margin), alpha * (-margin - d)
            if y[i] == c:
                pos_sum += math.exp(pos_e + w[i] - 1)
            else:
                neg_sum += math.exp(neg_e + w[i] - 1)
        pos.append(math.log(1 + pos_sum))
        neg.append(math.log(1 + neg_sum))
    return pos, neg


def proxy_anchor_loss(x, labels, proxies, **kwargs) -> float:
    """sum(pos) / #proxies with a positive + sum(neg) / #proxies."""
    pos, neg = proxy_anchor_terms(x, labels, proxies, **kwargs)
    with_pos = len(set(labels.tolist()))
    return sum(pos) / with_pos + sum(neg) / len(neg)


def soft_triple_class_sim(x, fc, *, centers_per_class: int, gamma: float) -> list[list[float]]:
    """Qian et al. 2019 eq. 9: S_ic = sum_k softmax_k(s_ick / gamma) s_ick (cosine s)."""
    xs, cs = _rows(x), _rows(fc.t())
    num_classes = len(cs) // centers_per_class
    out = []
    for xi in xs:
        row = []
        for c in range(num_classes):
            sims = [cosine(xi, cs[c * centers_per_class + k]) for k in range(centers_per_class)]
            top = max(sims)
            e = [math.exp((s - top) / gamma) for s in sims]
            row.append(sum(ek * s for ek, s in zip(e, sims, strict=True)) / sum(e))
        out.append(row)
    return out


def soft_triple_loss(
    x, labels, fc, *, centers_per_class, la, gamma, margin, indices_tuple=None
) -> float:
    """Mean of w_i * CE(la * (S_i - margin * onehot(y_i)), y_i) (eq. 10)."""
    sims = soft_triple_class_sim(x, fc, centers_per_class=centers_per_class, gamma=gamma)
    y = labels.tolist()
    weights = miner_weights(indices_tuple, len(sims))
    losses = []
    for i, row in enumerate(sims):
        logits = [la * (s - (margin if c == y[i] else 0.0)) for c, s in enumerate(row)]
        losses.append(weights[i] * cross_entropy(logits, y[i]))
    return _mean(losses)


# ------------------------------------------------------------------ regularizer, outliers
def regular_face(vectors) -> float:
    """Zhao et al. 2019: mean_i max_{j != i} cos(w_i, w_j)."""
    rows = _rows(vectors)
    return _mean(
        [max(cosine(a, b) for j, b in enumerate(rows) if j != i) for i, a in enumerate(rows)]
    )


def sub_center_outliers(x, labels, W, *, sub_centers: int, threshold_deg: float):
    """Per class present (ascending): dominant sub-center = most frequent nearest one (lowest
    index on ties); outliers = samples with cos to it below cos(threshold). Returns
    (outlier indices by class then index, {class: dominant sub-center})."""
    xs, ws = _rows(x), _rows(W.t())
    y = labels.tolist()
    limit = math.cos(math.radians(threshold_deg))
    outliers, dominant = [], {}
    for c in sorted(set(y)):
        members = [i for i in range(len(xs)) if y[i] == c]
        votes = [0] * sub_centers
        for i in members:
            cos = [cosine(xs[i], ws[c * sub_centers + k]) for k in range(sub_centers)]
            votes[cos.index(max(cos))] += 1
        best = votes.index(max(votes))
        dominant[c] = best
        for i in members:
            if cosine(xs[i], ws[c * sub_centers + best]) < limit:
                outliers.append(i)
    return outliers, dominant
