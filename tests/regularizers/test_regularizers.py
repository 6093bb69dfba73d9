"""Regularizers against float64 loop references written from the papers' formulas."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import ALL_DTYPES, TOLERANCES
from deepmetric import config, distances, losses, reducers, regularizers
from deepmetric._registry import REGULARIZERS
from deepmetric.functional import regularizers as F

C, K, D = 4, 3, 5  # classes, centres per class, dimension


# ---------------------------------------------------------------------------- references
def _norm(row: list[float], p: float) -> float:
    if math.isinf(p):
        return max(abs(v) for v in row)
    return sum(abs(v) ** p for v in row) ** (1 / p)


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _cos(a: list[float], b: list[float]) -> float:
    return _dot(a, b) / (_norm(a, 2) * _norm(b, 2))


def _mean(v: list[float]) -> float:
    return sum(v) / len(v)


def ref_lp(rows, p=2, power=1):
    return _mean([_norm(r, p) ** power for r in rows])


def ref_center_invariant(rows, p=2):
    sq = [_norm(r, p) ** 2 for r in rows]
    m = _mean(sq)
    return _mean([(s - m) ** 2 / 4 for s in sq])


def ref_regular_face(rows, sim=_cos):
    n = len(rows)
    return _mean([max(sim(rows[i], rows[j]) for j in range(n) if j != i) for i in range(n)])


def ref_sparse_centers(rows, num_classes, k):
    total = 0.0
    for c in range(num_classes):
        block = rows[c * k : (c + 1) * k]
        for t in range(k):
            for s in range(t + 1, k):
                total += math.sqrt(max(2 - 2 * _cos(block[t], block[s]), 0.0))
    return total / (num_classes * k * (k - 1))


def ref_zero_mean(rows):
    return _mean([abs(sum(r)) for r in rows])


CASES = {
    "lp": (lambda: regularizers.LpRegularizer(), ref_lp),
    "lp_p1_power2": (
        lambda: regularizers.LpRegularizer(p=1, power=2),
        lambda r: ref_lp(r, 1, 2),
    ),
    "lp_p3_power_half": (
        lambda: regularizers.LpRegularizer(p=3, power=0.5),
        lambda r: ref_lp(r, 3, 0.5),
    ),
    "lp_inf": (lambda: regularizers.LpRegularizer(p=math.inf), lambda r: ref_lp(r, math.inf)),
    "center_invariant": (regularizers.CenterInvariantRegularizer, ref_center_invariant),
    "center_invariant_l1": (
        lambda: regularizers.CenterInvariantRegularizer(
            distance=distances.LpDistance(p=1, normalize_embeddings=False)
        ),
        lambda r: ref_center_invariant(r, p=1),
    ),
    "regular_face": (regularizers.RegularFaceRegularizer, ref_regular_face),
    "regular_face_dot": (
        lambda: regularizers.RegularFaceRegularizer(
            distance=distances.DotProductSimilarity(normalize_embeddings=False)
        ),
        lambda r: ref_regular_face(r, sim=_dot),
    ),
    "sparse_centers": (
        lambda: regularizers.SparseCentersRegularizer(C, K),
        lambda r: ref_sparse_centers(r, C, K),
    ),
    "sparse_centers_k6": (
        lambda: regularizers.SparseCentersRegularizer(2, 6),
        lambda r: ref_sparse_centers(r, 2, 6),
    ),
    "zero_mean": (regularizers.ZeroMeanRegularizer, ref_zero_mean),
}


def _x(dtype=torch.float64, n=C * K, d=D, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)


# ---------------------------------------------------------------------------- values
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(case, dtype):
    factory, reference = CASES[case]
    x = _x(dtype).requires_grad_()
    out = factory()(x)
    assert out.ndim == 0 and out.dtype == dtype
    expected = reference(x.detach().double().tolist())
    rtol, atol = TOLERANCES[dtype]
    assert out.item() == pytest.approx(expected, rel=3 * rtol, abs=3 * atol)
    out.backward()
    assert x.grad is not None and x.grad.dtype == dtype and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradcheck(case):
    reg = CASES[case][0]()
    x = _x(n=C * K if case.startswith("sparse") else 6, d=4).requires_grad_()
    assert torch.autograd.gradcheck(reg, (x,), eps=1e-6, atol=1e-5)


KERNELS = {
    "lp_norm_terms": lambda x: F.lp_norm_terms(x, p=3, power=1.5),
    "center_invariant_terms": lambda x: F.center_invariant_terms(x.norm(dim=1)),
    "regular_face_terms": lambda x: F.regular_face_terms(x @ x.T),
    "sparse_centers_terms": lambda x: F.sparse_centers_terms(
        F.within_class_similarities(torch.nn.functional.normalize(x, dim=1), centers_per_class=3)
    ),
    "zero_mean_terms": F.zero_mean_terms,
}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_gradcheck_and_shape(name):
    x = _x(n=6, d=4).requires_grad_()
    terms = KERNELS[name](x)
    assert terms.ndim == 1 and terms.dtype == torch.float64
    assert torch.autograd.gradcheck(KERNELS[name], (x,), eps=1e-6, atol=1e-5)


# ---------------------------------------------------------------------------- numerics
def test_lp_half_does_not_overflow_in_the_sum_of_squares():
    x = torch.full((2, 4), 200.0, dtype=torch.float16)  # sum of squares 160000 > float16 max
    assert regularizers.LpRegularizer()(x).item() == 400.0


def test_zero_mean_half_sum_is_accumulated_in_float32():
    x = torch.full((1, 4096), 1.0 + 2**-10, dtype=torch.float16)
    expected = 4096 * (1.0 + 2**-10)
    assert regularizers.ZeroMeanRegularizer()(x).item() == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_sparse_centers_coincident_centres_have_finite_gradient(dtype):
    x = _x(dtype, n=2 * K).clone()
    x[1] = x[0]
    x.requires_grad_()
    out = regularizers.SparseCentersRegularizer(2, K)(x)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()


def test_sparse_centers_terms_clamp_and_zero_gap():
    block = torch.tensor(
        [[[1.0, 1.0 + 1e-12], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]], dtype=torch.float64
    )
    block.requires_grad_()
    terms = F.sparse_centers_terms(block)  # a cosine rounded above 1, and exactly 1
    assert terms.tolist() == [0.0, 0.0]
    terms.sum().backward()
    assert not block.grad.any()


def test_regular_face_gradient_only_through_nearest_neighbour():
    sim = torch.tensor([[1.0, 0.2, 0.7], [0.2, 1.0, -0.1], [0.7, -0.1, 1.0]], dtype=torch.float64)
    sim.requires_grad_()
    terms = F.regular_face_terms(sim)
    assert terms.tolist() == [0.7, 0.2, 0.7]
    terms.sum().backward()
    expected = torch.zeros(3, 3, dtype=torch.float64)
    expected[0, 2] = expected[1, 0] = expected[2, 0] = 1
    assert torch.equal(sim.grad, expected)


def test_regular_face_single_row_uses_its_own_similarity():
    out = regularizers.RegularFaceRegularizer()(_x(n=1))
    assert out.item() == pytest.approx(1.0)


# ---------------------------------------------------------------------------- configuration
def test_defaults():
    ci = regularizers.CenterInvariantRegularizer()
    assert isinstance(ci.distance, distances.LpDistance)
    assert ci.distance.power == 1 and not ci.distance.normalize_embeddings
    assert isinstance(ci.reducer, reducers.MeanReducer)
    assert isinstance(regularizers.RegularFaceRegularizer().distance, distances.CosineSimilarity)
    sc = regularizers.SparseCentersRegularizer(C, K)
    assert isinstance(sc.distance, distances.CosineSimilarity)
    assert isinstance(sc.reducer, reducers.DivisorReducer)
    for cls in (regularizers.LpRegularizer, regularizers.ZeroMeanRegularizer):
        reg = cls()
        assert isinstance(reg.distance, distances.LpDistance)
        assert isinstance(reg.reducer, reducers.MeanReducer)


def test_lp_recordables_and_repr():
    reg = regularizers.LpRegularizer(p=1, power=2)
    assert (reg.p, reg.power) == (1, 2)
    assert {"p", "power"} <= set(reg._record_these)
    assert "p=1" in repr(reg) and "power=2" in repr(reg)


def test_custom_reducer_is_used():
    x = _x()
    out = regularizers.LpRegularizer(reducer=reducers.SumReducer())(x)
    assert out.item() == pytest.approx(sum(_norm(r, 2) for r in x.tolist()), rel=1e-12)


def test_distance_by_name_or_class():
    for distance in ("CosineSimilarity", distances.DotProductSimilarity):
        reg = regularizers.RegularFaceRegularizer(distance=distance)
        assert reg.distance.is_inverted


def test_registry_lists_and_builds_every_regularizer():
    names = {
        "CenterInvariantRegularizer",
        "LpRegularizer",
        "RegularFaceRegularizer",
        "SparseCentersRegularizer",
        "ZeroMeanRegularizer",
    }
    assert names <= set(REGULARIZERS.names())
    reg = REGULARIZERS.build({"name": "LpRegularizer", "p": 1})
    assert isinstance(reg, regularizers.LpRegularizer) and reg.p == 1
    with pytest.raises(TypeError, match="unknown argument 'centres_per_class'"):
        REGULARIZERS.build(
            {"name": "SparseCentersRegularizer", "num_classes": 2, "centres_per_class": 2}
        )


def test_sparse_centers_stores_recordables_and_masks():
    reg = regularizers.SparseCentersRegularizer(C, K)
    # PML declares these recordable but never assigns them (they read 0); we store them.
    assert (reg.num_classes, reg.centers_per_class) == (C, K)
    buffers = dict(reg.named_buffers())
    assert set(buffers) == {"same_class_mask", "diff_class_mask"}
    assert "same_class_mask" not in reg.state_dict()  # non-persistent
    same, diff = reg.same_class_mask, reg.diff_class_mask
    assert same.dtype == torch.bool and same.shape == (C * K, C * K)
    for i in range(C * K):
        for j in range(C * K):
            assert bool(same[i, j]) == (i // K == j // K and i < j)
            assert bool(diff[i, j]) == (i // K != j // K)


def test_sparse_centers_stats():
    x = _x()
    off = regularizers.SparseCentersRegularizer(C, K, collect_stats=False)
    off(x)
    assert getattr(off, "same_class_center_sim", None) is None
    assert getattr(off, "diff_class_center_sim", None) is None

    with config.collect_stats():
        on = regularizers.SparseCentersRegularizer(C, K)
    on(x)
    rows = x.tolist()
    pairs = [(i, j) for i in range(C * K) for j in range(C * K)]
    same = [_cos(rows[i], rows[j]) for i, j in pairs if i // K == j // K and i < j]
    diff = [_cos(rows[i], rows[j]) for i, j in pairs if i // K != j // K]
    assert on.same_class_center_sim.item() == pytest.approx(_mean(same), rel=1e-6)
    assert on.diff_class_center_sim.item() == pytest.approx(_mean(diff), rel=1e-6)
    assert int(on.reducer.divisor) == C * K * (K - 1)


def test_as_embedding_regularizer_of_a_loss():
    x, y = _x(n=10), torch.arange(10) % 3
    plain = losses.ContrastiveLoss()(x, y)
    reg = regularizers.LpRegularizer()
    combined = losses.ContrastiveLoss(embedding_regularizer=reg, embedding_reg_weight=0.5)(x, y)
    assert combined.item() == pytest.approx(plain.item() + 0.5 * ref_lp(x.tolist()), rel=1e-9)


# ---------------------------------------------------------------------------- errors
ALL_FACTORIES = [
    CASES[name][0]
    for name in ("lp", "center_invariant", "regular_face", "sparse_centers", "zero_mean")
]


@pytest.mark.parametrize("factory", ALL_FACTORIES)
def test_one_dimensional_x_raises(factory):
    with pytest.raises(ValueError, match=r"expected `x` of shape \(N, D\), got \(12,\)"):
        factory()(torch.randn(12))


@pytest.mark.parametrize(
    ("cls", "distance", "match"),
    [
        (
            regularizers.CenterInvariantRegularizer,
            distances.LpDistance(),
            r"CenterInvariantRegularizer: expected `distance` to be "
            r"LpDistance\(power=1, normalize_embeddings=False\), "
            r"got LpDistance\(power=1, normalize_embeddings=True\)",
        ),
        (
            regularizers.CenterInvariantRegularizer,
            distances.LpDistance(power=2, normalize_embeddings=False),
            r"got LpDistance\(power=2, normalize_embeddings=False\)",
        ),
        (
            regularizers.CenterInvariantRegularizer,
            distances.CosineSimilarity(),
            r"got CosineSimilarity\(power=1, normalize_embeddings=True\)",
        ),
        (
            regularizers.RegularFaceRegularizer,
            distances.LpDistance(),
            r"RegularFaceRegularizer: expected an inverted `distance` \(a similarity such as "
            r"CosineSimilarity\), got LpDistance with is_inverted=False",
        ),
        (
            regularizers.SparseCentersRegularizer,
            distances.DotProductSimilarity(),
            r"SparseCentersRegularizer: expected `distance` to be a CosineSimilarity, "
            r"got DotProductSimilarity",
        ),
    ],
)
def test_wrong_distance_raises(cls, distance, match):
    args = (C, K) if cls is regularizers.SparseCentersRegularizer else ()
    with pytest.raises(ValueError, match=match):
        cls(*args, distance=distance)


def test_distance_of_wrong_type_raises():
    with pytest.raises(TypeError, match="expected `distance` to be a BaseDistance"):
        regularizers.ZeroMeanRegularizer(distance=3)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"p": "2"}, TypeError, r"LpRegularizer: expected `p` to be a real number, got str"),
        ({"p": True}, TypeError, r"expected `p` to be a real number, got bool"),
        ({"power": None}, TypeError, r"expected `power` to be a real number, got NoneType"),
    ],
)
def test_lp_bad_hyperparameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        regularizers.LpRegularizer(**kwargs)


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((2, 1), ValueError, r"expected `centers_per_class` >= 2, got 1"),
        ((0, 3), ValueError, r"expected `num_classes` >= 1, got 0"),
        ((2.0, 3), TypeError, r"expected `num_classes` to be an int, got float"),
        ((2, True), TypeError, r"expected `centers_per_class` to be an int, got bool"),
    ],
)
def test_sparse_centers_bad_hyperparameters(args, exc, match):
    with pytest.raises(exc, match=match):
        regularizers.SparseCentersRegularizer(*args)


def test_sparse_centers_wrong_number_of_rows_raises():
    reg = regularizers.SparseCentersRegularizer(C, K)
    match = r"expected num_classes \* centers_per_class = 4 \* 3 = 12 rows, got shape \(11, 5\)"
    with pytest.raises(ValueError, match=match):
        reg(_x(n=11))
