"""Deterministic tuple miners against the float64 loop references (tests/reference/miners_ref.py):
selection and order, stats, reference sets, distances, block sizes, degenerate batches, dtypes."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric import distances
from deepmetric._registry import MINERS
from deepmetric.functional import mining as F
from deepmetric.functional import tuples as T
from deepmetric.miners.angular_miner import AngularMiner
from deepmetric.miners.base_miner import BaseMiner
from deepmetric.miners.base_tuple_miner import BaseTupleMiner
from deepmetric.miners.batch_easy_hard_miner import BatchEasyHardMiner
from deepmetric.miners.batch_hard_miner import BatchHardMiner
from deepmetric.miners.distance_weighted_miner import DistanceWeightedMiner
from deepmetric.miners.embeddings_already_packaged_as_triplets import (
    EmbeddingsAlreadyPackagedAsTriplets,
)
from deepmetric.miners.hdc_miner import HDCMiner
from deepmetric.miners.multi_similarity_miner import MultiSimilarityMiner
from deepmetric.miners.pair_margin_miner import PairMarginMiner
from deepmetric.miners.triplet_margin_miner import TripletMarginMiner
from deepmetric.miners.uniform_histogram_miner import UniformHistogramMiner
from reference import miners_ref as R

KINDS = {"l2": False, "cos": True}  # kind -> is_inverted
REF_MODES = ["none", "other", "clone"]  # no ref; a separate set; ref_emb=x with copied labels
STRATEGIES = ["hard", "semihard", "easy", "all"]
VALID_STRATEGY_PAIRS = [
    (p, n)
    for p in STRATEGIES
    for n in STRATEGIES
    if not (p == n == "semihard") and {p, n} != {"semihard", "all"}
]


def _distance(kind: str):
    return distances.CosineSimilarity() if kind == "cos" else distances.LpDistance()


def _batch(n=14, d=6, classes=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
    return x, torch.randint(0, classes, (n,), generator=g)


def _call(miner, x, y, mode):
    """Run ``miner`` in a reference mode; returns (output, ref_x, ref_y, same_source)."""
    if mode == "none":
        return miner(x, y), x, y, True
    if mode == "clone":
        ry = y.clone()
        return miner(x, y, x, ry), x, ry, False
    g = torch.Generator().manual_seed(99)
    rx = torch.randn(11, x.shape[1], generator=g, dtype=torch.float64).to(x.dtype)
    ry = torch.randint(0, 3, (11,), generator=g)
    return miner(x, y, rx, ry), rx, ry, False


def lists(tup):
    return [t.tolist() for t in tup]


def triplets(tup):
    return list(zip(*lists(tup), strict=True))


# ------------------------------------------------------------------ TripletMarginMiner
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mode", REF_MODES)
@pytest.mark.parametrize("type_of_triplets", ["all", "hard", "semihard", "easy"])
def test_triplet_margin_miner_matches_reference(kind, mode, type_of_triplets):
    x, y = _batch()
    margin = 0.3
    miner = TripletMarginMiner(margin, type_of_triplets, distance=_distance(kind))
    out, rx, ry, same = _call(miner, x, y, mode)
    d = R.table(x, rx, kind)
    expected = R.triplet_margin_miner(
        d, y.tolist(), ry.tolist(), same, KINDS[kind], margin, type_of_triplets
    )
    assert triplets(out) == expected
    assert len(expected) > 0
    assert miner.num_triplets == len(expected)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mode", REF_MODES)
def test_triplet_margin_miner_stats(kind, mode):
    x, y = _batch()
    miner = TripletMarginMiner(0.2, "semihard", distance=_distance(kind), collect_stats=True)
    _, rx, ry, same = _call(miner, x, y, mode)
    d = R.table(x, rx, kind)
    margin, ap, an = R.triplet_margin_stats(d, y.tolist(), ry.tolist(), same, KINDS[kind])
    assert float(miner.avg_triplet_margin) == pytest.approx(margin, rel=1e-9, abs=1e-12)
    assert float(miner.pos_pair_dist) == pytest.approx(ap, rel=1e-9)
    assert float(miner.neg_pair_dist) == pytest.approx(an, rel=1e-9)


def test_triplet_margin_miner_stats_are_nan_without_triplets_and_absent_when_off():
    miner = TripletMarginMiner(collect_stats=True)
    a, p, n = miner(torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 3]))
    assert len(a) == len(p) == len(n) == 0
    assert math.isnan(float(miner.avg_triplet_margin))  # PML: mean of nothing
    quiet = TripletMarginMiner(collect_stats=False)
    quiet(torch.randn(4, 3), torch.tensor([0, 0, 1, 1]))
    assert getattr(quiet, "avg_triplet_margin", None) is None
    assert quiet.num_triplets > 0 and getattr(quiet, "num_pos_pairs", None) is None


@pytest.mark.parametrize("block_elements", [1, 7, 64, 1000])
@pytest.mark.parametrize("type_of_triplets", ["all", "semihard"])
def test_triplet_selection_is_independent_of_block_size(block_elements, type_of_triplets):
    x, y = _batch(n=20, classes=4)
    mat = distances.LpDistance()(x)
    pos, neg = T.get_matches_and_diffs(y)
    kw = {"margin": 0.25, "type_of_triplets": type_of_triplets, "is_inverted": False}
    full = F.triplet_margin_select(mat, pos, neg, **kw)
    small = F.triplet_margin_select(mat, pos, neg, block_elements=block_elements, **kw)
    assert lists(small) == lists(full)


def test_triplet_margin_miner_margin_boundaries_are_pml_inclusive():
    # d_an - d_ap is exactly 0 or exactly the margin for some triplets (1-D unit vectors)
    x = torch.tensor([[1.0], [1.0], [-1.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    # d(0,1)=0, d(0,2)=2, d(0,3)=0: triplet (0,1,3) has margin exactly 0
    hard = TripletMarginMiner(margin=0.0, type_of_triplets="hard")(x, y)
    assert (0, 1, 3) in triplets(hard)
    semi = TripletMarginMiner(margin=2.0, type_of_triplets="semihard")(x, y)
    assert (0, 1, 2) in triplets(semi) and (0, 1, 3) not in triplets(semi)  # 0 < 2 <= 2
    easy = TripletMarginMiner(margin=2.0, type_of_triplets="easy")(x, y)
    assert (0, 1, 2) not in triplets(easy)


# ------------------------------------------------------------------ AngularMiner
@pytest.mark.parametrize("mode", REF_MODES)
@pytest.mark.parametrize("angle", [20, 40])
def test_angular_miner_matches_reference(mode, angle):
    x, y = _batch(n=12, d=5)
    miner = AngularMiner(angle, collect_stats=True)
    out, rx, ry, same = _call(miner, x, y, mode)
    expected, ang = R.angular_miner(x, rx, y.tolist(), ry.tolist(), same, angle)
    assert triplets(out) == expected and len(expected) > 0
    stats = R.angle_stats(list(ang.values()), math.radians(angle))
    for name, value in stats.items():
        assert float(getattr(miner, name)) == pytest.approx(value, rel=1e-9), name


def test_angular_miner_stores_radians_and_uses_raw_embeddings():
    assert AngularMiner(30).angle == pytest.approx(math.pi / 6)
    x, y = _batch(n=10, d=4)
    miner = AngularMiner(25)
    scaled = miner(x * 5, y)  # angles are scale-invariant: same triplets
    assert lists(scaled) == lists(miner(x, y))


def test_angular_stats_stay_zero_without_triplets():
    miner = AngularMiner(collect_stats=True)
    miner(torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 1, 2]))
    assert miner.average_angle == 0 and miner.std_of_angle == 0


@pytest.mark.parametrize("block_elements", [1, 9, 10**6])
def test_angular_selection_is_independent_of_block_size(block_elements):
    x, y = _batch(n=16, d=5)
    pos, neg = T.get_matches_and_diffs(y)
    full, s_full = F.angular_select(x, x, pos, neg, angle=0.5, with_stats=True)
    small, s_small = F.angular_select(
        x, x, pos, neg, angle=0.5, with_stats=True, block_elements=block_elements
    )
    assert lists(small) == lists(full)
    for u, v in zip(s_small, s_full, strict=True):
        assert float(u) == pytest.approx(float(v), rel=1e-12)


# ------------------------------------------------------------------ BatchEasyHard / BatchHard
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mode", REF_MODES)
@pytest.mark.parametrize(("pos_strategy", "neg_strategy"), VALID_STRATEGY_PAIRS)
def test_batch_easy_hard_matches_reference(kind, mode, pos_strategy, neg_strategy):
    x, y = _batch(n=16, classes=4)
    miner = BatchEasyHardMiner(
        pos_strategy, neg_strategy, distance=_distance(kind), collect_stats=True
    )
    out, rx, ry, same = _call(miner, x, y, mode)
    d = R.table(x, rx, kind)
    (exp, pv, nv) = R.batch_easy_hard(
        d, y.tolist(), ry.tolist(), same, KINDS[kind], pos_strategy, neg_strategy
    )
    assert lists(out) == [list(t) for t in exp]
    with_triplets = "all" not in (pos_strategy, neg_strategy)
    for name, value in R.batch_easy_hard_stats(pv, nv, KINDS[kind], with_triplets).items():
        assert float(getattr(miner, name)) == pytest.approx(value, rel=1e-12), name


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(("pos_strategy", "neg_strategy"), VALID_STRATEGY_PAIRS)
def test_batch_easy_hard_allowed_ranges(kind, pos_strategy, neg_strategy):
    x, y = _batch(n=16, classes=4, seed=3)
    pos_range, neg_range = ((0.3, 1.1), (0.6, 1.5)) if kind == "l2" else ((-0.4, 0.6), (-0.5, 0.3))
    miner = BatchEasyHardMiner(
        pos_strategy, neg_strategy, pos_range, neg_range, distance=_distance(kind)
    )
    d = R.table(x, x, kind)
    (exp, _, _) = R.batch_easy_hard(
        d,
        y.tolist(),
        y.tolist(),
        True,
        KINDS[kind],
        pos_strategy,
        neg_strategy,
        pos_range,
        neg_range,
    )
    assert lists(miner(x, y)) == [list(t) for t in exp]  # "all" ignores its range, like PML


def test_allowed_range_ends_are_included():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    # anchor 0: positive 1 at d=0, negatives 2 at d=sqrt(2), 3 at d=2
    miner = BatchEasyHardMiner(
        "hard", "hard", allowed_pos_range=(0.0, 0.0), allowed_neg_range=(2.0, 2.0)
    )
    a1, p, a2, n = miner(x, y)
    assert (a1.tolist(), p.tolist(), a2.tolist(), n.tolist()) == ([0, 1], [1, 0], [0, 1], [3, 3])


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mode", REF_MODES)
def test_batch_hard_is_hard_hard_as_triplets(kind, mode):
    x, y = _batch(n=16, classes=4)
    out, rx, ry, same = _call(BatchHardMiner(distance=_distance(kind)), x, y, mode)
    d = R.table(x, rx, kind)
    (exp, _, _) = R.batch_easy_hard(d, y.tolist(), ry.tolist(), same, KINDS[kind], "hard", "hard")
    assert len(out) == 3
    assert lists(out) == [exp[0], exp[1], exp[3]]


def test_batch_hard_passes_ranges_and_ties_go_to_the_first_column():
    x = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    a, p, n = BatchHardMiner()(x, y)  # every positive ties (d=0), every negative ties
    assert a.tolist() == [0, 1, 2, 3, 4, 5]
    assert p.tolist() == [1, 0, 0, 4, 3, 3] and n.tolist() == [3, 3, 3, 0, 0, 0]
    a, p, n = BatchHardMiner(allowed_pos_range=(0.5, 2.0))(x, y)
    assert len(a) == 0


# ------------------------------------------------------------------ pair miners
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mode", REF_MODES)
def test_pair_margin_miner_matches_reference(kind, mode):
    x, y = _batch()
    margins = (0.9, 1.3) if kind == "l2" else (0.3, -0.2)
    miner = PairMarginMiner(*margins, distance=_distance(kind), collect_stats=True)
    out, rx, ry, same = _call(miner, x, y, mode)
    exp, stats = R.pair_margin(
        R.table(x, rx, kind), y.tolist(), ry.tolist(), same, KINDS[kind], *margins
    )
    assert lists(out) == [list(t) for t in exp]
    assert all(len(t) > 0 for t in exp)
    for name, value in stats.items():
        assert float(getattr(miner, name)) == pytest.approx(value, rel=1e-12)


def test_pair_margin_stats_are_zero_without_pairs():
    miner = PairMarginMiner(collect_stats=True)
    miner(torch.randn(3, 4), torch.tensor([0, 1, 2]))
    assert float(miner.pos_pair_dist) == 0 and float(miner.neg_pair_dist) > 0
    assert miner.num_pos_pairs == 0


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mode", REF_MODES)
@pytest.mark.parametrize("epsilon", [0.05, 0.3])
def test_multi_similarity_miner_matches_reference_in_order(kind, mode, epsilon):
    x, y = _batch(n=16, classes=4)
    miner = MultiSimilarityMiner(epsilon, distance=_distance(kind))
    out, rx, ry, same = _call(miner, x, y, mode)
    exp = R.multi_similarity(
        R.table(x, rx, kind), y.tolist(), ry.tolist(), same, mode == "clone", KINDS[kind], epsilon
    )
    assert lists(out) == [list(t) for t in exp]
    assert len(exp[0]) > 0 and len(exp[2]) > 0


def test_multi_similarity_default_distance_is_cosine_and_ties_go_by_column():
    assert isinstance(MultiSimilarityMiner().distance, distances.CosineSimilarity)
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.6, 0.8]])
    y = torch.tensor([0, 0, 0, 1, 1])
    a1, p, a2, n = MultiSimilarityMiner(epsilon=1.0)(x, y)
    assert a1.tolist()[:2] == [0, 0] and p.tolist()[:2] == [1, 2]  # tied similarities: by column
    assert a2.tolist()[:2] == [0, 0] and n.tolist()[:2] == [3, 4]


def test_multi_similarity_returns_empty_without_positives_or_negatives():
    miner = MultiSimilarityMiner()
    for labels in (torch.tensor([0, 1, 2]), torch.tensor([4, 4, 4])):
        out = miner(torch.randn(3, 5), labels)
        assert all(len(t) == 0 and t.dtype == torch.long for t in out)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mode", REF_MODES)
@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_hdc_miner_matches_reference(kind, mode, fraction):
    x, y = _batch(n=12)
    (a1, p, a2, n), rx, ry, same = _call(HDCMiner(fraction, distance=_distance(kind)), x, y, mode)
    d = R.table(x, rx, kind)
    pos, neg = R.candidates(y.tolist(), ry.tolist(), same)
    pos_pairs = [(a, j) for a in range(len(y)) for j in pos[a]]
    neg_pairs = [(a, j) for a in range(len(y)) for j in neg[a]]
    exp_pos, exp_neg = R.hdc(d, pos_pairs, neg_pairs, KINDS[kind], fraction)
    got_pos = list(zip(a1.tolist(), p.tolist(), strict=True))
    got_neg = list(zip(a2.tolist(), n.tolist(), strict=True))
    if mode == "other":  # no tied values: the exact pairs, hardest first
        assert got_pos == exp_pos and got_neg == exp_neg
    else:  # a same-source matrix is symmetric: (i, j) and (j, i) tie, either may come first
        assert [d[i][j] for i, j in got_pos] == pytest.approx([d[i][j] for i, j in exp_pos])
        assert [d[i][j] for i, j in got_neg] == pytest.approx([d[i][j] for i, j in exp_neg])


def test_hdc_miner_is_stateful_like_pml():
    x, y = _batch(n=12)
    miner = HDCMiner(0.5)
    full = miner(x, y)
    assert not miner.was_set_externally and miner.a1 is full[0]  # state = last output
    external = (
        torch.tensor([0, 1, 2, 3]),
        torch.tensor([4, 5, 6, 7]),
        torch.tensor([8, 9, 10, 11]),
    )
    miner.set_idx_externally(external, y)
    assert miner.was_set_externally
    first = miner(x, y)
    assert len(first[0]) == 2 and set(first[0].tolist()) <= {0, 1, 2, 3}
    second = miner(x, y)  # the cascade filters its own previous output
    assert len(second[0]) == 1 and second[0].item() in first[0].tolist()
    miner.reset_idx()
    assert miner.a1 is None and not miner.was_set_externally
    assert lists(miner(x, y)) == lists(full)


def test_hdc_miner_rejects_external_indices_out_of_range():
    miner = HDCMiner()
    miner.set_idx_externally((torch.tensor([0]), torch.tensor([50]), torch.tensor([1])), None)
    with pytest.raises(ValueError, match=r"HDCMiner: expected indices_tuple\[1\] within"):
        miner(torch.randn(4, 3), torch.tensor([0, 0, 1, 1]))


# ------------------------------------------------------------------ already packaged triplets
def test_embeddings_already_packaged_as_triplets():
    miner = EmbeddingsAlreadyPackagedAsTriplets()
    a, p, n = miner(torch.randn(9, 4), torch.zeros(9, dtype=torch.long))
    assert (a.tolist(), p.tolist(), n.tolist()) == ([0, 3, 6], [1, 4, 7], [2, 5, 8])
    assert miner.num_triplets == 3
    for bad in (4, 5, 7):
        with pytest.raises(ValueError, match=r"multiple of 3.*got N=" + str(bad)):
            miner(torch.randn(bad, 4), torch.zeros(bad, dtype=torch.long))


# ------------------------------------------------------------------ every miner: contract
DETERMINISTIC = {
    "TripletMarginMiner": lambda: TripletMarginMiner(0.3, "all"),
    "AngularMiner": lambda: AngularMiner(20),
    "BatchEasyHardMiner": lambda: BatchEasyHardMiner(),
    "BatchHardMiner": lambda: BatchHardMiner(),
    "PairMarginMiner": lambda: PairMarginMiner(0.9, 1.3),
    "MultiSimilarityMiner": lambda: MultiSimilarityMiner(),
    "HDCMiner": lambda: HDCMiner(),
    "EmbeddingsAlreadyPackagedAsTriplets": lambda: EmbeddingsAlreadyPackagedAsTriplets(),
}


def test_every_miner_is_registered_and_a_tuple_miner():
    names = {"DistanceWeightedMiner", "UniformHistogramMiner", *DETERMINISTIC}
    assert names <= set(MINERS.names())
    for name in names:
        assert issubclass(MINERS.get(name), BaseTupleMiner)
    assert MINERS.get("DistanceWeightedMiner") is DistanceWeightedMiner
    assert MINERS.get("UniformHistogramMiner") is UniformHistogramMiner
    assert issubclass(BaseTupleMiner, BaseMiner)
    assert "BaseTupleMiner" not in MINERS and "BaseMiner" not in MINERS  # abstract


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_every_miner_runs_in_every_dtype_with_valid_long_output(name, dtype):
    x, y = _batch(n=15, classes=3, dtype=dtype)
    out = DETERMINISTIC[name]()(x, y)
    assert all(t.dtype == torch.long and t.device == x.device for t in out)
    if name == "EmbeddingsAlreadyPackagedAsTriplets":
        return
    a, p = out[0], out[1]
    n_anchor, neg = (out[0], out[2]) if len(out) == 3 else (out[2], out[3])
    assert len(a) > 0 and len(neg) > 0
    assert torch.equal(y[a], y[p]) and not bool((a == p).any())
    assert bool((y[n_anchor] != y[neg]).all())


def _near_boundary_only(got, expected, values, thresholds, band):
    """Tuples on which a low-precision run and the float64 reference disagree must sit within
    ``band`` of a decision threshold."""
    for t in set(got) ^ set(expected):
        assert min(abs(values[t] - c) for c in thresholds) < band, (t, values[t])


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("type_of_triplets", ["all", "hard", "semihard", "easy"])
def test_triplet_margin_miner_low_precision_agrees_off_the_boundary(dtype, type_of_triplets):
    x, y = _batch(n=16, classes=3, dtype=dtype)
    got = triplets(TripletMarginMiner(0.2, type_of_triplets)(x, y))
    d = R.table(x.double(), x.double(), "l2")
    margins = R.triplet_margins(d, y.tolist(), y.tolist(), True, False)
    expected = [t for t in margins if R.triplet_margin_keep(margins[t], 0.2, type_of_triplets)]
    band = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}
    _near_boundary_only(got, expected, margins, (0.0, 0.2), band[dtype])
    assert len(set(got) ^ set(expected)) <= max(2, len(expected) // 10)
    if dtype == torch.float64:
        assert got == sorted(expected)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_angular_miner_low_precision_agrees_off_the_boundary(dtype):
    x, y = _batch(n=12, d=5, dtype=dtype)
    got = triplets(AngularMiner(30)(x, y))
    expected, ang = R.angular_miner(x.double(), x.double(), y.tolist(), y.tolist(), True, 30)
    band = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}
    _near_boundary_only(got, expected, ang, (math.radians(30),), band[dtype])


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_batch_hard_low_precision_picks_extreme_values(dtype):
    x, y = _batch(n=16, classes=4, dtype=dtype)
    a, p, n = BatchHardMiner()(x, y)
    d = R.table(x.double(), x.double(), "l2")
    (exp, pv, nv) = R.batch_easy_hard(d, y.tolist(), y.tolist(), True, False, "hard", "hard")
    assert a.tolist() == exp[0]
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}
    got_p = [d[i][j] for i, j in zip(a.tolist(), p.tolist(), strict=True)]
    got_n = [d[i][j] for i, j in zip(a.tolist(), n.tolist(), strict=True)]
    assert got_p == pytest.approx(pv, abs=tol[dtype]) and got_n == pytest.approx(nv, abs=tol[dtype])


# ------------------------------------------------------------------ degenerate batches
@pytest.mark.parametrize(
    "name", sorted(set(DETERMINISTIC) - {"EmbeddingsAlreadyPackagedAsTriplets"})
)
@pytest.mark.parametrize("labels", [[0, 0, 0], [0, 1, 2], [5]])
def test_degenerate_batches_give_empty_valid_output(name, labels):
    y = torch.tensor(labels)
    out = DETERMINISTIC[name]()(torch.randn(len(labels), 4), y)
    if name in ("TripletMarginMiner", "AngularMiner", "BatchHardMiner", "BatchEasyHardMiner"):
        assert len(out[0]) == 0  # no triplet exists / no anchor has both
    assert all(t.dtype == torch.long for t in out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses RLIMIT_AS and /proc")
def test_all_triplet_miners_never_build_the_cube():
    # 2048 samples in pairs: 4.2M candidate triplets; an N x N x N float tensor would be 32 GiB
    code = textwrap.dedent(
        """
        import resource
        import torch
        from deepmetric.miners.angular_miner import AngularMiner
        from deepmetric.miners.triplet_margin_miner import TripletMarginMiner
        torch.set_num_threads(1)
        status = open("/proc/self/status").read().splitlines()
        vm = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, resource.RLIM_INFINITY))
        x, y = torch.randn(2048, 16), torch.arange(2048) // 2
        a, p, n = TripletMarginMiner(margin=10.0, type_of_triplets="all", collect_stats=True)(x, y)
        assert len(a) == 2048 * 2046, len(a)
        a, p, n = AngularMiner(angle=0)(x, y)
        assert 0 < len(a) <= 2048 * 2046
        try:
            torch.zeros(2048, 2048, 2048, dtype=torch.bool)
        except (RuntimeError, MemoryError):
            print("cube refused")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "cube refused" in out.stdout


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_copy_pickle_and_repr(name):
    import copy
    import pickle

    miner = DETERMINISTIC[name]()
    x, y = _batch(n=12)
    for clone in (copy.deepcopy(miner), pickle.loads(pickle.dumps(miner))):
        assert lists(clone(x, y)) == lists(miner(x, y))
    assert name in repr(miner)
    for attr in miner._record_these:
        assert f"{attr}=" in repr(miner)


def test_random_miners_copy_their_generator():
    import copy

    x, y = _batch(n=12)
    miner = DistanceWeightedMiner(generator=torch.Generator().manual_seed(4))
    twin = copy.deepcopy(miner)
    assert lists(twin(x, y)) == lists(miner(x, y))
    hist = UniformHistogramMiner(generator=torch.Generator().manual_seed(4))
    assert lists(copy.deepcopy(hist)(x, y)) == lists(hist(x, y))
