"""Tuple miners against PML 2.9.0: the same tuples in the same order (deterministic miners), the
same stats, the same sampling rules (random miners)."""

from __future__ import annotations

import math

import pytest
import torch

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402

from deepmetric import distances  # noqa: E402
from deepmetric.functional import mining as F  # noqa: E402
from deepmetric.miners.angular_miner import AngularMiner  # noqa: E402
from deepmetric.miners.batch_easy_hard_miner import BatchEasyHardMiner  # noqa: E402
from deepmetric.miners.batch_hard_miner import BatchHardMiner  # noqa: E402
from deepmetric.miners.distance_weighted_miner import DistanceWeightedMiner  # noqa: E402
from deepmetric.miners.embeddings_already_packaged_as_triplets import (  # noqa: E402
    EmbeddingsAlreadyPackagedAsTriplets,
)
from deepmetric.miners.hdc_miner import HDCMiner  # noqa: E402
from deepmetric.miners.multi_similarity_miner import MultiSimilarityMiner  # noqa: E402
from deepmetric.miners.pair_margin_miner import PairMarginMiner  # noqa: E402
from deepmetric.miners.triplet_margin_miner import TripletMarginMiner  # noqa: E402
from deepmetric.miners.uniform_histogram_miner import UniformHistogramMiner  # noqa: E402

pytestmark = pytest.mark.parity

OURS = {
    "AngularMiner": AngularMiner,
    "BatchEasyHardMiner": BatchEasyHardMiner,
    "BatchHardMiner": BatchHardMiner,
    "HDCMiner": HDCMiner,
    "MultiSimilarityMiner": MultiSimilarityMiner,
    "PairMarginMiner": PairMarginMiner,
    "TripletMarginMiner": TripletMarginMiner,
}

# (miner, kwargs, allowed distances)
CONFIGS = [
    ("TripletMarginMiner", {}, "any"),
    ("TripletMarginMiner", {"margin": 0.3, "type_of_triplets": "hard"}, "any"),
    ("TripletMarginMiner", {"margin": 0.3, "type_of_triplets": "semihard"}, "any"),
    ("TripletMarginMiner", {"margin": 0.1, "type_of_triplets": "easy"}, "any"),
    ("AngularMiner", {}, "unit_l2"),
    ("AngularMiner", {"angle": 35}, "unit_l2"),
    ("BatchHardMiner", {}, "any"),
    ("BatchHardMiner", {"allowed_pos_range": (0.2, 1.2), "allowed_neg_range": (0.3, 1.6)}, "lp"),
    ("BatchEasyHardMiner", {}, "any"),
    *[
        ("BatchEasyHardMiner", {"pos_strategy": p, "neg_strategy": n}, "any")
        for p, n in [
            ("hard", "semihard"),
            ("semihard", "hard"),
            ("semihard", "easy"),
            ("hard", "all"),
            ("all", "easy"),
            ("all", "all"),
            ("easy", "easy"),
        ]
    ],
    (
        "BatchEasyHardMiner",
        {"pos_strategy": "easy", "neg_strategy": "hard", "allowed_neg_range": (0.9, 1.5)},
        "lp",
    ),
    ("PairMarginMiner", {}, "any"),
    ("PairMarginMiner", {"pos_margin": 1.0, "neg_margin": 1.3}, "lp"),
    ("PairMarginMiner", {"pos_margin": 0.4, "neg_margin": -0.1}, "cos"),
    ("MultiSimilarityMiner", {}, "any"),
    ("MultiSimilarityMiner", {"epsilon": 0.3}, "any"),
    ("HDCMiner", {}, "any"),
    ("HDCMiner", {"filter_percentage": 0.2}, "any"),
]
DISTANCES = ["default", "lp", "cos", "lp_squared", "lp_raw"]
REF_MODES = ["none", "other", "clone"]


def _distance(name, lib):
    if name == "cos":
        return lib.CosineSimilarity()
    if name == "lp":
        return lib.LpDistance()
    if name == "lp_squared":
        return lib.LpDistance(power=2)
    if name == "lp_raw":
        return lib.LpDistance(normalize_embeddings=False)
    return None


def _allowed(rule, distance):
    if rule == "unit_l2":
        return distance in ("default", "lp")
    if rule == "lp":
        return distance in ("default", "lp")
    if rule == "cos":
        return distance == "cos"
    return True


def _build(name, kwargs, distance, collect_stats=True):
    extra = {"collect_stats": collect_stats}
    ours_d, theirs_d = _distance(distance, distances), _distance(distance, pml_distances)
    if ours_d is not None:
        extra_ours, extra_theirs = {**extra, "distance": ours_d}, {**extra, "distance": theirs_d}
    else:
        extra_ours = extra_theirs = extra
    return OURS[name](**kwargs, **extra_ours), getattr(pml_miners, name)(**kwargs, **extra_theirs)


def _inputs(mode, dtype=torch.float64, n=24, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    if mode == "none":
        return (x, y), {}
    if mode == "clone":
        return (x, y), {"ref_emb": x, "ref_labels": y.clone()}
    rx = torch.randn(17, 8, generator=g, dtype=torch.float64).to(dtype)
    return (x, y), {"ref_emb": rx, "ref_labels": torch.randint(0, classes, (17,), generator=g)}


def _same_tuples(ours, theirs):
    assert len(ours) == len(theirs)
    for u, v in zip(ours, theirs, strict=True):
        assert u.dtype == torch.long
        assert torch.equal(u.cpu(), v.cpu().long())


def _stat_names(miner):
    return [s for s in miner._record_these_stats]


def _same_stats(ours, theirs):
    names = set(theirs._record_these_stats)
    assert set(_stat_names(ours)) == names
    for name in names:
        mine, ref = float(getattr(ours, name)), float(getattr(theirs, name))
        if math.isnan(ref):
            assert math.isnan(mine), name
        else:
            assert mine == pytest.approx(ref, rel=1e-6, abs=1e-9), name


CASES = [
    pytest.param(name, kwargs, distance, mode, id=f"{name}-{i}-{distance}-{mode}")
    for i, (name, kwargs, rule) in enumerate(CONFIGS)
    for distance in DISTANCES
    if _allowed(rule, distance)
    for mode in REF_MODES
]


@pytest.mark.parametrize(("name", "kwargs", "distance", "mode"), CASES)
def test_same_tuples_in_the_same_order_and_same_stats(name, kwargs, distance, mode):
    ours, theirs = _build(name, kwargs, distance)
    args, ref = _inputs(mode)
    out, expected = ours(*args, **ref), theirs(*args, **ref)
    _same_tuples(out, expected)
    assert sum(len(t) for t in expected) > 0
    _same_stats(ours, theirs)


@pytest.mark.parametrize("dtype", [torch.float32])
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("TripletMarginMiner", {"type_of_triplets": "semihard"}),
        ("TripletMarginMiner", {"type_of_triplets": "all"}),
        ("BatchHardMiner", {}),
        ("BatchEasyHardMiner", {}),
        ("PairMarginMiner", {"pos_margin": 1.0, "neg_margin": 1.3}),
        ("MultiSimilarityMiner", {}),
    ],
)
def test_same_tuples_in_low_precision(name, kwargs, dtype):
    ours, theirs = _build(name, kwargs, "default", collect_stats=False)
    (x, y), _ = _inputs("none", dtype=dtype, n=40)
    _same_tuples(ours(x, y), theirs(x, y))


def test_hdc_external_indices_cascade_like_pml():
    (x, y), _ = _inputs("none")
    ours, theirs = HDCMiner(0.5), pml_miners.HDCMiner(0.5)
    t = pml_miners.TripletMarginMiner(0.5)(x, y)
    for miner in (ours, theirs):
        miner.set_idx_externally(t, y)
    for _ in range(3):
        _same_tuples(ours(x, y), theirs(x, y))
    ours.reset_idx()
    theirs.reset_idx()
    _same_tuples(ours(x, y), theirs(x, y))


def test_angular_parity_on_a_large_batch_in_float32():
    # blockwise GEMM angles vs PML's explicit differences: agreement off the threshold
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(48, 16, generator=g), torch.randint(0, 6, (48,), generator=g)
    ours = {tuple(t) for t in zip(*(u.tolist() for u in AngularMiner(30)(x, y)), strict=True)}
    theirs = pml_miners.AngularMiner(30)(x, y)
    theirs = {tuple(t) for t in zip(*(u.tolist() for u in theirs), strict=True)}
    assert len(ours ^ theirs) <= 2 and len(theirs) > 100


def test_embeddings_already_packaged():
    x, y = torch.randn(12, 3), torch.zeros(12, dtype=torch.long)
    _same_tuples(
        EmbeddingsAlreadyPackagedAsTriplets()(x, y),
        pml_miners.EmbeddingsAlreadyPackagedAsTriplets()(x, y),
    )


# ------------------------------------------------------------------ random miners
@pytest.mark.parametrize("mode", REF_MODES)
def test_distance_weighted_same_anchors_counts_and_weights(mode):
    (x, y), ref = _inputs(mode, n=16, classes=3)
    ours = DistanceWeightedMiner(
        nonzero_loss_cutoff=1.6, generator=torch.Generator().manual_seed(0)
    )
    theirs = pml_miners.DistanceWeightedMiner(nonzero_loss_cutoff=1.6)
    a, p, n = ours(x, y, **ref)
    torch.manual_seed(0)
    pa, pp, pn = theirs(x, y, **ref)
    assert torch.equal(torch.bincount(a, minlength=16), torch.bincount(pa, minlength=16))
    rx, ry = (x, y) if not ref else (ref["ref_emb"], ref["ref_labels"])
    for anchors, positives, negatives in ((a, p, n), (pa, pp, pn)):
        assert bool((ry[positives] == y[anchors]).all())
        assert bool((ry[negatives] != y[anchors]).all())
    # PML's empirical negative frequencies follow our weights
    mat = distances.LpDistance()(x, None if rx is x else rx)
    w = F.distance_weighted_weights(
        mat, y[:, None] == ry[None, :], dim=8, cutoff=0.5, nonzero_loss_cutoff=1.6
    )
    counts = torch.zeros_like(w)
    for _ in range(150):
        pa, _, pn = theirs(x, y, **ref)
        counts.index_put_((pa, pn), torch.ones(len(pa), dtype=w.dtype), accumulate=True)
    rows = counts.sum(dim=1) > 0
    freq = counts[rows] / counts[rows].sum(dim=1, keepdim=True)
    total = counts[rows].sum(dim=1, keepdim=True)
    sigma = (w[rows] * (1 - w[rows]) / total).sqrt()
    assert bool((freq - w[rows]).abs().le(5 * sigma + 1e-9).all())


@pytest.mark.parametrize("distance", ["default", "cos"])
def test_uniform_histogram_same_bins_and_counts(distance):
    (x, y), _ = _inputs("none", n=20)
    d_ours = _distance(distance, distances)
    d_pml = _distance(distance, pml_distances)
    extra_ours = {"distance": d_ours} if d_ours else {}
    extra_pml = {"distance": d_pml} if d_pml else {}
    ours = UniformHistogramMiner(12, 3, 2, generator=torch.Generator().manual_seed(0), **extra_ours)
    theirs = pml_miners.UniformHistogramMiner(12, 3, 2, **extra_pml)
    out, expected = ours(x, y), theirs(x, y)
    mat = (d_ours or distances.LpDistance())(x)
    same = y[:, None] == y[None, :]
    same.fill_diagonal_(False)
    for (a, o), (pa, po), mask in (
        ((out[0], out[1]), (expected[0], expected[1]), same),
        ((out[2], out[3]), (expected[2], expected[3]), y[:, None] != y[None, :]),
    ):
        values = mat[mask]
        edges = torch.linspace(values.min(), values.max(), 13, dtype=values.dtype)

        def bins(v, edges=edges):
            return (torch.searchsorted(edges, v, right=True) - 1).clamp(0, 11)

        assert torch.equal(bins(mat[a, o]), bins(mat[pa, po]))  # same bins, same order
        assert bool(mask[a, o].all())
