"""Loop reference for Smooth-AP (float64, Python floats), written from Brown et al., ECCV 2020,
eq. 8, with the query counted among its own positives (pytorch-metric-learning's convention)."""

from __future__ import annotations

from reference.pairs import distance_table
from reference.ranking_losses_ref import sigmoid


def smooth_ap_terms(x, labels, temperature=0.01, weights=None) -> list[float]:
    """One term ``(1 - AP_q) w_q`` per sample; 0 for a sample without another positive."""
    y = labels.tolist()
    n = len(y)
    s = distance_table(x, x, "cos")
    terms = []
    for q in range(n):
        positives = [i for i in range(n) if y[i] == y[q]]  # includes q
        if len(positives) == 1:
            terms.append(0.0)
            continue
        precision_sum = 0.0
        for i in positives:
            rank_all = 1.0
            rank_pos = 1.0
            for j in range(n):
                if j == i:
                    continue
                g = sigmoid((s[q][j] - s[q][i]) / temperature)
                rank_all += g
                if y[j] == y[q]:
                    rank_pos += g
            precision_sum += rank_pos / rank_all
        w = 1.0 if weights is None else weights[q]
        terms.append((1.0 - precision_sum / len(positives)) * w)
    return terms


def smooth_ap_masked(sim, pos, temperature) -> list[float]:
    """``1 - AP_q`` from a similarity table and a positives mask (lists of lists); 0 for a query
    without positives. Used to check the kernel on ragged and rectangular inputs."""
    out = []
    for q, row in enumerate(sim):
        positives = [i for i, p in enumerate(pos[q]) if p]
        if not positives:
            out.append(0.0)
            continue
        total = 0.0
        for i in positives:
            others = [j for j in range(len(row)) if j != i]
            rank_all = 1 + sum(sigmoid((row[j] - row[i]) / temperature) for j in others)
            rank_pos = 1 + sum(
                sigmoid((row[j] - row[i]) / temperature) for j in others if pos[q][j]
            )
            total += rank_pos / rank_all
        out.append(1 - total / len(positives))
    return out
