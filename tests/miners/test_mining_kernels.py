"""deepmetric.functional.mining internals: the numpy fast paths equal the torch paths (which
CUDA tensors take), masked per-row extremes, closed-form stats, input edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric import distances
from deepmetric.functional import mining as F
from deepmetric.functional import tuples as T
from reference import miners_ref as R


@pytest.fixture(params=["numpy", "torch"])
def path(request, monkeypatch):
    """Run a test on the CPU numpy fast path and on the torch path that CUDA tensors take."""
    if request.param == "torch":
        monkeypatch.setattr(F, "_use_numpy", lambda t: False)
    return request.param


def _mat(n=18, m=None, classes=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    if m is None:
        return distances.LpDistance()(x).to(dtype), y, None
    ry = torch.randint(0, classes, (m,), generator=g)
    ref = torch.randn(m, 5, generator=g, dtype=torch.float64)
    return distances.LpDistance()(x, ref).to(dtype), y, ry


@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (40, 3)])
def test_where_matches_torch_where(path, density, shape):
    mask = torch.rand(shape) < density
    rows, cols = F._where(mask)
    expected = torch.where(mask)
    assert torch.equal(rows, expected[0]) and torch.equal(cols, expected[1])


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_row_order_is_a_stable_ascending_sort(path, dtype):
    x = torch.randn(30, 200, dtype=torch.float64).to(dtype)
    x[0, :6] = 0.0
    x[0, 6:12] = -0.0  # ties with +0.0
    x[1] = x[1].round()  # many ties
    x[2, 5] = torch.finfo(dtype).max
    x[2, 6] = torch.finfo(dtype).min
    expected = torch.sort(x.double(), dim=1, stable=True).indices
    assert torch.equal(F._row_order(x), expected)


@pytest.mark.parametrize("type_of_triplets", ["all", "hard", "semihard", "easy"])
@pytest.mark.parametrize("inverted", [False, True])
@pytest.mark.parametrize("with_ref", [False, True])
def test_triplet_select_both_paths_match_reference(path, type_of_triplets, inverted, with_ref):
    mat, y, ry = _mat(m=15 if with_ref else None)
    if inverted:
        mat = 1 - mat  # any similarity-like matrix
    pos, neg = T.get_matches_and_diffs(y, ry)
    out = F.triplet_margin_select(
        mat,
        pos,
        neg,
        margin=0.3,
        type_of_triplets=type_of_triplets,
        is_inverted=inverted,
        block_elements=50,
    )
    d = mat.tolist()
    ref_labels = y.tolist() if ry is None else ry.tolist()
    expected = R.triplet_margin_miner(
        d, y.tolist(), ref_labels, ry is None, inverted, 0.3, type_of_triplets
    )
    assert list(zip(*(t.tolist() for t in out), strict=True)) == expected


@pytest.mark.parametrize("largest", [False, True])
@pytest.mark.parametrize("block_elements", [1, 17, 10**6])
def test_extreme_per_row_matches_a_loop(largest, block_elements):
    g = torch.Generator().manual_seed(1)
    mat = torch.randn(23, 11, generator=g, dtype=torch.float64)
    mask = torch.rand(23, 11, generator=g) < 0.4
    mask[3] = False
    thresholds = torch.randn(23, generator=g, dtype=torch.float64)
    for kwargs in ({}, {"val_range": (-0.5, 0.7)}, {"thresholds": thresholds}):
        values, cols, valid = F.extreme_per_row(
            mat, mask, largest=largest, block_elements=block_elements, **kwargs
        )
        for i in range(23):
            allowed = [
                j
                for j in range(11)
                if mask[i, j]
                and ("val_range" not in kwargs or -0.5 <= mat[i, j] <= 0.7)
                and (
                    "thresholds" not in kwargs
                    or (mat[i, j] < thresholds[i] if largest else mat[i, j] > thresholds[i])
                )
            ]
            assert bool(valid[i]) == bool(allowed)
            if not allowed:
                fill = torch.finfo(mat.dtype).min if largest else torch.finfo(mat.dtype).max
                assert values[i] == fill
                continue
            target = (max if largest else min)(float(mat[i, j]) for j in allowed)
            first = next(j for j in allowed if float(mat[i, j]) == target)  # ties: first column
            assert cols[i] == first and float(values[i]) == target


def test_triplet_margin_stats_closed_form_matches_loops():
    mat, y, ry = _mat(m=9)
    pos, neg = T.get_matches_and_diffs(y, ry)
    for inverted in (False, True):
        got = F.triplet_margin_stats(mat, pos, neg, is_inverted=inverted)
        expected = R.triplet_margin_stats(mat.tolist(), y.tolist(), ry.tolist(), False, inverted)
        assert [float(v) for v in got] == pytest.approx(expected, rel=1e-12)
        assert all(v.dtype == mat.dtype for v in got)


def test_multi_similarity_select_both_paths_agree(path):
    mat, y, _ = _mat(n=30, dtype=torch.float32)
    pos, neg = T.get_matches_and_diffs(y)
    out = F.multi_similarity_select(mat, pos, neg, epsilon=0.1, is_inverted=False)
    expected = R.multi_similarity(
        mat.double().tolist(), y.tolist(), y.tolist(), True, True, False, 0.1
    )
    assert [t.tolist() for t in out] == [list(t) for t in expected]


def test_hardest_fraction_counts_and_order():
    values = torch.tensor([0.5, 0.1, 0.9, 0.3])
    assert F.hardest_fraction(values, fraction=0.5, largest=True).tolist() == [2, 0]
    assert F.hardest_fraction(values, fraction=0.6, largest=False).tolist() == [1, 3, 0]
    assert len(F.hardest_fraction(values, fraction=0.0, largest=True)) == 0


def test_angular_select_without_positive_pairs():
    x = torch.randn(4, 3)
    pos, neg = T.get_matches_and_diffs(torch.arange(4))
    (a, p, n), stats = F.angular_select(x, x, pos, neg, angle=0.1, with_stats=True)
    assert len(a) == len(p) == len(n) == 0 and float(stats.num) == 0
    assert math.isinf(float(stats.minimum))
