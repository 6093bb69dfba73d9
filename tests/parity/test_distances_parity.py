"""Distances against pytorch-metric-learning as an oracle (float64)."""

from __future__ import annotations

import pytest
import torch

pml_distances = pytest.importorskip("pytorch_metric_learning.distances")

from deepmetric import distances as dm  # noqa: E402

pytestmark = pytest.mark.parity

N, M, D = 9, 6, 8

# (id, class name, kwargs) — the same kwargs are valid for both libraries.
VARIANTS = [
    *[
        (
            f"Lp-p{p}-norm{int(norm)}-pow{power}",
            "LpDistance",
            {"p": p, "normalize_embeddings": norm, "power": power},
        )
        for p in (1, 2)
        for norm in (True, False)
        for power in (1, 2)
    ],
    ("Dot-norm1", "DotProductSimilarity", {}),
    ("Dot-norm0", "DotProductSimilarity", {"normalize_embeddings": False}),
    ("Dot-norm0-pow2", "DotProductSimilarity", {"normalize_embeddings": False, "power": 2}),
    ("Cos", "CosineSimilarity", {}),
    ("Cos-pow2", "CosineSimilarity", {"power": 2}),
    ("SNR", "SNRDistance", {}),
    ("SNR-norm0", "SNRDistance", {"normalize_embeddings": False}),
]
VARIANT_PARAMS = [pytest.param(name, kwargs, id=vid) for vid, name, kwargs in VARIANTS]


def _build(name, kwargs, **extra):
    return getattr(dm, name)(**kwargs, **extra), getattr(pml_distances, name)(**kwargs, **extra)


def _randn(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize(("name", "kwargs"), VARIANT_PARAMS)
@pytest.mark.parametrize("with_ref", [True, False], ids=["ref", "noref"])
def test_matrix_and_gradients_match_pml(name, kwargs, with_ref):
    ours, theirs = _build(name, kwargs)
    assert ours.is_inverted == theirs.is_inverted
    assert ours.normalize_embeddings == theirs.normalize_embeddings
    assert (ours.p, ours.power) == (theirs.p, theirs.power)

    q0 = _randn(N, D, seed=0) * 1.5
    r0 = _randn(M, D, seed=1) if with_ref else None
    weights = _randn(N, M if with_ref else N, seed=2)

    results = []
    for dist in (ours, theirs):
        q = q0.clone().requires_grad_()
        r = r0.clone().requires_grad_() if with_ref else None
        mat = dist(q, r)
        (mat * weights).sum().backward()
        results.append((mat.detach(), q.grad, None if r is None else r.grad))

    (m_ours, gq_ours, gr_ours), (m_pml, gq_pml, gr_pml) = results
    assert m_ours.dtype == m_pml.dtype == torch.float64
    _close(m_ours, m_pml)
    _close(gq_ours, gq_pml)
    if with_ref:
        _close(gr_ours, gr_pml)


@pytest.mark.parametrize(("name", "kwargs"), VARIANT_PARAMS)
def test_pairwise_distance_matches_pml(name, kwargs):
    ours, theirs = _build(name, kwargs)
    x0, y0 = _randn(N, D, seed=3) * 2, _randn(N, D, seed=4)
    outs = []
    for dist in (ours, theirs):
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        out = dist.pairwise_distance(x, y)
        out.sum().backward()
        outs.append((out.detach(), x.grad, y.grad))
    for a, b in zip(*outs, strict=True):
        _close(a, b)


@pytest.mark.parametrize(("name", "kwargs"), VARIANT_PARAMS)
def test_margin_and_reductions_match_pml(name, kwargs):
    ours, theirs = _build(name, kwargs)
    x, y = _randn(5, seed=5), _randn(5, seed=6)
    _close(ours.margin(x, y), theirs.margin(x, y))
    mat = _randn(4, 5, seed=7)
    for method in ("smallest_dist", "largest_dist"):
        a = getattr(ours, method)(mat, dim=1)
        b = getattr(theirs, method)(mat, dim=1)
        _close(a.values, b.values)
        assert torch.equal(a.indices, b.indices)


@pytest.mark.parametrize(("name", "kwargs"), VARIANT_PARAMS)
@pytest.mark.parametrize("with_ref", [True, False], ids=["ref", "noref"])
def test_stats_match_pml(name, kwargs, with_ref):
    ours, theirs = _build(name, kwargs, collect_stats=True)
    q = _randn(N, D, seed=8) * 3
    r = _randn(M, D, seed=9) * 0.5 if with_ref else None
    ours(q, r)
    theirs(q, r)
    for stat in (
        "initial_avg_query_norm",
        "initial_avg_ref_norm",
        "final_avg_query_norm",
        "final_avg_ref_norm",
    ):
        assert float(getattr(ours, stat)) == pytest.approx(float(getattr(theirs, stat)), rel=1e-9)


@pytest.mark.parametrize(("name", "kwargs"), VARIANT_PARAMS)
@pytest.mark.parametrize("with_ref", [True, False], ids=["ref", "noref"])
def test_batched_distance_matches_pml(name, kwargs, with_ref):
    ours, theirs = _build(name, kwargs)
    q = _randn(N, D, seed=10)
    r = _randn(M, D, seed=11) if with_ref else None
    seen: dict[str, list] = {"ours": [], "pml": []}
    dm.BatchedDistance(ours, lambda mat, s, e: seen["ours"].append((mat, s, e)), batch_size=4)(q, r)
    pml_distances.BatchedDistance(
        theirs, lambda mat, s, e: seen["pml"].append((mat, s, e)), batch_size=4
    )(q, r)
    assert len(seen["ours"]) == len(seen["pml"])
    for (a, s_ours, e_ours), (b, s_pml, e_pml) in zip(seen["ours"], seen["pml"], strict=True):
        assert s_ours == s_pml
        # Deliberate deviation: PML passes e = s + batch_size even past the end for the last
        # block; deepmetric clamps it to len(query), so that mat.shape[0] == e - s always.
        assert e_ours == min(e_pml, N)
        assert a.shape[0] == e_ours - s_ours
        _close(a, b)
