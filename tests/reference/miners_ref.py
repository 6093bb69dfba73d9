"""Loop references for the tuple miners' selection rules, written from each rule's definition.

Everything is plain Python over floats (float64): ``d[i][j]`` is a list-of-lists distance (or
similarity, ``inverted=True``) table from :func:`reference.pairs.distance_table`. Candidate pairs
follow the label rule: ``(i, j)`` is positive when the labels are equal and, for a same-source
reference, ``j != i``; negative when they differ.
"""

from __future__ import annotations

import math

import torch

from .pairs import distance_table

PAIRWISE_EPS = 1e-6  # torch.nn.functional.pairwise_distance adds it to the difference


def table(x: torch.Tensor, y: torch.Tensor, kind: str) -> list[list[float]]:
    """``kind``: "l2" (Euclidean between unit vectors) or "cos" (cosine similarity)."""
    return distance_table(x, y, kind)


def candidates(labels, ref_labels, same_source: bool):
    """Per anchor: ascending lists of positive and of negative reference indices."""
    pos, neg = [], []
    for i, li in enumerate(labels):
        pos.append(
            [j for j, lj in enumerate(ref_labels) if lj == li and not (same_source and i == j)]
        )
        neg.append([j for j, lj in enumerate(ref_labels) if lj != li])
    return pos, neg


def _closer(u: float, v: float, inverted: bool) -> bool:
    """``u`` is strictly more similar than ``v``."""
    return u > v if inverted else u < v


# ------------------------------------------------------------------ TripletMarginMiner
def triplet_margins(d, labels, ref_labels, same_source, inverted):
    """``{(a, p, n): margin}`` over every triplet, margin = d_an - d_ap (s_ap - s_an)."""
    pos, neg = candidates(labels, ref_labels, same_source)
    out = {}
    for a in range(len(labels)):
        for p in pos[a]:
            for n in neg[a]:
                out[(a, p, n)] = d[a][p] - d[a][n] if inverted else d[a][n] - d[a][p]
    return out


def triplet_margin_keep(m: float, margin: float, kind: str) -> bool:
    if kind == "easy":
        return m > margin
    if kind == "hard":
        return m <= margin and m <= 0
    if kind == "semihard":
        return m <= margin and m > 0
    return m <= margin


def triplet_margin_miner(d, labels, ref_labels, same_source, inverted, margin, kind):
    """Selected triplets in (a, p, n) order."""
    margins = triplet_margins(d, labels, ref_labels, same_source, inverted)
    return [t for t in sorted(margins) if triplet_margin_keep(margins[t], margin, kind)]


def triplet_margin_stats(d, labels, ref_labels, same_source, inverted):
    """Means over every triplet of (margin, d_ap, d_an); NaN when there is none."""
    margins = triplet_margins(d, labels, ref_labels, same_source, inverted)
    if not margins:
        return math.nan, math.nan, math.nan
    ap = [d[a][p] for a, p, _ in margins]
    an = [d[a][n] for a, _, n in margins]
    k = len(margins)
    return sum(margins.values()) / k, sum(ap) / k, sum(an) / k


# ------------------------------------------------------------------ AngularMiner
def _norm_diff_eps(u, v) -> float:
    return math.sqrt(sum((a - b + PAIRWISE_EPS) ** 2 for a, b in zip(u, v, strict=True)))


def angles(x: torch.Tensor, y: torch.Tensor, labels, ref_labels, same_source):
    """``{(a, p, n): atan(||x_a - x_p|| / (2 ||x_n - (x_a + x_p) / 2||))}`` on raw embeddings."""
    xs, ys = x.double().tolist(), y.double().tolist()
    pos, neg = candidates(labels, ref_labels, same_source)
    out = {}
    for a in range(len(labels)):
        for p in pos[a]:
            ap = _norm_diff_eps(xs[a], ys[p])
            c = [(u + v) / 2 for u, v in zip(xs[a], ys[p], strict=True)]
            for n in neg[a]:
                out[(a, p, n)] = math.atan(ap / (2 * _norm_diff_eps(ys[n], c)))
    return out


def angular_miner(x, y, labels, ref_labels, same_source, angle_degrees):
    ang = angles(x, y, labels, ref_labels, same_source)
    threshold = math.radians(angle_degrees)
    return [t for t in sorted(ang) if ang[t] > threshold], ang


def angle_stats(values: list[float], threshold: float) -> dict[str, float]:
    """The AngularMiner stats in degrees (missing keys: nothing to average)."""
    deg = [math.degrees(v) for v in values]
    out: dict[str, float] = {}
    if deg:
        mean = sum(deg) / len(deg)
        out["average_angle"] = mean
        out["min_angle"] = min(deg)
        out["max_angle"] = max(deg)
        var = sum((v - mean) ** 2 for v in deg) / (len(deg) - 1) if len(deg) > 1 else math.nan
        out["std_of_angle"] = math.sqrt(var)
    above = [math.degrees(v) for v in values if v > threshold]
    below = [math.degrees(v) for v in values if not v > threshold]
    if above:
        out["average_angle_above_threshold"] = sum(above) / len(above)
    if below:
        out["average_angle_below_threshold"] = sum(below) / len(below)
    return out


# ------------------------------------------------------------------ BatchEasyHardMiner
def _pick(values_by_col, far: bool, inverted: bool, below=None, above=None):
    """Column of the farthest (``far``) or nearest value, ties to the first column; ``below`` /
    ``above`` keep only values strictly below / above the given number."""
    best = None
    for j, v in values_by_col:
        if below is not None and not v < below:
            continue
        if above is not None and not v > above:
            continue
        if best is None:
            best = (j, v)
            continue
        better = _closer(best[1], v, inverted) if far else _closer(v, best[1], inverted)
        if better:
            best = (j, v)
    return best


def batch_easy_hard(
    d,
    labels,
    ref_labels,
    same_source,
    inverted,
    pos_strategy,
    neg_strategy,
    pos_range=None,
    neg_range=None,
):
    """``(a1, p, a2, n)`` lists and the selected values, from the per-anchor rule."""
    pos, neg = candidates(labels, ref_labels, same_source)

    def in_range(v, rng):
        return rng is None or rng[0] <= v <= rng[1]

    def pick(a, side, other_value=None):
        cols = pos[a] if side == "pos" else neg[a]
        rng = pos_range if side == "pos" else neg_range
        strategy = pos_strategy if side == "pos" else neg_strategy
        vals = [(j, d[a][j]) for j in cols if in_range(d[a][j], rng)]
        far = strategy in ("hard", "semihard") if side == "pos" else strategy == "easy"
        if strategy != "semihard" or other_value is None:
            return _pick(vals, far, inverted)
        # semihard: strictly on the near side (pos) / far side (neg) of the other pick
        near_side_is_below = not inverted
        if side == "pos":
            kw = {"below": other_value} if near_side_is_below else {"above": other_value}
        else:
            kw = {"above": other_value} if near_side_is_below else {"below": other_value}
        return _pick(vals, far, inverted, **kw)

    a1, p, a2, n, pv, nv = [], [], [], [], [], []
    for a in range(len(labels)):
        pp = pn = None
        if pos_strategy == "semihard":
            pn = pick(a, "neg")
            pp = pick(a, "pos", pn[1] if pn else None) if pn else None
        elif neg_strategy == "semihard":
            pp = pick(a, "pos")
            pn = pick(a, "neg", pp[1] if pp else None) if pp else None
        else:
            pp = pick(a, "pos") if pos_strategy != "all" else None
            pn = pick(a, "neg") if neg_strategy != "all" else None
        if pos_strategy != "all" and neg_strategy != "all":
            if pp and pn:
                a1.append(a), p.append(pp[0]), pv.append(pp[1])
                a2.append(a), n.append(pn[0]), nv.append(pn[1])
            continue
        if pos_strategy != "all" and pp:
            a1.append(a), p.append(pp[0]), pv.append(pp[1])
        if neg_strategy != "all" and pn:
            a2.append(a), n.append(pn[0]), nv.append(pn[1])
    if pos_strategy == "all":
        for a in range(len(labels)):
            for j in pos[a]:
                a1.append(a), p.append(j), pv.append(d[a][j])
    if neg_strategy == "all":
        for a in range(len(labels)):
            for j in neg[a]:
                a2.append(a), n.append(j), nv.append(d[a][j])
    return (a1, p, a2, n), pv, nv


def batch_easy_hard_stats(pv, nv, inverted, with_triplets):
    nearest, farthest = (max, min) if inverted else (min, max)
    out = {}
    if with_triplets and pv and nv:
        gaps = [u - v for u, v in zip(pv, nv, strict=True)]
        out["easiest_triplet"], out["hardest_triplet"] = nearest(gaps), farthest(gaps)
    if pv:
        out["easiest_pos_pair"], out["hardest_pos_pair"] = nearest(pv), farthest(pv)
    if nv:
        out["easiest_neg_pair"], out["hardest_neg_pair"] = farthest(nv), nearest(nv)
    return out


# ------------------------------------------------------------------ pair miners
def pair_margin(d, labels, ref_labels, same_source, inverted, pos_margin, neg_margin):
    pos, neg = candidates(labels, ref_labels, same_source)
    a1, p, a2, n = [], [], [], []
    for a in range(len(labels)):
        for j in pos[a]:
            if (d[a][j] < pos_margin) if inverted else (d[a][j] > pos_margin):
                a1.append(a), p.append(j)
        for j in neg[a]:
            if (d[a][j] > neg_margin) if inverted else (d[a][j] < neg_margin):
                a2.append(a), n.append(j)
    pos_vals = [d[a][j] for a in range(len(labels)) for j in pos[a]]
    neg_vals = [d[a][j] for a in range(len(labels)) for j in neg[a]]
    stats = {
        "pos_pair_dist": sum(pos_vals) / len(pos_vals) if pos_vals else 0,
        "neg_pair_dist": sum(neg_vals) / len(neg_vals) if neg_vals else 0,
    }
    return (a1, p, a2, n), stats


def multi_similarity(d, labels, ref_labels, same_source, same_emb, inverted, epsilon):
    """Kept pairs grouped by anchor, each anchor's pairs by ascending value (ties: column).
    ``same_emb``: the reference tensor is the query tensor (no (i, i) pairs at all)."""
    pos, neg = candidates(labels, ref_labels, same_source or same_emb)
    a1, p, a2, n = [], [], [], []
    for a in range(len(labels)):
        if not pos[a] or not neg[a]:
            continue
        pvals = [d[a][j] for j in pos[a]]
        nvals = [d[a][j] for j in neg[a]]
        if inverted:
            kp = [j for j in pos[a] if d[a][j] - epsilon < max(nvals)]
            kn = [j for j in neg[a] if d[a][j] + epsilon > min(pvals)]
        else:
            kp = [j for j in pos[a] if d[a][j] + epsilon > min(nvals)]
            kn = [j for j in neg[a] if d[a][j] - epsilon < max(pvals)]
        for j in sorted(kp, key=lambda j: (d[a][j], j)):
            a1.append(a), p.append(j)
        for j in sorted(kn, key=lambda j: (d[a][j], j)):
            a2.append(a), n.append(j)
    return a1, p, a2, n


def hdc(d, pos_pairs, neg_pairs, inverted, fraction):
    """The ceil(fraction * count) hardest pairs of each kind, hardest first."""

    def hardest(pairs, largest):
        k = math.ceil(fraction * len(pairs))
        ranked = sorted(pairs, key=lambda t: d[t[0]][t[1]], reverse=largest)
        return ranked[:k]

    return hardest(pos_pairs, not inverted), hardest(neg_pairs, inverted)


# ------------------------------------------------------------------ random miners
def distance_weights(d, labels, ref_labels, dim, cutoff, nonzero_loss_cutoff):
    """Row-normalised negative weights ``1 / q(d)`` (None for a row with no weight)."""
    rows = []
    for i, li in enumerate(labels):
        w = []
        for j, lj in enumerate(ref_labels):
            x = max(d[i][j], cutoff)
            if lj == li or x >= nonzero_loss_cutoff or 1 - x * x / 4 <= 0:
                w.append(0.0)
                continue
            log_w = (2 - dim) * math.log(x) - (dim - 3) / 2 * math.log(1 - x * x / 4)
            w.append(math.exp(log_w))
        total = sum(w)
        rows.append([v / total for v in w] if total > 0 else None)
    return rows


def histogram_bins(values: list[float], edges: list[float]) -> list[int]:
    """Bin of each value: ``edges[i] <= v < edges[i + 1]``, the last bin closed."""
    last = len(edges) - 2
    out = []
    for v in values:
        for i in range(last + 1):
            if edges[i] <= v and (v < edges[i + 1] or (i == last and v <= edges[i + 1])):
                out.append(i)
                break
        else:
            out.append(-1)
    return out
