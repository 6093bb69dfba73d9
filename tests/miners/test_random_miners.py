"""DistanceWeightedMiner and UniformHistogramMiner: the sampling distributions against the loop
references, seeding through ``generator=`` (or torch's global generator), counts, errors."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric import distances
from deepmetric.functional import mining as F
from deepmetric.miners.distance_weighted_miner import DistanceWeightedMiner
from deepmetric.miners.uniform_histogram_miner import UniformHistogramMiner
from reference import miners_ref as R


def _batch(n=12, d=4, classes=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
    return x, torch.randint(0, classes, (n,), generator=g)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ DistanceWeightedMiner
@pytest.mark.parametrize("dim", [3, 4, 16])
@pytest.mark.parametrize(("cutoff", "nonzero"), [(0.5, 1.4), (0.2, 2.0), (0.0, 1.0)])
def test_distance_weights_match_reference(dim, cutoff, nonzero):
    x, y = _batch(n=14, d=dim)
    mat = distances.LpDistance()(x)
    w = F.distance_weighted_weights(
        mat, y[:, None] == y[None, :], dim=dim, cutoff=cutoff, nonzero_loss_cutoff=nonzero
    )
    expected = R.distance_weights(mat.tolist(), y.tolist(), y.tolist(), dim, cutoff, nonzero)
    for row, exp in zip(w, expected, strict=True):
        if exp is None:
            assert bool(torch.isnan(row).all()) or float(row.sum()) == 0
        else:
            assert row.tolist() == pytest.approx(exp, rel=1e-9, abs=1e-12)


def test_distance_weighted_counts_follow_pml():
    x, y = _batch(n=12)
    a, p, n = DistanceWeightedMiner(nonzero_loss_cutoff=2.0, generator=_gen(0))(x, y)
    same = Counter(y.tolist())
    counts = Counter(a.tolist())
    for i, label in enumerate(y.tolist()):
        expected = same[label] if same[label] > 1 else 0  # references of its class, itself too
        assert counts.get(i, 0) == expected
    assert torch.equal(y[a], y[p]) and bool((a != p).all()) and bool((y[a] != y[n]).all())
    assert a.tolist() == sorted(a.tolist())  # grouped by anchor


def test_distance_weighted_with_a_reference_set():
    x, y = _batch(n=8)
    rx, ry = _batch(n=10, seed=5)
    a, p, n = DistanceWeightedMiner(nonzero_loss_cutoff=2.0, generator=_gen(0))(x, y, rx, ry)
    same = Counter(ry.tolist())
    counts = Counter(a.tolist())
    for i, label in enumerate(y.tolist()):
        assert counts.get(i, 0) == same.get(label, 0)
    assert bool((ry[p] == y[a]).all()) and bool((ry[n] != y[a]).all())


def test_distance_weighted_negatives_follow_the_weights():
    x, y = _batch(n=10, d=4, classes=2, seed=2)
    miner = DistanceWeightedMiner(cutoff=0.3, nonzero_loss_cutoff=2.0, generator=_gen(1))
    mat = distances.LpDistance()(x).tolist()
    weights = R.distance_weights(mat, y.tolist(), y.tolist(), 4, 0.3, 2.0)
    draws = torch.zeros(10, 10, dtype=torch.long)  # [anchor, negative]
    pos_draws = torch.zeros(10, 10, dtype=torch.long)  # [anchor, positive]
    for _ in range(300):
        a, p, n = miner(x, y)
        draws += torch.bincount(a * 10 + n, minlength=100).view(10, 10)
        pos_draws += torch.bincount(a * 10 + p, minlength=100).view(10, 10)
    for i, row in enumerate(weights):
        total = int(draws[i].sum())
        if row is None:
            assert total == 0
            continue
        for k, w in enumerate(row):
            freq = int(draws[i, k]) / total
            assert abs(freq - w) < 4 * math.sqrt(w * (1 - w) / total) + 1e-9, (i, k, freq, w)
        positives = [j for j in range(10) if y[j] == y[i] and j != i]
        for j in positives:  # positives uniform
            assert abs(int(pos_draws[i, j]) / total - 1 / len(positives)) < 0.05


def test_distance_weighted_never_draws_beyond_the_nonzero_cutoff():
    x, y = _batch(n=16, d=3)
    mat = distances.LpDistance()(x)
    a, _p, n = DistanceWeightedMiner(nonzero_loss_cutoff=1.2, generator=_gen(0))(x, y)
    assert len(a) > 0 and bool((mat[a, n] < 1.2).all())
    a, _, _ = DistanceWeightedMiner(nonzero_loss_cutoff=0.0)(x, y)  # no weight anywhere
    assert len(a) == 0


def test_distance_weighted_seeding():
    x, y = _batch()
    one = DistanceWeightedMiner(generator=_gen(7))(x, y)
    two = DistanceWeightedMiner(generator=_gen(7))(x, y)
    other = DistanceWeightedMiner(generator=_gen(8))(x, y)
    assert all(torch.equal(u, v) for u, v in zip(one, two, strict=True))
    assert not all(torch.equal(u, v) for u, v in zip(one, other, strict=True))
    torch.manual_seed(3)
    g1 = DistanceWeightedMiner()(x, y)  # global generator
    torch.manual_seed(3)
    g2 = DistanceWeightedMiner()(x, y)
    assert all(torch.equal(u, v) for u, v in zip(g1, g2, strict=True))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_distance_weighted_runs_in_every_dtype(dtype):
    x, y = _batch(n=16, d=8, dtype=dtype)
    a, p, n = DistanceWeightedMiner(nonzero_loss_cutoff=2.0, generator=_gen(0))(x, y)
    assert len(a) > 0 and a.dtype == torch.long
    assert torch.equal(y[a], y[p]) and bool((y[a] != y[n]).all())


# ------------------------------------------------------------------ UniformHistogramMiner
def _pairs(y):
    same = y[:, None] == y[None, :]
    same.fill_diagonal_(False)
    return same, y[:, None] != y[None, :]


@pytest.mark.parametrize("num_bins", [1, 5, 40])
@pytest.mark.parametrize("kind", ["l2", "cos"])
def test_uniform_histogram_every_occupied_bin_gets_its_draws(num_bins, kind):
    x, y = _batch(n=14)
    distance = distances.CosineSimilarity() if kind == "cos" else distances.LpDistance()
    miner = UniformHistogramMiner(num_bins, 3, 2, distance=distance, generator=_gen(0))
    a1, p, a2, n = miner(x, y)
    mat = distance(x)
    pos, neg = _pairs(y)
    for (a, o), mask, per_bin in (((a1, p), pos, 3), ((a2, n), neg, 2)):
        values = mat[mask].tolist()
        lo, hi = min(values), max(values)
        edges = torch.linspace(lo, hi, num_bins + 1, dtype=torch.float64).tolist()
        bins_of_pairs = R.histogram_bins(values, edges)
        occupied = sorted(set(bins_of_pairs))
        assert -1 not in occupied
        drawn_bins = R.histogram_bins(mat[a, o].tolist(), edges)
        assert drawn_bins == [b for b in occupied for _ in range(per_bin)]  # bin after bin
        assert bool(mask[a, o].all())


def test_uniform_histogram_draws_uniformly_within_a_bin():
    x, y = _batch(n=10, classes=2)
    miner = UniformHistogramMiner(num_bins=1, pos_per_bin=4000, neg_per_bin=1, generator=_gen(3))
    a1, p, _, _ = miner(x, y)
    pos, _ = _pairs(y)
    counts = Counter(zip(a1.tolist(), p.tolist(), strict=True))
    k = int(pos.sum())
    assert len(counts) == k
    for c in counts.values():
        assert abs(c / 4000 - 1 / k) < 4 * math.sqrt((1 / k) * (1 - 1 / k) / 4000)


def test_uniform_histogram_equal_values_go_to_the_last_bin():
    values = torch.full((5,), 0.7)
    idx = F.uniform_histogram_select(values, num_bins=4, per_bin=3, generator=_gen(0))
    assert len(idx) == 3 and bool((idx < 5).all())


def test_uniform_histogram_seeding_and_missing_pairs():
    x, y = _batch()
    one = UniformHistogramMiner(generator=_gen(1))(x, y)
    two = UniformHistogramMiner(generator=_gen(1))(x, y)
    assert all(torch.equal(u, v) for u, v in zip(one, two, strict=True))
    torch.manual_seed(5)
    g1 = UniformHistogramMiner()(x, y)
    torch.manual_seed(5)
    g2 = UniformHistogramMiner()(x, y)
    assert all(torch.equal(u, v) for u, v in zip(g1, g2, strict=True))
    a1, p, a2, _n = UniformHistogramMiner(pos_per_bin=2, neg_per_bin=5)(
        torch.randn(3, 4), torch.tensor([0, 1, 2])
    )
    assert len(a1) == len(p) == 0 and len(a2) > 0 and len(a2) % 5 == 0


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_uniform_histogram_runs_in_every_dtype(dtype):
    x, y = _batch(n=16, dtype=dtype)
    a1, p, a2, n = UniformHistogramMiner(num_bins=10, generator=_gen(0))(x, y)
    assert len(a1) > 0 and len(a1) % 10 == 0 and len(a2) % 10 == 0
    assert torch.equal(y[a1], y[p]) and bool((y[a2] != y[n]).all())
