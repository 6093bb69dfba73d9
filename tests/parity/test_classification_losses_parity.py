"""Classification / proxy losses against PML 2.9.0 with copied weights (float64): loss values,
gradients w.r.t. embeddings AND class vectors, with and without a miner's tuple, with weight
regularizers; initialisation, get_logits, get_outliers, stats and recorded attributes."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import losses as pml_losses  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402
from pytorch_metric_learning import reducers as pml_reducers  # noqa: E402
from pytorch_metric_learning import regularizers as pml_regs  # noqa: E402

from deepmetric import distances, reducers, regularizers  # noqa: E402
from deepmetric.losses.arcface_loss import ArcFaceLoss  # noqa: E402
from deepmetric.losses.cosface_loss import CosFaceLoss  # noqa: E402
from deepmetric.losses.large_margin_softmax_loss import LargeMarginSoftmaxLoss  # noqa: E402
from deepmetric.losses.normalized_softmax_loss import NormalizedSoftmaxLoss  # noqa: E402
from deepmetric.losses.p2s_grad_loss import P2SGradLoss  # noqa: E402
from deepmetric.losses.proxy_anchor_loss import ProxyAnchorLoss  # noqa: E402
from deepmetric.losses.soft_triple_loss import SoftTripleLoss  # noqa: E402
from deepmetric.losses.sphereface_loss import SphereFaceLoss  # noqa: E402
from deepmetric.losses.subcenter_arcface_loss import SubCenterArcFaceLoss  # noqa: E402

pytestmark = pytest.mark.parity

C, D, N = 7, 8, 40

OURS = {
    "LargeMarginSoftmaxLoss": LargeMarginSoftmaxLoss,
    "SphereFaceLoss": SphereFaceLoss,
    "ArcFaceLoss": ArcFaceLoss,
    "CosFaceLoss": CosFaceLoss,
    "SubCenterArcFaceLoss": SubCenterArcFaceLoss,
    "NormalizedSoftmaxLoss": NormalizedSoftmaxLoss,
    "ProxyAnchorLoss": ProxyAnchorLoss,
    "SoftTripleLoss": SoftTripleLoss,
    "P2SGradLoss": P2SGradLoss,
}
PARAM = {
    "ProxyAnchorLoss": "proxies",
    "SoftTripleLoss": "fc",
    "P2SGradLoss": "weight",
}


def _param_name(name: str) -> str:
    return PARAM.get(name, "W")


def _libs(lib):
    if lib == "ours":
        return distances, reducers, regularizers
    return pml_distances, pml_reducers, pml_regs


def _build(name: str, lib: str, spec, seed: int = 0):
    """``spec(distances, reducers, regularizers) -> kwargs`` so both sides get equal objects."""
    kwargs = spec(*_libs(lib)) if callable(spec) else dict(spec)
    torch.manual_seed(seed)
    if name == "P2SGradLoss":
        args, kwargs = (D, C), kwargs
    elif name == "SubCenterArcFaceLoss":
        args, kwargs = (), {"num_classes": C, "embedding_size": D, **kwargs}
    else:
        args = (C, D)
    cls = OURS[name] if lib == "ours" else getattr(pml_losses, name)
    return cls(*args, **kwargs)


def _pair(name: str, spec=()):
    ours, theirs = _build(name, "ours", spec), _build(name, "pml", spec)
    p = _param_name(name)
    assert torch.equal(getattr(ours, p).detach(), getattr(theirs, p).detach()), "init differs"
    ours, theirs = ours.double(), theirs.double()
    return ours, theirs


def _run(loss_fn, name, x, y, t=None):
    e = x.clone().requires_grad_()
    out = loss_fn(e, y, t)
    out.backward()
    w = getattr(loss_fn, _param_name(name))
    return out.detach(), e.grad, w.grad


def _assert_same(ours, theirs):
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-6, atol=1e-10)
    torch.testing.assert_close(ours[2], theirs[2], rtol=1e-6, atol=1e-10)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, D, generator=g, dtype=torch.float64), torch.randint(
        0, C, (N,), generator=g
    )


MINERS = {
    "none": None,
    "multi_similarity": lambda: pml_miners.MultiSimilarityMiner(epsilon=0.1),
    "triplet": lambda: pml_miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard"),
}


def _mined(miner: str, x, y):
    if MINERS[miner] is None:
        return None
    return MINERS[miner]()(x, y)


CASES = [
    ("LargeMarginSoftmaxLoss", {}),
    ("LargeMarginSoftmaxLoss", {"margin": 3, "scale": 2.5}),
    ("LargeMarginSoftmaxLoss", {"margin": 1}),
    ("SphereFaceLoss", {}),
    ("SphereFaceLoss", {"margin": 2, "scale": 1.5}),
    ("ArcFaceLoss", {}),
    ("ArcFaceLoss", {"margin": 45.0, "scale": 16}),
    ("ArcFaceLoss", {"margin": 170.0, "scale": 8}),
    ("CosFaceLoss", {}),
    ("CosFaceLoss", {"margin": 0.2, "scale": 30}),
    ("SubCenterArcFaceLoss", {}),
    ("SubCenterArcFaceLoss", {"sub_centers": 2, "margin": 20.0, "scale": 32}),
    ("NormalizedSoftmaxLoss", {}),
    ("NormalizedSoftmaxLoss", {"temperature": 0.2}),
    ("ProxyAnchorLoss", {}),
    ("ProxyAnchorLoss", {"margin": 0.3, "alpha": 8}),
    ("SoftTripleLoss", {}),
    ("SoftTripleLoss", {"centers_per_class": 3, "la": 8, "gamma": 0.3, "margin": 0.2}),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES)
@pytest.mark.parametrize("miner", sorted(MINERS))
def test_values_and_gradients(name, kwargs, miner):
    x, y = _batch()
    t = _mined(miner, x, y)
    ours, theirs = _pair(name, kwargs)
    _assert_same(_run(ours, name, x, y, t), _run(theirs, name, x, y, t))


def test_p2sgrad():
    x, y = _batch()
    ours, theirs = _pair("P2SGradLoss")
    for _step in range(2):  # the second call starts from weights an optimizer moved
        _assert_same(_run(ours, "P2SGradLoss", x, y), _run(theirs, "P2SGradLoss", x, y))
        with torch.no_grad():
            for loss_fn in (ours, theirs):
                loss_fn.weight -= 0.5 * loss_fn.weight.grad
                loss_fn.weight.grad = None


def test_empty_mining_result():
    x, y = _batch()
    empty = tuple(torch.empty(0, dtype=torch.long) for _ in range(3))
    for name in ("ArcFaceLoss", "ProxyAnchorLoss", "SoftTripleLoss", "NormalizedSoftmaxLoss"):
        ours, theirs = _pair(name)
        _assert_same(_run(ours, name, x, y, empty), _run(theirs, name, x, y, empty))


WEIGHT_REG_CASES = [
    ("ArcFaceLoss", lambda d, r, g: {"weight_regularizer": g.RegularFaceRegularizer()}),
    (
        "ArcFaceLoss",
        lambda d, r, g: {
            "weight_regularizer": g.RegularFaceRegularizer(),
            "weight_reg_weight": 0.25,
            "embedding_regularizer": g.LpRegularizer(),
        },
    ),
    ("CosFaceLoss", lambda d, r, g: {"weight_regularizer": g.CenterInvariantRegularizer()}),
    ("LargeMarginSoftmaxLoss", lambda d, r, g: {"weight_regularizer": g.LpRegularizer()}),
    ("NormalizedSoftmaxLoss", lambda d, r, g: {"weight_regularizer": g.ZeroMeanRegularizer()}),
    (
        "ProxyAnchorLoss",
        lambda d, r, g: {"weight_regularizer": g.LpRegularizer(), "weight_reg_weight": 0.5},
    ),
    (
        "SoftTripleLoss",
        lambda d, r, g: {
            "centers_per_class": 3,
            "weight_regularizer": g.SparseCentersRegularizer(C, 3),
        },
    ),
]


@pytest.mark.parametrize(("name", "spec"), WEIGHT_REG_CASES)
@pytest.mark.parametrize("miner", ["none", "multi_similarity"])
def test_weight_regularizers(name, spec, miner):
    x, y = _batch(1)
    t = _mined(miner, x, y)
    ours, theirs = _pair(name, spec)
    _assert_same(_run(ours, name, x, y, t), _run(theirs, name, x, y, t))


OPTION_CASES = [
    ("ArcFaceLoss", lambda d, r, g: {"reducer": r.SumReducer()}),
    ("ArcFaceLoss", lambda d, r, g: {"reducer": r.ThresholdReducer(low=5.0)}),
    ("CosFaceLoss", lambda d, r, g: {"reducer": r.AvgNonZeroReducer()}),
    ("NormalizedSoftmaxLoss", lambda d, r, g: {"distance": d.CosineSimilarity()}),
    ("NormalizedSoftmaxLoss", lambda d, r, g: {"distance": d.LpDistance()}),
    ("NormalizedSoftmaxLoss", lambda d, r, g: {"distance": d.LpDistance(power=2)}),
    ("ProxyAnchorLoss", lambda d, r, g: {"distance": d.LpDistance()}),
    ("ProxyAnchorLoss", lambda d, r, g: {"distance": d.DotProductSimilarity()}),
    ("ProxyAnchorLoss", lambda d, r, g: {"reducer": r.MeanReducer()}),
    ("ProxyAnchorLoss", lambda d, r, g: {"reducer": r.SumReducer()}),
    ("SoftTripleLoss", lambda d, r, g: {"distance": d.DotProductSimilarity()}),
    (
        "SoftTripleLoss",
        lambda d, r, g: {"distance": d.DotProductSimilarity(normalize_embeddings=False)},
    ),
    ("LargeMarginSoftmaxLoss", lambda d, r, g: {"distance": d.CosineSimilarity(power=2)}),
]


@pytest.mark.parametrize(("name", "spec"), OPTION_CASES)
@pytest.mark.parametrize("miner", ["none", "triplet"])
def test_reducers_and_distances(name, spec, miner):
    x, y = _batch(2)
    if name == "SoftTripleLoss" and "normalize_embeddings" in repr(spec):
        x = x * 0.2  # raw inner products: keep the logits moderate
    t = _mined(miner, x, y)
    ours, theirs = _pair(name, spec)
    _assert_same(_run(ours, name, x, y, t), _run(theirs, name, x, y, t))


def test_proxy_anchor_loss_dict():
    x, y = _batch(3)
    y[y == 2] = 3  # a proxy without positives
    spec = lambda d, r, g: {"reducer": r.DoNothingReducer()}
    ours, theirs = _pair("ProxyAnchorLoss", spec)
    a, b = ours(x, y), theirs(x, y)
    assert set(a) == set(b)
    for key in a:
        assert a[key]["divisor"] == b[key]["divisor"]
        assert a[key]["reduction_type"] == b[key]["reduction_type"]
        torch.testing.assert_close(a[key]["losses"], b[key]["losses"], rtol=1e-6, atol=1e-12)
        assert torch.equal(a[key]["indices"], b[key]["indices"])


@pytest.mark.parametrize("name", sorted(set(OURS) - {"P2SGradLoss"}))  # PML's has none
def test_get_logits(name):
    x, _ = _batch(4)
    ours, theirs = _pair(name)
    torch.testing.assert_close(ours.get_logits(x), theirs.get_logits(x), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("threshold", [30, 60, 75, 100])
def test_get_outliers(threshold):
    x, y = _batch(5)
    y[y == 4] = 0  # an absent class (PML leaves its column uninitialised)
    ours, theirs = _pair("SubCenterArcFaceLoss", {"sub_centers": 3})
    out_a, centers_a = ours.get_outliers(x, y, threshold=threshold)
    out_b, centers_b = theirs.get_outliers(x, y, threshold=threshold)
    assert out_a.tolist() == out_b.long().tolist()
    present = sorted(set(y.tolist()))
    torch.testing.assert_close(centers_a[:, present], centers_b[:, present])


def test_stats_and_recorded_attributes():
    x, y = _batch(6)
    for name in ("ArcFaceLoss", "CosFaceLoss", "LargeMarginSoftmaxLoss", "SphereFaceLoss"):
        ours, theirs = _pair(name, {"collect_stats": True})
        ours(x, y), theirs(x, y)
        assert float(ours.avg_angle) == pytest.approx(theirs.avg_angle, rel=1e-9)
    zero_in_pml = {
        "NormalizedSoftmaxLoss": {"embedding_size", "num_classes"},
        "SoftTripleLoss": {"embedding_size"},
    }
    for name in sorted(OURS):
        if name == "P2SGradLoss":
            continue
        ours, theirs = _pair(name)
        extra = {"sub_centers"} if name == "SubCenterArcFaceLoss" else set()
        assert set(ours._record_these) == set(theirs._record_these) | extra
        for attr in theirs._record_these:
            if attr in zero_in_pml.get(name, ()):
                assert getattr(theirs, attr) == 0 and getattr(ours, attr) != 0
            else:
                assert getattr(ours, attr) == pytest.approx(getattr(theirs, attr))


def test_arcface_nan_fixed_at_cosine_one():
    """PML 2.9.0 returns NaN gradients when an embedding coincides with its class vector."""
    ours, theirs = _pair("ArcFaceLoss")
    x = torch.cat([ours.W.detach().t()[:3], torch.randn(4, D, dtype=torch.float64)])
    y = torch.tensor([0, 1, 2, 0, 1, 2, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_out = _run(theirs, "ArcFaceLoss", x, y)
    ours_out = _run(ours, "ArcFaceLoss", x, y)
    assert torch.isnan(theirs_out[1]).any() or torch.isnan(theirs_out[2]).any()
    assert torch.isfinite(ours_out[1]).all() and torch.isfinite(ours_out[2]).all()
    torch.testing.assert_close(ours_out[0], theirs_out[0], rtol=1e-6, atol=1e-12)


def test_margin_units():
    ours, theirs = _pair("ArcFaceLoss", {"margin": 30.0})
    assert ours.margin == pytest.approx(float(theirs.margin)) == pytest.approx(math.radians(30))
    ours, theirs = _pair("LargeMarginSoftmaxLoss", {"margin": 3.7})
    assert ours.margin == theirs.margin == 3
    ours, theirs = _pair("SoftTripleLoss", {"gamma": 0.25})
    assert ours.gamma == pytest.approx(theirs.gamma) == pytest.approx(4.0)
