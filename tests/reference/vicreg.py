"""Loop reference for VICReg (Bardes, Ponce, LeCun, ICLR 2022), float64 Python floats.

Follows the paper's eqs. 1-6 with pytorch-metric-learning's conventions: every term reduced by
its mean (per sample / per dimension) and each view's variance term halved.
"""

from __future__ import annotations

import math


def _columns(rows: list[list[float]]) -> list[list[float]]:
    return [list(col) for col in zip(*rows, strict=True)]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def invariance(z: list[list[float]], z2: list[list[float]]) -> list[float]:
    """Per sample: mean over dimensions of the squared difference of the two views."""
    return [
        _mean([(a - b) ** 2 for a, b in zip(r, r2, strict=True)])
        for r, r2 in zip(z, z2, strict=True)
    ]


def variance(z: list[list[float]], eps: float) -> list[float]:
    """Per dimension: max(0, 1 - sqrt(unbiased variance + eps)) / 2."""
    out = []
    for col in _columns(z):
        m = _mean(col)
        var = sum((v - m) ** 2 for v in col) / (len(col) - 1)
        out.append(max(0.0, 1.0 - math.sqrt(var + eps)) / 2)
    return out


def covariance(z: list[list[float]]) -> float:
    """Sum over d != e of the squared (N - 1)-normalised covariance, divided by D."""
    cols = _columns(z)
    n, d = len(z), len(cols)
    means = [_mean(c) for c in cols]
    total = 0.0
    for i in range(d):
        for j in range(d):
            if i == j:
                continue
            c = sum((cols[i][k] - means[i]) * (cols[j][k] - means[j]) for k in range(n)) / (n - 1)
            total += c * c
    return total / d


def vicreg(z, z2, invariance_lambda=25.0, variance_mu=25.0, covariance_v=1.0, eps=1e-4) -> float:
    """The total loss for two views given as nested lists (or tensors, via ``.tolist()``)."""
    z = z.tolist() if hasattr(z, "tolist") else z
    z2 = z2.tolist() if hasattr(z2, "tolist") else z2
    return (
        invariance_lambda * _mean(invariance(z, z2))
        + variance_mu * _mean(variance(z, eps))
        + variance_mu * _mean(variance(z2, eps))
        + covariance_v * (covariance(z) + covariance(z2))
    )
