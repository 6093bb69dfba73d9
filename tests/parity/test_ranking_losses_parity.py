"""FastAP, Histogram, PNP, RankedList and Manifold losses against PML 2.9.0: values and gradients
(float64)."""

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
from deepmetric.losses.fast_ap_loss import FastAPLoss  # noqa: E402
from deepmetric.losses.histogram_loss import HistogramLoss  # noqa: E402
from deepmetric.losses.manifold_loss import ManifoldLoss  # noqa: E402
from deepmetric.losses.pnp_loss import PNPLoss  # noqa: E402
from deepmetric.losses.ranked_list_loss import RankedListLoss  # noqa: E402

pytestmark = [
    pytest.mark.parity,
    # PML's HistogramLoss indexes with a list of lists (deprecated in torch)
    pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning"),
]

OURS = {
    "FastAPLoss": FastAPLoss,
    "HistogramLoss": HistogramLoss,
    "PNPLoss": PNPLoss,
    "RankedListLoss": RankedListLoss,
    "ManifoldLoss": ManifoldLoss,
}
LIBS = {
    "ours": (OURS, distances, reducers, regularizers),
    "pml": (pml_losses.__dict__, pml_distances, pml_reducers, pml_regs),
}


def _build(lib, name, distance=None, reducer=None, regularizer=False, **kwargs):
    """The same loss in both libraries; ``distance``/``reducer``: (class name, kwargs)."""
    loss_classes, dist_mod, red_mod, reg_mod = LIBS[lib]
    if distance is not None:
        kwargs["distance"] = getattr(dist_mod, distance[0])(**distance[1])
    if reducer is not None:
        kwargs["reducer"] = getattr(red_mod, reducer[0])(**reducer[1])
    if regularizer:
        kwargs["embedding_regularizer"] = reg_mod.LpRegularizer()
    return loss_classes[name](**kwargs)


def _run(loss_fn, x, *args, **kwargs):
    e = x.clone().requires_grad_()
    out = loss_fn(e, *args, **kwargs)
    out.backward()
    return out.detach(), e.grad


def _compare(name, x, *args, rtol=1e-6, atol=1e-10, build=None, **kwargs):
    build = build or {}
    ours = _run(_build("ours", name, **build), x, *args, **kwargs)
    theirs = _run(_build("pml", name, **build), x, *args, **kwargs)
    torch.testing.assert_close(ours[0], theirs[0], rtol=rtol, atol=1e-12)
    torch.testing.assert_close(ours[1], theirs[1], rtol=rtol, atol=atol)


def _batch(n=24, d=8, classes=4):
    return torch.randn(n, d, dtype=torch.float64), torch.randint(0, classes, (n,))


def _miner_tuple(miner, x, y):
    kwargs = {"margin": 0.3} if miner == "TripletMarginMiner" else {}
    return getattr(pml_miners, miner)(**kwargs)(x, y)


REDUCERS = {
    "default": None,
    "sum": ("SumReducer", {}),
    "avg_nonzero": ("AvgNonZeroReducer", {}),
    "threshold": ("ThresholdReducer", {"low": 0.2, "high": 0.9}),
}


# ------------------------------------------------------------------------------------ FastAP
@pytest.mark.parametrize("num_bins", [10, 4])
@pytest.mark.parametrize("power", [2, 1])
@pytest.mark.parametrize("reducer", sorted(REDUCERS))
def test_fast_ap(num_bins, power, reducer):
    x, y = _batch()
    build = {
        "num_bins": num_bins,
        "distance": ("LpDistance", {"power": power}),
        "reducer": REDUCERS[reducer],
    }
    _compare("FastAPLoss", x, y, build=build)


@pytest.mark.parametrize("miner", ["TripletMarginMiner", "MultiSimilarityMiner"])
def test_fast_ap_with_miner(miner):
    x, y = _batch(n=32)
    _compare("FastAPLoss", x, y, _miner_tuple(miner, x, y))


def test_fast_ap_regularizer():
    x, y = _batch()
    _compare("FastAPLoss", x, y, build={"regularizer": True})


# ------------------------------------------------------------------------------------ Histogram
# PML computes ``bin * delta`` in float32, so with a delta that float32 cannot hold exactly the
# two differ at ~1e-7 relative; deltas that are powers of two compare exactly.
@pytest.mark.parametrize(
    ("kwargs", "rtol"),
    [({"n_bins": 8}, 1e-6), ({"delta": 0.0625}, 1e-6), ({}, 1e-5), ({"n_bins": 10}, 1e-5)],
)
@pytest.mark.parametrize("distance", ["CosineSimilarity", "DotProductSimilarity"])
def test_histogram(kwargs, rtol, distance):
    x, y = _batch()
    build = dict(kwargs, distance=(distance, {}))
    _compare("HistogramLoss", x, y, rtol=rtol, atol=1e-7 if rtol > 1e-6 else 1e-10, build=build)


@pytest.mark.parametrize("miner", ["TripletMarginMiner", "MultiSimilarityMiner", "PairMarginMiner"])
def test_histogram_with_miner(miner):
    x, y = _batch(n=32)
    t = _miner_tuple(miner, x, y)
    assert len(t[0]) > 0
    _compare("HistogramLoss", x, y, t, build={"n_bins": 16})
    _compare("HistogramLoss", x, indices_tuple=t, build={"n_bins": 16})


def test_histogram_zero_and_regularizer():
    x = torch.randn(6, 4, dtype=torch.float64)
    _compare("HistogramLoss", x, torch.arange(6), build={"n_bins": 8})
    x, y = _batch()
    _compare("HistogramLoss", x, y, build={"n_bins": 8, "regularizer": True})


# ------------------------------------------------------------------------------------ PNP
@pytest.mark.parametrize("variant", ["O", "Ds", "Dq", "Iu", "Ib"])
@pytest.mark.parametrize("params", [{}, {"b": 3.0, "alpha": 0.6, "anneal": 0.1}])
def test_pnp(variant, params):
    x, y = _batch()
    _compare("PNPLoss", x, y, build=dict(params, variant=variant))


def test_pnp_regularizer_and_singletons():
    x, y = _batch()
    _compare("PNPLoss", x, y, build={"regularizer": True, "variant": "Ds"})
    _compare("PNPLoss", x, torch.arange(len(y)))


# ------------------------------------------------------------------------------------ Ranked List
@pytest.mark.parametrize(
    "params",
    [
        {"margin": 0.4, "Tn": 1.0},
        {"margin": 0.2, "Tn": 4.0, "Tp": 2.0, "imbalance": 0.3},
        {"margin": 0.6, "Tn": 0.5, "alpha": 1.05, "imbalance": 0.9},
    ],
)
@pytest.mark.parametrize(
    "distance",
    [("LpDistance", {}), ("LpDistance", {"power": 2}), ("CosineSimilarity", {})],
)
@pytest.mark.parametrize("reducer", ["default", "sum"])
def test_ranked_list(params, distance, reducer):
    x, y = _batch()
    build = dict(params, distance=distance, reducer=REDUCERS[reducer])
    _compare("RankedListLoss", x, y, build=build)


def test_ranked_list_regularizer():
    x, y = _batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _compare("RankedListLoss", x, y, build={"margin": 0.3, "Tn": 6.0, "regularizer": True})


# ------------------------------------------------------------------------------------ Manifold
def _manifold_pair(dim, K, **kwargs):
    ours = ManifoldLoss(dim, K=K, **kwargs)
    theirs = pml_losses.ManifoldLoss(dim, K=K, **kwargs)
    with torch.no_grad():
        theirs.proxies.copy_(ours.proxies)
    return ours, theirs


@pytest.mark.parametrize(
    "params",
    [{}, {"lambdaC": 0.0}, {"lambdaC": 3.0, "alpha": 0.5, "margin": 0.05}],
)
def test_manifold(params):
    """PML inverts in float32 even for float64 input; we keep float64, so the comparison allows
    float32-inverse-sized differences."""
    x = torch.randn(20, 6, dtype=torch.float64)
    assignment = torch.randint(0, 5, (20,))
    assignment[:5] = torch.arange(5)
    ours_fn, pml_fn = _manifold_pair(6, 5, **params)
    ours = _run(ours_fn, x, indices_tuple=assignment)
    theirs = _run(pml_fn, x, indices_tuple=assignment)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-4, atol=1e-8)
    # proxies get the same gradient too
    torch.testing.assert_close(ours_fn.proxies.grad, pml_fn.proxies.grad, rtol=1e-4, atol=1e-8)


def test_manifold_float32():
    x = torch.randn(16, 6)
    assignment = torch.arange(16) % 4
    ours_fn, pml_fn = _manifold_pair(6, 4, margin=0.01)
    ours = _run(ours_fn, x, indices_tuple=assignment)
    theirs = _run(pml_fn, x, indices_tuple=assignment)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-3, atol=1e-5)


def test_manifold_lambda_inf_is_context_only():
    """Deliberate deviation: PML returns inf; we return the context loss alone."""
    x = torch.randn(12, 6, dtype=torch.float64)
    assignment = torch.arange(12) % 3
    ours_fn, pml_fn = _manifold_pair(6, 3, lambdaC=math.inf)
    assert math.isinf(pml_fn(x, indices_tuple=assignment).item())
    context_only = ours_fn(x, indices_tuple=assignment)
    # PML with lambdaC=1 is L_int + L_ctx, with lambdaC=0 it is L_int
    _, pml_one = _manifold_pair(6, 3, lambdaC=1.0)
    _, pml_zero = _manifold_pair(6, 3, lambdaC=0.0)
    with torch.no_grad():
        pml_one.proxies.copy_(ours_fn.proxies)
        pml_zero.proxies.copy_(ours_fn.proxies)
    expected = pml_one(x, indices_tuple=assignment) - pml_zero(x, indices_tuple=assignment)
    torch.testing.assert_close(context_only, expected.detach(), rtol=1e-6, atol=1e-9)
