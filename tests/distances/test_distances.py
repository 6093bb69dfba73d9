"""Distances against float64 references written as plain loops over (i, j) from the formulas."""

from __future__ import annotations

import math

import pytest
import torch

from deepmetric import config
from deepmetric.distances import (
    BaseDistance,
    BatchedDistance,
    CosineSimilarity,
    DotProductSimilarity,
    LpDistance,
    SNRDistance,
    resolve_distance,
)

N, M, D = 7, 5, 6
STAT_NAMES = (
    "initial_avg_query_norm",
    "initial_avg_ref_norm",
    "final_avg_query_norm",
    "final_avg_ref_norm",
)


def _randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


# ---------------------------------------------------------------------------------------------
# Reference: plain Python over float64 rows.


def _rows(t: torch.Tensor) -> list[list[float]]:
    return t.detach().to(torch.float64).tolist()


def _norm(v: list[float], p: float) -> float:
    return sum(abs(a) ** p for a in v) ** (1.0 / p)


def _normalize(v: list[float], p: float) -> list[float]:
    n = max(_norm(v, p), 1e-12)
    return [a / n for a in v]


def _var(v: list[float]) -> float:
    mean = sum(v) / len(v)
    return sum((a - mean) ** 2 for a in v) / (len(v) - 1)


def _lp(u: list[float], v: list[float], p: float) -> float:
    return sum(abs(a - b) ** p for a, b in zip(u, v, strict=True)) ** (1.0 / p)


def _dot(u: list[float], v: list[float]) -> float:
    return sum(a * b for a, b in zip(u, v, strict=True))


def _snr(u: list[float], v: list[float]) -> float:
    return _var([a - b for a, b in zip(u, v, strict=True)]) / _var(u)


def _pair_fn(kind: str, p: float):
    if kind == "lp":
        return lambda u, v: _lp(u, v, p)
    if kind == "dot":
        return _dot
    if kind == "snr":
        return _snr
    raise AssertionError(kind)


def reference_matrix(kind, query, ref=None, *, normalize, p, power) -> torch.Tensor:
    """``mat[i][j] = f(q_i, r_j) ** power`` with the rows L_p-normalised first when asked."""
    q_rows = _rows(query)
    r_rows = q_rows if ref is None else _rows(ref)
    if normalize:
        q_rows = [_normalize(v, p) for v in q_rows]
        r_rows = [_normalize(v, p) for v in r_rows]
    f = _pair_fn(kind, p)
    mat = [
        [f(q_rows[i], r_rows[j]) ** power for j in range(len(r_rows))] for i in range(len(q_rows))
    ]
    return torch.tensor(mat, dtype=torch.float64)


def reference_pairwise(kind, x, y, *, p) -> torch.Tensor:
    f = _pair_fn(kind, p)
    xr, yr = _rows(x), _rows(y)
    return torch.tensor([f(xr[i], yr[i]) for i in range(len(xr))], dtype=torch.float64)


# (id, factory, kind, normalize, p, power)
CASES = []
for _p in (1, 2, 3):
    for _norm_on in (True, False):
        for _power in (1, 2):
            CASES.append(
                (
                    f"Lp-p{_p}-norm{int(_norm_on)}-pow{_power}",
                    lambda p=_p, n=_norm_on, w=_power: LpDistance(
                        p=p, normalize_embeddings=n, power=w
                    ),
                    "lp",
                    _norm_on,
                    _p,
                    _power,
                )
            )
for _norm_on in (True, False):
    for _power in (1, 2):
        CASES.append(
            (
                f"Dot-norm{int(_norm_on)}-pow{_power}",
                lambda n=_norm_on, w=_power: DotProductSimilarity(normalize_embeddings=n, power=w),
                "dot",
                _norm_on,
                2,
                _power,
            )
        )
        CASES.append(
            (
                f"SNR-norm{int(_norm_on)}-pow{_power}",
                lambda n=_norm_on, w=_power: SNRDistance(normalize_embeddings=n, power=w),
                "snr",
                _norm_on,
                2,
                _power,
            )
        )
for _power in (1, 2):
    CASES.append(
        (f"Cos-pow{_power}", lambda w=_power: CosineSimilarity(power=w), "dot", True, 2, _power)
    )

CASE_PARAMS = [pytest.param(*c[1:], id=c[0]) for c in CASES]


@pytest.mark.parametrize(("factory", "kind", "normalize", "p", "power"), CASE_PARAMS)
@pytest.mark.parametrize("with_ref", [True, False], ids=["ref", "noref"])
def test_matrix_matches_reference(factory, kind, normalize, p, power, with_ref):
    query = _randn(N, D, seed=0)
    ref = _randn(M, D, seed=1) if with_ref else None
    out = factory()(query, ref)
    expected = reference_matrix(kind, query, ref, normalize=normalize, p=p, power=power)
    assert out.shape == (N, M if with_ref else N)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize(("factory", "kind", "normalize", "p", "power"), CASE_PARAMS)
def test_pairwise_distance_ignores_normalisation_and_power(factory, kind, normalize, p, power):
    x = _randn(N, D, seed=2) * 3
    y = _randn(N, D, seed=3) * 3
    out = factory().pairwise_distance(x, y)
    expected = reference_pairwise(kind, x, y, p=p)
    assert out.shape == (N,)
    # LpDistance uses torch's pairwise_distance, which adds eps=1e-6 to the difference (as PML).
    tol = 1e-5 if kind == "lp" else 1e-7
    torch.testing.assert_close(out, expected, rtol=tol, atol=tol)


def test_ref_none_reuses_the_normalised_query():
    query = _randn(N, D, seed=4)
    for dist in (LpDistance(), DotProductSimilarity(), SNRDistance(), LpDistance(p=1)):
        torch.testing.assert_close(dist(query), dist(query, query))


# ---------------------------------------------------------------------------------------------
# Semantics


@pytest.mark.parametrize(
    ("dist", "inverted"),
    [
        (LpDistance(), False),
        (SNRDistance(), False),
        (DotProductSimilarity(), True),
        (CosineSimilarity(), True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseDistance) else str(v),
)
def test_margin_and_smallest_largest(dist, inverted):
    assert dist.is_inverted is inverted
    x, y = torch.tensor([3.0, 1.0]), torch.tensor([1.0, 2.0])
    expected_margin = y - x if inverted else x - y
    torch.testing.assert_close(dist.margin(x, y), expected_margin)
    assert dist.margin(5.0, 2.0) == (-3.0 if inverted else 3.0)

    mat = torch.tensor([[0.2, 0.9, 0.5], [0.7, 0.1, 0.3]])
    small = dist.smallest_dist(mat, dim=1)
    large = dist.largest_dist(mat, dim=1)
    if inverted:  # similarities: the most similar is the largest value
        torch.testing.assert_close(small.values, torch.tensor([0.9, 0.7]))
        torch.testing.assert_close(small.indices, torch.tensor([1, 0]))
        torch.testing.assert_close(large.values, torch.tensor([0.2, 0.1]))
    else:
        torch.testing.assert_close(small.values, torch.tensor([0.2, 0.1]))
        torch.testing.assert_close(small.indices, torch.tensor([0, 1]))
        torch.testing.assert_close(large.values, torch.tensor([0.9, 0.7]))
    # The two-tensor (elementwise) form and the full reduction are forwarded too.
    a, b = torch.tensor([1.0, 5.0]), torch.tensor([2.0, 4.0])
    pick_small = torch.maximum if inverted else torch.minimum
    pick_large = torch.minimum if inverted else torch.maximum
    torch.testing.assert_close(dist.smallest_dist(a, b), pick_small(a, b))
    torch.testing.assert_close(dist.largest_dist(a, b), pick_large(a, b))
    assert dist.smallest_dist(mat).item() == pytest.approx(0.9 if inverted else 0.1)


def test_defaults_and_flags():
    lp = LpDistance()
    assert (lp.normalize_embeddings, lp.p, lp.power, lp.is_inverted) == (True, 2, 1, False)
    dot = DotProductSimilarity()
    assert (dot.normalize_embeddings, dot.is_inverted) == (True, True)
    assert DotProductSimilarity(normalize_embeddings=False).normalize_embeddings is False
    cos = CosineSimilarity()
    assert (cos.normalize_embeddings, cos.is_inverted) == (True, True)
    assert isinstance(cos, DotProductSimilarity)
    snr = SNRDistance()
    assert (snr.normalize_embeddings, snr.is_inverted) == (True, False)


def test_constructor_quirks():
    with pytest.raises(TypeError, match="normalize_embeddings"):
        CosineSimilarity(normalize_embeddings=False)
    with pytest.raises(TypeError, match="is_inverted"):
        DotProductSimilarity(is_inverted=True)
    with pytest.raises(TypeError, match="is_inverted"):
        LpDistance(is_inverted=True)


def test_repr_shows_hyperparameters():
    text = repr(LpDistance(normalize_embeddings=False, p=1, power=2))
    assert text.startswith("LpDistance(")
    for part in ("normalize_embeddings=False", "p=1", "power=2"):
        assert part in text
    assert repr(LpDistance()) != repr(LpDistance(normalize_embeddings=False))


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("cls", [LpDistance, DotProductSimilarity, CosineSimilarity, SNRDistance])
def test_bad_shapes_raise(cls):
    dist = cls()
    with pytest.raises(
        ValueError, match=r"expected `query_emb` of shape \(N, D\), got shape \(5,\)"
    ):
        dist(torch.randn(5))
    with pytest.raises(
        ValueError, match=r"expected `query_emb` of shape \(N, D\), got .*\(2, 3, 4\)"
    ):
        dist(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"expected `ref_emb` of shape \(N, D\), got shape \(4,\)"):
        dist(torch.randn(3, 4), torch.randn(4))
    with pytest.raises(
        ValueError, match=r"expected `ref_emb` with D=4 columns .* got shape \(3, 5\)"
    ):
        dist(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match=cls.__name__):
        dist(torch.randn(3, 4, 1))


def test_check_shapes_is_overridable():
    class AnyShapeDot(DotProductSimilarity):
        def check_shapes(self, query_emb, ref_emb):
            pass

        def compute_mat(self, query_emb, ref_emb):
            return query_emb.flatten(1) @ ref_emb.flatten(1).T

    x = _randn(3, 2, 2, seed=5)
    out = AnyShapeDot(normalize_embeddings=False)(x)
    assert out.shape == (3, 3)


# ---------------------------------------------------------------------------------------------
# Gradients


@pytest.mark.parametrize(("factory", "kind", "normalize", "p", "power"), CASE_PARAMS)
def test_gradcheck_with_ref(factory, kind, normalize, p, power):
    dist = factory()
    q = _randn(4, 3, seed=6).requires_grad_()
    r = _randn(3, 3, seed=7).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: dist(a, b), (q, r))


@pytest.mark.parametrize(
    "factory",
    [
        DotProductSimilarity,
        lambda: DotProductSimilarity(normalize_embeddings=False, power=2),
        CosineSimilarity,
        SNRDistance,
        lambda: SNRDistance(normalize_embeddings=False),
    ],
    ids=["dot", "dot-raw-pow2", "cos", "snr", "snr-raw"],
)
def test_gradcheck_without_ref(factory):
    # LpDistance is left out: the zero-distance diagonal is not differentiable.
    dist = factory()
    q = _randn(4, 3, seed=8).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: dist(a), (q,))


@pytest.mark.parametrize(
    "dist",
    [LpDistance(p=1), LpDistance(), LpDistance(p=3), DotProductSimilarity(), SNRDistance()],
    ids=["lp1", "lp2", "lp3", "dot", "snr"],
)
def test_gradcheck_pairwise(dist):
    x = _randn(4, 3, seed=9).requires_grad_()
    y = _randn(4, 3, seed=10).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: dist.pairwise_distance(a, b), (x, y))


# ---------------------------------------------------------------------------------------------
# dtypes

DTYPE_TOL = {
    torch.float16: 1e-2,
    torch.bfloat16: 5e-2,
    torch.float32: 1e-5,
    torch.float64: 1e-7,
}

DTYPE_CASES = [
    pytest.param(lambda: LpDistance(), "lp", True, 2, 1, id="lp"),
    pytest.param(lambda: LpDistance(p=1), "lp", True, 1, 1, id="lp1"),
    pytest.param(lambda: LpDistance(power=2), "lp", True, 2, 2, id="lp-pow2"),
    pytest.param(lambda: DotProductSimilarity(), "dot", True, 2, 1, id="dot"),
    pytest.param(lambda: CosineSimilarity(), "dot", True, 2, 1, id="cos"),
    pytest.param(lambda: SNRDistance(), "snr", True, 2, 1, id="snr"),
]


@pytest.mark.parametrize("dtype", list(DTYPE_TOL), ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize(("factory", "kind", "normalize", "p", "power"), DTYPE_CASES)
@pytest.mark.parametrize("with_ref", [True, False], ids=["ref", "noref"])
def test_dtypes(factory, kind, normalize, p, power, dtype, with_ref):
    query = _randn(N, D, seed=11, dtype=dtype)
    ref = _randn(M, D, seed=12, dtype=dtype) if with_ref else None
    out = factory()(query, ref)
    assert out.dtype == dtype
    # The reference sees exactly the (rounded) inputs the distance saw.
    expected = reference_matrix(kind, query, ref, normalize=normalize, p=p, power=power)
    tol = DTYPE_TOL[dtype]
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# Stats


@pytest.mark.parametrize(
    ("factory", "p", "normalize"),
    [
        (lambda: LpDistance(collect_stats=True), 2, True),
        (lambda: LpDistance(p=1, collect_stats=True), 1, True),
        (lambda: LpDistance(normalize_embeddings=False, collect_stats=True), 2, False),
        (lambda: CosineSimilarity(collect_stats=True), 2, True),
        (lambda: SNRDistance(p=3, collect_stats=True), 3, True),
    ],
    ids=["lp", "lp1", "lp-raw", "cos", "snr-p3"],
)
@pytest.mark.parametrize("with_ref", [True, False], ids=["ref", "noref"])
def test_stats_equal_reference_means(factory, p, normalize, with_ref):
    dist = factory()
    for name in STAT_NAMES:
        assert getattr(dist, name) == 0
    query = _randn(N, D, seed=13) * 2
    ref = _randn(M, D, seed=14) * 3 if with_ref else None
    dist(query, ref)

    q_rows = _rows(query)
    r_rows = q_rows if ref is None else _rows(ref)

    def mean_norm(rows, norm_first):
        vals = [_norm(_normalize(v, p) if norm_first else v, p) for v in rows]
        return sum(vals) / len(vals)

    expected = {
        "initial_avg_query_norm": mean_norm(q_rows, False),
        "initial_avg_ref_norm": mean_norm(r_rows, False),
        "final_avg_query_norm": mean_norm(q_rows, normalize),
        "final_avg_ref_norm": mean_norm(r_rows, normalize),
    }
    for name, value in expected.items():
        assert float(getattr(dist, name)) == pytest.approx(value, rel=1e-9), name
    if normalize:
        assert float(dist.final_avg_query_norm) == pytest.approx(1.0)

    # A second call records the new input, not an accumulation.
    dist(query * 10, ref)
    assert float(dist.initial_avg_query_norm) == pytest.approx(
        10 * expected["initial_avg_query_norm"]
    )


def test_stats_are_detached():
    dist = LpDistance(collect_stats=True)
    q = _randn(3, 4, seed=15).requires_grad_()
    dist(q)
    stat = dist.initial_avg_query_norm
    assert not (isinstance(stat, torch.Tensor) and stat.requires_grad)


@pytest.mark.parametrize("cls", [LpDistance, DotProductSimilarity, CosineSimilarity, SNRDistance])
def test_no_stats_without_collect_stats(cls):
    for dist in (cls(), cls(collect_stats=False)):
        assert dist.collect_stats is False
        dist(_randn(3, 4, seed=16))
        for name in STAT_NAMES:
            assert getattr(dist, name, None) is None
    # Hyperparameters stay recordable either way.
    assert cls().p == 2
    assert cls().power == 1


def test_collect_stats_context_manager():
    outside = LpDistance()
    with config.collect_stats():
        inside = LpDistance()
        forced_off = LpDistance(collect_stats=False)
        with config.collect_stats(False):
            nested_off = SNRDistance()
        after_nested = DotProductSimilarity()
    after = LpDistance()

    assert inside.collect_stats is True
    assert after_nested.collect_stats is True
    assert outside.collect_stats is False
    assert forced_off.collect_stats is False
    assert nested_off.collect_stats is False
    assert after.collect_stats is False

    x = _randn(3, 4, seed=17)
    for dist in (inside, after_nested):
        dist(x)
        for name in STAT_NAMES:
            assert getattr(dist, name, None) is not None
    # The flag is read at construction time: using `outside` inside the block collects nothing.
    with config.collect_stats():
        outside(x)
    for dist in (outside, forced_off, nested_off, after):
        dist(x)
        for name in STAT_NAMES:
            assert getattr(dist, name, None) is None


def test_collect_stats_context_restores_on_error():
    with pytest.raises(RuntimeError, match="boom"), config.collect_stats():
        raise RuntimeError("boom")
    assert LpDistance().collect_stats is False


# ---------------------------------------------------------------------------------------------
# BatchedDistance


@pytest.mark.parametrize("batch_size", [1, 3, 7, 32])
@pytest.mark.parametrize("with_ref", [True, False], ids=["ref", "noref"])
@pytest.mark.parametrize("cls", [LpDistance, DotProductSimilarity, SNRDistance])
def test_batched_blocks_concatenate_to_full_matrix(cls, batch_size, with_ref):
    dist = cls()
    query = _randn(N, D, seed=18)
    ref = _randn(M, D, seed=19) if with_ref else None
    blocks, ranges = [], []

    def iter_fn(mat, s, e):
        blocks.append(mat)
        ranges.append((s, e))

    result = BatchedDistance(dist, iter_fn=iter_fn, batch_size=batch_size)(query, ref)
    assert result is None
    starts = list(range(0, N, batch_size))
    assert ranges == [(s, min(s + batch_size, N)) for s in starts]
    for mat, (s, e) in zip(blocks, ranges, strict=True):
        assert mat.shape == (e - s, M if with_ref else N)
    torch.testing.assert_close(torch.cat(blocks), dist(query, ref), rtol=1e-12, atol=1e-12)


def test_batched_iter_fn_can_be_set_later():
    seen = []
    batched = BatchedDistance(LpDistance(), batch_size=4)
    batched.iter_fn = lambda mat, s, e: seen.append((s, e))
    batched(_randn(10, 3, seed=20))
    assert seen == [(0, 4), (4, 8), (8, 10)]


def test_batched_reads_attributes_through():
    inner = LpDistance(normalize_embeddings=False, p=1, power=2)
    batched = BatchedDistance(inner)
    assert batched.distance is inner
    assert batched.batch_size == 32
    assert batched.iter_fn is None
    assert (batched.is_inverted, batched.p, batched.power, batched.normalize_embeddings) == (
        False,
        1,
        2,
        False,
    )
    assert batched.margin(3.0, 1.0) == 2.0
    dot = BatchedDistance(DotProductSimilarity())
    assert dot.is_inverted is True
    assert dot.normalize_embeddings is True
    assert dot.margin(3.0, 1.0) == -2.0
    with pytest.raises(AttributeError):
        batched.no_such_attribute
    assert "distance" in dict(batched.named_children())


def test_batched_errors():
    with pytest.raises(RuntimeError, match=r"expected an `iter_fn`.*iter_fn=\.\.\."):
        BatchedDistance(LpDistance())(torch.randn(4, 3))
    for bad in (0, -1, 2.5, "8", None):
        with pytest.raises(ValueError, match=r"expected `batch_size` >= 1, got"):
            BatchedDistance(LpDistance(), iter_fn=print, batch_size=bad)
    # Shape errors of the wrapped distance surface unchanged.
    with pytest.raises(ValueError, match="LpDistance: expected `query_emb`"):
        BatchedDistance(LpDistance(), iter_fn=print)(torch.randn(4))


def test_batched_empty_query_calls_nothing():
    calls = []
    BatchedDistance(LpDistance(), iter_fn=lambda *a: calls.append(a))(
        torch.randn(0, 3), torch.randn(2, 3)
    )
    assert calls == []


# ---------------------------------------------------------------------------------------------
# resolve_distance


def test_resolve_distance_instance_class_name():
    inst = SNRDistance(power=2)
    assert resolve_distance(inst, "Owner") is inst
    from_cls = resolve_distance(CosineSimilarity, "Owner")
    assert type(from_cls) is CosineSimilarity
    from_name = resolve_distance("LpDistance", "Owner")
    assert type(from_name) is LpDistance
    assert from_name is not resolve_distance("LpDistance", "Owner")  # fresh instance every time


@pytest.mark.parametrize("bad", [3, None, torch.nn.Linear, torch.nn.Linear(2, 2), math.pi])
def test_resolve_distance_bad_type(bad):
    with pytest.raises(TypeError, match=r"MyLoss: expected `distance` to be a BaseDistance"):
        resolve_distance(bad, "MyLoss")


def test_resolve_distance_unknown_name():
    with pytest.raises(
        ValueError, match=r"Unknown distance 'LpDistanc'\. Did you mean 'LpDistance'\?"
    ):
        resolve_distance("LpDistanc", "MyLoss")
    with pytest.raises(ValueError, match=r"Unknown distance 'Manhattan'.*Known: .*LpDistance"):
        resolve_distance("Manhattan", "MyLoss")
