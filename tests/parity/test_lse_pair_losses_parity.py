"""Circle, MultiSimilarity, SupCon, NTXent, (Generalized)LiftedStructure and TupletMargin losses
against PML 2.9.0: values and gradients in float64 (rel 1e-6)."""

from __future__ import annotations

import pytest
import torch

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import losses as pml_losses  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402
from pytorch_metric_learning import reducers as pml_reducers  # noqa: E402
from pytorch_metric_learning import regularizers as pml_regs  # noqa: E402

from deepmetric import distances, reducers, regularizers  # noqa: E402
from deepmetric.losses.circle_loss import CircleLoss  # noqa: E402
from deepmetric.losses.generalized_lifted_structure_loss import (  # noqa: E402
    GeneralizedLiftedStructureLoss,
)
from deepmetric.losses.lifted_structure_loss import LiftedStructureLoss  # noqa: E402
from deepmetric.losses.multi_similarity_loss import MultiSimilarityLoss  # noqa: E402
from deepmetric.losses.ntxent_loss import NTXentLoss  # noqa: E402
from deepmetric.losses.supcon_loss import SupConLoss  # noqa: E402
from deepmetric.losses.tuplet_margin_loss import TupletMarginLoss  # noqa: E402

pytestmark = pytest.mark.parity

OURS = {
    "CircleLoss": CircleLoss,
    "MultiSimilarityLoss": MultiSimilarityLoss,
    "SupConLoss": SupConLoss,
    "NTXentLoss": NTXentLoss,
    "GeneralizedLiftedStructureLoss": GeneralizedLiftedStructureLoss,
    "LiftedStructureLoss": LiftedStructureLoss,
    "TupletMarginLoss": TupletMarginLoss,
}
NAMES = sorted(OURS)
COSINE_ONLY = {"CircleLoss", "TupletMarginLoss"}
CUSTOM = {
    "CircleLoss": {"m": 0.25, "gamma": 256},
    "MultiSimilarityLoss": {"alpha": 1.5, "beta": 20, "base": 0.3},
    "SupConLoss": {"temperature": 0.5},
    "NTXentLoss": {"temperature": 0.3},
    "GeneralizedLiftedStructureLoss": {"neg_margin": 0.8, "pos_margin": 0.1},
    "LiftedStructureLoss": {"neg_margin": 0.7, "pos_margin": 0.2},
    "TupletMarginLoss": {"margin": 10.0, "scale": 16},
}
DISTANCES = {
    "lp": lambda lib: lib.LpDistance(),
    "lp_squared": lambda lib: lib.LpDistance(power=2),
    "lp_raw": lambda lib: lib.LpDistance(normalize_embeddings=False),
    "cosine": lambda lib: lib.CosineSimilarity(),
    "dot_raw": lambda lib: lib.DotProductSimilarity(normalize_embeddings=False),
    "snr": lambda lib: lib.SNRDistance(),
}


def _pair(name, distance=None, reducer=None, **kwargs):
    """(ours, PML's) built from the same arguments."""
    built = []
    for cls, dist_lib, red_lib in (
        (OURS[name], distances, reducers),
        (getattr(pml_losses, name), pml_distances, pml_reducers),
    ):
        kw = dict(kwargs)
        if distance is not None:
            kw["distance"] = DISTANCES[distance](dist_lib)
        if reducer is not None:
            kw["reducer"] = getattr(red_lib, reducer)()
        built.append(cls(**kw))
    return built


def _run(loss_fn, x, *args, **kwargs):
    e = x.clone().requires_grad_()
    ref = kwargs.get("ref_emb")
    r = None
    if ref is not None:
        r = ref.clone().requires_grad_()
        kwargs["ref_emb"] = r
    out = loss_fn(e, *args, **kwargs)
    out.backward()
    return out.detach(), e.grad, None if r is None else r.grad


def _assert_same(ours, theirs):
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-6, atol=1e-12)
    for a, b in zip(ours[1:], theirs[1:], strict=True):
        if b is None:
            assert a is None or not a.abs().any()
        else:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-10)


def _batch(n=24, d=8, classes=4):
    return torch.randn(n, d, dtype=torch.float64), torch.randint(0, classes, (n,))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("params", ["default", "custom"])
@pytest.mark.parametrize("reducer", [None, "MeanReducer", "SumReducer", "AvgNonZeroReducer"])
def test_all_pairs(name, params, reducer):
    x, y = _batch()
    ours, theirs = _pair(name, reducer=reducer, **(CUSTOM[name] if params == "custom" else {}))
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


@pytest.mark.parametrize(
    ("name", "distance"),
    [(n, d) for n in NAMES if n not in COSINE_ONLY for d in sorted(DISTANCES)],
)
def test_each_distance(name, distance):
    x, y = _batch()
    ours, theirs = _pair(name, distance=distance)
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "miner", ["TripletMarginMiner", "MultiSimilarityMiner", "PairMarginMiner", "BatchHardMiner"]
)
def test_with_miner_indices(name, miner):
    x, y = _batch(n=32)
    kwargs = {"margin": 0.3} if miner == "TripletMarginMiner" else {}
    t = getattr(pml_miners, miner)(**kwargs)(x, y)
    ours, theirs = _pair(name)
    expected = _run(theirs, x, y, t)
    _assert_same(_run(ours, x, y, t), expected)
    # labels are not needed once the tuple is given
    _assert_same(_run(ours, x, indices_tuple=t), expected)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("with_tuple", [False, True])
def test_with_ref_emb(name, with_tuple):
    x, y = _batch()
    ref, ref_y = _batch(n=17)
    t = None
    if with_tuple:
        t = pml_miners.TripletMarginMiner(margin=0.5)(x, y, ref, ref_y)
    ours, theirs = _pair(name)
    kwargs = {"indices_tuple": t, "ref_emb": ref, "ref_labels": ref_y}
    _assert_same(_run(ours, x, y, **kwargs), _run(theirs, x, y, **kwargs))


@pytest.mark.parametrize("name", NAMES)
def test_loss_dict(name):
    x, y = _batch()
    ours, theirs = _pair(name, reducer="DoNothingReducer")
    a, b = ours(x, y)["loss"], theirs(x, y)["loss"]
    assert a["reduction_type"] == b["reduction_type"]
    # PML returns shape (N, 1) for some of these losses; ours are 1-D (see test below)
    assert a["losses"].ndim == 1
    torch.testing.assert_close(a["losses"], b["losses"].reshape(-1), rtol=1e-6, atol=1e-12)
    if isinstance(b["indices"], tuple):
        assert all(torch.equal(i, j) for i, j in zip(a["indices"], b["indices"], strict=True))
    else:
        assert torch.equal(a["indices"], b["indices"])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", ["one_class", "singletons", "pair", "one_pos_one_neg"])
def test_degenerate_batches(name, case):
    if case == "one_pos_one_neg":
        x, _ = _batch(n=5)
        t = (torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), torch.tensor([2]))
        y = torch.tensor([0, 0, 1, 2, 3])
    else:
        n = {"one_class": 8, "singletons": 8, "pair": 2}[case]
        x, _ = _batch(n=n)
        y = torch.zeros(n, dtype=torch.long) if case != "singletons" else torch.arange(n)
        t = None
    ours, theirs = _pair(name)
    _assert_same(_run(ours, x, y, t), _run(theirs, x, y, t))


def test_tuplet_stats():
    x, y = _batch()
    ours, theirs = _pair("TupletMarginLoss", collect_stats=True)
    ours(x, y)
    theirs(x, y)
    for stat in ("avg_pos_angle", "avg_neg_angle"):
        assert float(getattr(ours, stat)) == pytest.approx(getattr(theirs, stat), rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_recordables(name):
    ours, theirs = _pair(name, **CUSTOM[name])
    assert ours._record_these == theirs._record_these
    for attr in ours._record_these:
        assert getattr(ours, attr) == pytest.approx(getattr(theirs, attr))
    assert type(ours.reducer).__name__ == type(theirs.reducer).__name__
    assert type(ours.distance).__name__ == type(theirs.distance).__name__


@pytest.mark.parametrize("name", ["CircleLoss", "NTXentLoss"])
def test_embedding_regularizer(name):
    x, y = _batch()
    ours = OURS[name](embedding_regularizer=regularizers.LpRegularizer())
    theirs = getattr(pml_losses, name)(embedding_regularizer=pml_regs.LpRegularizer())
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


@pytest.mark.parametrize("name", ["NTXentLoss", "SupConLoss"])
def test_self_supervised_layout(name):
    """SimCLR batches: two views per instance, every instance its own class."""
    x = torch.randn(32, 8, dtype=torch.float64)
    y = torch.arange(16).repeat(2)
    ours, theirs = _pair(name)
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


@pytest.mark.parametrize("name", ["CircleLoss", "MultiSimilarityLoss", "LiftedStructureLoss"])
def test_class_weighted_reducer_deviation(name):
    """Intentional deviation: PML's (N, 1) terms broadcast against the (N,) class weights inside
    ClassWeightedReducer (an N x N mean); our 1-D terms give the weighted mean of the terms."""
    x, y = _batch()
    w = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    ours = OURS[name](reducer=reducers.ClassWeightedReducer(w))
    theirs = getattr(pml_losses, name)(reducer=pml_reducers.DoNothingReducer())
    sub = theirs(x, y)["loss"]
    anchors = sub["indices"] if sub["reduction_type"] == "element" else sub["indices"][0]
    expected = (sub["losses"].reshape(-1) * w[y[anchors]]).mean()
    torch.testing.assert_close(ours(x, y), expected, rtol=1e-6, atol=1e-12)
