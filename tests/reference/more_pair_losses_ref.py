"""Float64 loop references for Angular, IntraPairVariance, SNR-contrastive, N-pairs, Instance,
Margin, Threshold-Consistent-Margin and Dynamic-Soft-Margin losses, written from the formulas.

Every function walks pairs/triplets with plain Python loops over lists of floats; nothing here
is vectorised, so it shares no code path with ``src/``.
"""

from __future__ import annotations

import math

from reference.pairs import all_pairs, all_triplets, dot, normalized


def _rows(x) -> list[list[float]]:
    return x.double().tolist()


def _relu(v: float) -> float:
    return max(v, 0.0)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def avg_nonzero(values: list[float]) -> float:
    kept = [v for v in values if v > 0]
    return sum(kept) / len(kept) if kept else 0.0


def _log1p_sum_exp(values: list[float]) -> float:
    """log(1 + sum(exp(v))) with a max shift."""
    if not values:
        return 0.0
    m = max(max(values), 0.0)
    return m + math.log(math.exp(-m) + sum(math.exp(v - m) for v in values))


def _euclid(u: list[float], v: list[float]) -> float:
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))


def _table(x, y, kind: str) -> list[list[float]]:
    """``kind``: "l2" (normalised Euclidean), "l2sq" (its square), "cos" (cosine), "dot" (raw
    inner product), "snr" (signal-to-noise ratio of normalised rows)."""
    if kind == "dot":
        xs, ys = _rows(x), _rows(y)
        return [[dot(u, v) for v in ys] for u in xs]
    xs, ys = normalized(x), normalized(y)
    if kind == "cos":
        return [[dot(u, v) for v in ys] for u in xs]
    if kind == "snr":
        return [
            [_variance([a - b for a, b in zip(u, v, strict=True)]) / _variance(u) for v in ys]
            for u in xs
        ]
    power = 2 if kind == "l2sq" else 1
    return [[_euclid(u, v) ** power for v in ys] for u in xs]


def _variance(values: list[float]) -> float:
    """Unbiased sample variance."""
    m = sum(values) / len(values)
    return sum((v - m) ** 2 for v in values) / (len(values) - 1)


# ----------------------------------------------------------------------------------- angular
def angular_terms(x, labels, alpha_deg=40.0, ref=None, ref_labels=None, pos_pairs=None):
    """Wang et al. 2017: for each positive pair (a, p), with unit x_a, x_p and every reference
    row n of another label (taken as it is, not normalised, like PML),
    L_ap = log(1 + sum_n exp(4 tan^2(alpha) (x_a + x_p)^T x_n - 2 (1 + tan^2(alpha)) x_a^T x_p))."""
    same = ref is None
    ref, ref_labels = (x, labels) if same else (ref, ref_labels)
    lab, ref_lab = labels.tolist(), ref_labels.tolist()
    xs, rs_unit, rs_raw = normalized(x), normalized(ref), _rows(ref)
    if pos_pairs is None:
        pos_pairs, _ = all_pairs(lab, ref_lab, same)
    t2 = math.tan(math.radians(alpha_deg)) ** 2
    terms = []
    for a, p in pos_pairs:
        xa, xp = xs[a], rs_unit[p]
        s = [u + v for u, v in zip(xa, xp, strict=True)]
        f = [
            4 * t2 * dot(s, rs_raw[n]) - 2 * (1 + t2) * dot(xa, xp)
            for n in range(len(ref_lab))
            if ref_lab[n] != lab[a]
        ]
        terms.append(_log1p_sum_exp(f))
    return terms


def angular_average_angle(x, labels, ref=None, ref_labels=None):
    """Mean over (positive pair, negative) of atan(|x_a - x_p| / (2 |c - x_n|)), c the pair
    centre, in degrees (negatives taken raw)."""
    same = ref is None
    ref, ref_labels = (x, labels) if same else (ref, ref_labels)
    lab, ref_lab = labels.tolist(), ref_labels.tolist()
    xs, rs_unit, rs_raw = normalized(x), normalized(ref), _rows(ref)
    pos_pairs, _ = all_pairs(lab, ref_lab, same)
    angles = []
    for a, p in pos_pairs:
        xa, xp = xs[a], rs_unit[p]
        ap = _euclid(xa, xp)
        c = [(u + v) / 2 for u, v in zip(xa, xp, strict=True)]
        for n in range(len(ref_lab)):
            if ref_lab[n] != lab[a]:
                angles.append(math.atan(ap / (2 * _euclid(c, rs_raw[n]))))
    return math.degrees(mean(angles))


# ----------------------------------------------------------------------- intra-pair variance
def intra_pair_variance(
    x, labels, pos_eps=0.01, neg_eps=0.01, kind="cos", pairs=None, ref=None, ref_labels=None
):
    """Yu & Tao 2019: with mu+ / mu- the mean positive / negative similarity,
    pos_k = [(1 - eps+) mu+ - s_k]_+^2, neg_k = [s_k - (1 + eps-) mu-]_+^2 (for distances:
    pos_k = [d_k - (1 + eps+) mu+]_+^2, neg_k = [(1 - eps-) mu- - d_k]_+^2); mean of each,
    summed."""
    same = ref is None
    ref, ref_labels = (x, labels) if same else (ref, ref_labels)
    d = _table(x, ref, kind)
    if pairs is None:
        pairs = all_pairs(labels.tolist(), ref_labels.tolist(), same)
    pos, neg = pairs
    similar = kind in ("cos", "dot")
    total = 0.0
    if pos:
        vals = [d[i][j] for i, j in pos]
        mu = sum(vals) / len(vals)
        if similar:
            terms = [_relu((1 - pos_eps) * mu - v) ** 2 for v in vals]
        else:
            terms = [_relu(v - (1 + pos_eps) * mu) ** 2 for v in vals]
        total += mean(terms)
    if neg:
        vals = [d[i][j] for i, j in neg]
        mu = sum(vals) / len(vals)
        if similar:
            terms = [_relu(v - (1 + neg_eps) * mu) ** 2 for v in vals]
        else:
            terms = [_relu((1 - neg_eps) * mu - v) ** 2 for v in vals]
        total += mean(terms)
    return total


# ------------------------------------------------------------------------------ SNR contrastive
def snr_contrastive(
    x, labels, pos_margin=0.0, neg_margin=1.0, pairs=None, ref=None, ref_labels=None
):
    """Yuan et al. 2019: contrastive loss on d = Var(x_a - x_b) / Var(x_a) (unit rows):
    avg-nonzero of [d - m+]_+ over positives plus avg-nonzero of [m- - d]_+ over negatives."""
    same = ref is None
    ref, ref_labels = (x, labels) if same else (ref, ref_labels)
    d = _table(x, ref, "snr")
    if pairs is None:
        pairs = all_pairs(labels.tolist(), ref_labels.tolist(), same)
    pos, neg = pairs
    return avg_nonzero([_relu(d[i][j] - pos_margin) for i, j in pos]) + avg_nonzero(
        [_relu(neg_margin - d[i][j]) for i, j in neg]
    )


# ------------------------------------------------------------------------------------ N-pairs
def _cross_entropy(logits: list[float], target: int) -> float:
    m = max(logits)
    return m + math.log(sum(math.exp(v - m) for v in logits)) - logits[target]


def npairs(x, labels, kind="dot_unit", pos_pairs=None):
    """Sohn 2016: one positive pair (a_i, p_i) per anchor label (the first in row-major order),
    pairs ordered by label; L_i = CE over j of s(a_i, p_j) with target i; mean."""
    lab = labels.tolist()
    if pos_pairs is None:
        pos_pairs, _ = all_pairs(lab, lab, True)
    first = {}
    for a, p in pos_pairs:
        first.setdefault(lab[a], (a, p))
    chosen = [first[k] for k in sorted(first)]
    if not chosen:
        return 0.0
    if kind == "dot_unit":
        xs = normalized(x)
        sim = lambda i, j: dot(xs[i], xs[j])
    else:  # negated normalised Euclidean distance
        xs = normalized(x)
        sim = lambda i, j: -_euclid(xs[i], xs[j])
    losses = [_cross_entropy([sim(a, p) for _, p in chosen], i) for i, (a, _) in enumerate(chosen)]
    return mean(losses)


# ----------------------------------------------------------------------------------- instance
def instance(x, labels, gamma=64.0):
    """Zheng et al. 2017 (PML form): logits gamma * cos(x_i, x_j) over the batch; the target of
    row i is the rank of its label among the sorted distinct labels; mean cross-entropy."""
    xs = normalized(x)
    lab = labels.tolist()
    rank = {v: k for k, v in enumerate(sorted(set(lab)))}
    losses = []
    for i in range(len(lab)):
        logits = [gamma * dot(xs[i], xs[j]) for j in range(len(lab))]
        losses.append(_cross_entropy(logits, rank[lab[i]]))
    return mean(losses)


# -------------------------------------------------------------------------------------- margin
def margin_loss(
    x,
    labels,
    margin=0.2,
    nu=0.0,
    beta=1.2,
    kind="l2",
    triplets=None,
    ref=None,
    ref_labels=None,
    learn_beta=False,
):
    """Wu et al. 2017: per triplet pos = [d_ap - beta + m]_+, neg = [beta - d_an + m]_+ (for
    similarities [beta - s_ap + m]_+ and [s_an - beta + m]_+); beta is a float or a per-class
    list indexed by the anchor's label. Result: sum(pos + neg) / (#pos > 0 + #neg > 0) plus, when
    learn_beta, the beta regulariser (nu * beta for one beta, else sum over triplets of
    nu * beta_{y_a} over the same divisor)."""
    same = ref is None
    ref, ref_labels = (x, labels) if same else (ref, ref_labels)
    lab = labels.tolist()
    d = _table(x, ref, kind)
    if triplets is None:
        triplets = all_triplets(lab, ref_labels.tolist(), same)
    if not triplets:
        return 0.0
    per_class = isinstance(beta, (list, tuple))
    similar = kind in ("cos", "dot")
    total, divisor, reg = 0.0, 0, 0.0
    for a, p, n in triplets:
        b = beta[lab[a]] if per_class else beta
        if similar:
            pos, neg = _relu(b - d[a][p] + margin), _relu(d[a][n] - b + margin)
        else:
            pos, neg = _relu(d[a][p] - b + margin), _relu(b - d[a][n] + margin)
        total += pos + neg
        divisor += (pos > 0) + (neg > 0)
        reg += b * nu
    value = total / divisor if divisor else 0.0
    if learn_beta:
        if per_class:
            value += reg / divisor if divisor else 0.0
        else:
            value += beta * nu
    return value


# ----------------------------------------------------------------------- threshold-consistent
def tcm(
    x,
    labels,
    lambda_plus=1.0,
    lambda_minus=1.0,
    margin_plus=0.9,
    margin_minus=0.5,
    pairs=None,
    ref=None,
    ref_labels=None,
):
    """Zhang et al. 2023: lambda+ * mean over positive pairs with s <= m+ of (m+ - s) +
    lambda- * mean over negative pairs with s >= m- of (s - m-) (an empty set gives 0)."""
    same = ref is None
    ref, ref_labels = (x, labels) if same else (ref, ref_labels)
    s = _table(x, ref, "cos")
    if pairs is None:
        pairs = all_pairs(labels.tolist(), ref_labels.tolist(), same)
    pos, neg = pairs
    pos_terms = [margin_plus - s[i][j] for i, j in pos if s[i][j] <= margin_plus]
    neg_terms = [s[i][j] - margin_minus for i, j in neg if s[i][j] >= margin_minus]
    return lambda_plus * mean(pos_terms) + lambda_minus * mean(neg_terms)


# ------------------------------------------------------------------------ dynamic soft margin
class DynamicSoftMargin:
    """Zhang & Rusinkiewicz 2019 with PML's numbers: x = d_pos - d_neg per sample; a soft
    histogram over num_bins bins of width delta = 2|min_val| / num_bins starting at min_val
    (each x splits 1 - frac / frac between its bin and the next, clamped to the last bin);
    hist <- normalise((1 - mu) hist + mu * counts) with mu = 1 while hist is all zero;
    loss = mean over x of CDF[bin(x)] * x (bins clamped to [0, num_bins - 1])."""

    def __init__(self, min_val=-2.0, num_bins=10, momentum=0.01):
        self.min_val, self.num_bins, self.momentum = min_val, num_bins, momentum
        self.delta = 2 * abs(min_val) / num_bins
        self.hist = [0.0] * num_bins

    def _bin(self, v: float) -> tuple[int, float]:
        t = (v - self.min_val) / self.delta
        return math.floor(t), t - math.trunc(t)

    def _clamp(self, k: int) -> int:
        return min(max(k, 0), self.num_bins - 1)

    def values(self, x, labels=None, ref=None, ref_labels=None, triplets=None, kind="l2"):
        """The x values: triplets with labels, else PML's matched-rows rule."""
        same = ref is None
        ref_x = x if same else ref
        d = _table(x, ref_x, kind)
        if labels is not None:
            ref_lab = (labels if same else ref_labels).tolist()
            if triplets is None:
                triplets = all_triplets(labels.tolist(), ref_lab, same)
            return [d[a][p] - d[a][n] for a, p, n in triplets]
        r, c = len(d), len(d[0])
        size = max(r, c)
        out = []
        for i in range(size):
            d_pos = d[i][i] if i < min(r, c) else 0.0
            # minimum of column i / row i without the diagonal entry (+inf if none is left);
            # PML pads a missing column / row minimum with 0
            col = min([d[k][i] for k in range(r) if k != i], default=math.inf) if i < c else 0.0
            row = min([d[i][k] for k in range(c) if k != i], default=math.inf) if i < r else 0.0
            out.append(d_pos - min(col, row))
        return out

    def __call__(self, values: list[float]) -> float:
        if not values:
            return 0.0
        counts = [0.0] * self.num_bins
        for v in values:
            k, frac = self._bin(v)
            counts[self._clamp(k)] += 1 - frac
            counts[self._clamp(k + 1)] += frac
        mu = self.momentum if sum(self.hist) != 0 else 1.0
        mixed = [(1 - mu) * h + mu * c for h, c in zip(self.hist, counts, strict=True)]
        total = sum(mixed)
        self.hist = [m / total for m in mixed]
        cdf, acc = [], 0.0
        for h in self.hist:
            acc += h
            cdf.append(acc)
        return mean([cdf[self._clamp(self._bin(v)[0])] * v for v in values])
