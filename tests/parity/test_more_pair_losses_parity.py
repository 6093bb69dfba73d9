"""Angular, IntraPairVariance, SNR-contrastive, N-pairs, Instance, Margin, TCM and DynamicSoftMargin
losses against PML 2.9.0: values and gradients in float64 (learnable ``beta`` included)."""

from __future__ import annotations

import pytest
import torch

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import losses as pml_losses  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402
from pytorch_metric_learning import reducers as pml_reducers  # noqa: E402

from deepmetric import distances, reducers  # noqa: E402
from deepmetric.losses.angular_loss import AngularLoss  # noqa: E402
from deepmetric.losses.dynamic_soft_margin_loss import (  # noqa: E402
    DynamicSoftMarginLoss,
    find_hard_negatives,
)
from deepmetric.losses.instance_loss import InstanceLoss  # noqa: E402
from deepmetric.losses.intra_pair_variance_loss import IntraPairVarianceLoss  # noqa: E402
from deepmetric.losses.margin_loss import MarginLoss  # noqa: E402
from deepmetric.losses.n_pairs_loss import NPairsLoss  # noqa: E402
from deepmetric.losses.signal_to_noise_ratio_losses import (  # noqa: E402
    SignalToNoiseRatioContrastiveLoss,
)
from deepmetric.losses.tcm_loss import ThresholdConsistentMarginLoss  # noqa: E402

pytestmark = pytest.mark.parity

OURS = {
    "AngularLoss": AngularLoss,
    "IntraPairVarianceLoss": IntraPairVarianceLoss,
    "SignalToNoiseRatioContrastiveLoss": SignalToNoiseRatioContrastiveLoss,
    "NPairsLoss": NPairsLoss,
    "InstanceLoss": InstanceLoss,
    "MarginLoss": MarginLoss,
    "ThresholdConsistentMarginLoss": ThresholdConsistentMarginLoss,
    "DynamicSoftMarginLoss": DynamicSoftMarginLoss,
}


def _pair(name, **kwargs):
    """(ours, theirs) built with the same arguments; string distances/reducers are resolved in
    each library."""

    def build(lib_distances, lib_reducers, cls):
        kw = dict(kwargs)
        if isinstance(kw.get("distance"), tuple):
            d_name, d_kw = kw["distance"]
            kw["distance"] = getattr(lib_distances, d_name)(**d_kw)
        if isinstance(kw.get("reducer"), tuple):
            r_name, r_kw = kw["reducer"]
            kw["reducer"] = getattr(lib_reducers, r_name)(**r_kw)
        return cls(**kw)

    ours = build(distances, reducers, OURS[name])
    theirs = build(pml_distances, pml_reducers, getattr(pml_losses, name))
    return ours, theirs


def _run(loss_fn, x, *args, ref=None, **kwargs):
    e = x.clone().requires_grad_()
    r = None if ref is None else ref.clone().requires_grad_()
    if r is not None:
        kwargs["ref_emb"] = r
    out = loss_fn(e, *args, **kwargs)
    out.backward()
    return out.detach(), e.grad, None if r is None else r.grad


def _assert_same(ours, theirs, rtol=1e-6):
    torch.testing.assert_close(ours[0], theirs[0], rtol=rtol, atol=1e-12)
    torch.testing.assert_close(ours[1], theirs[1], rtol=rtol, atol=1e-10)
    if theirs[2] is not None:
        torch.testing.assert_close(ours[2], theirs[2], rtol=rtol, atol=1e-10)


def _batch(n=24, d=8, classes=4, scale=1.0):
    return torch.randn(n, d, dtype=torch.float64) * scale, torch.randint(0, classes, (n,))


def _ref(m=17, d=8, classes=4):
    return torch.randn(m, d, dtype=torch.float64), torch.randint(0, classes, (m,))


def _miner_tuple(kind, x, y):
    miner = {
        "triplets": lambda: pml_miners.TripletMarginMiner(margin=0.3, type_of_triplets="all"),
        "pairs": lambda: pml_miners.MultiSimilarityMiner(epsilon=0.2),
    }[kind]()
    return miner(x, y)


# ---------------------------------------------------------------------------------- AngularLoss
@pytest.mark.parametrize("alpha", [40, 25])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_angular(alpha, scale):
    x, y = _batch(scale=scale)  # negatives enter un-normalised: the scale matters
    ours, theirs = _pair("AngularLoss", alpha=alpha)
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


@pytest.mark.parametrize("kind", ["triplets", "pairs"])
def test_angular_miner_tuple(kind):
    x, y = _batch()
    t = _miner_tuple(kind, x, y)
    ours, theirs = _pair("AngularLoss")
    _assert_same(_run(ours, x, y, t), _run(theirs, x, y, t))


def test_angular_ref_emb_and_stats():
    x, y = _batch()
    ref, ref_y = _ref()
    ours, theirs = _pair("AngularLoss", collect_stats=True)
    _assert_same(
        _run(ours, x, y, ref=ref, ref_labels=ref_y), _run(theirs, x, y, ref=ref, ref_labels=ref_y)
    )
    _run(ours, x, y)
    _run(theirs, x, y)
    assert float(ours.average_angle) == pytest.approx(float(theirs.average_angle), rel=1e-9)
    assert float(ours.alpha) == float(theirs.alpha)


@pytest.mark.parametrize("reducer", [("SumReducer", {}), ("ThresholdReducer", {"low": 2.0})])
def test_angular_reducers(reducer):
    x, y = _batch()
    ours, theirs = _pair("AngularLoss", reducer=reducer)
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


# ------------------------------------------------------------------------ IntraPairVarianceLoss
IPV_DISTANCES = {
    "cosine": ("CosineSimilarity", {}),
    "lp": ("LpDistance", {}),
    "dot_raw": ("DotProductSimilarity", {"normalize_embeddings": False}),
    "lp_squared": ("LpDistance", {"power": 2}),
}


@pytest.mark.parametrize("distance", sorted(IPV_DISTANCES))
@pytest.mark.parametrize("eps", [(0.01, 0.01), (0.1, 0.3)])
def test_intra_pair_variance(distance, eps):
    x, y = _batch()
    ours, theirs = _pair("IntraPairVarianceLoss", distance=IPV_DISTANCES[distance])
    ours.pos_eps, ours.neg_eps = eps
    theirs.pos_eps, theirs.neg_eps = eps
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


@pytest.mark.parametrize("kind", ["triplets", "pairs"])
def test_intra_pair_variance_tuple_and_ref(kind):
    x, y = _batch()
    t = _miner_tuple(kind, x, y)
    ours, theirs = _pair("IntraPairVarianceLoss")
    _assert_same(_run(ours, x, y, t), _run(theirs, x, y, t))
    _assert_same(_run(ours, x, indices_tuple=t), _run(theirs, x, indices_tuple=t))
    ref, ref_y = _ref()
    _assert_same(
        _run(ours, x, y, ref=ref, ref_labels=ref_y), _run(theirs, x, y, ref=ref, ref_labels=ref_y)
    )


# ---------------------------------------------------------------------------- SNR contrastive
@pytest.mark.parametrize("margins", [(0.0, 1.0), (0.2, 0.8)])
@pytest.mark.parametrize("reducer", [None, ("MeanReducer", {})])
def test_snr_contrastive(margins, reducer):
    x, y = _batch()
    ours, theirs = _pair(
        "SignalToNoiseRatioContrastiveLoss",
        pos_margin=margins[0],
        neg_margin=margins[1],
        **({} if reducer is None else {"reducer": reducer}),
    )
    _assert_same(_run(ours, x, y), _run(theirs, x, y))
    ref, ref_y = _ref()
    _assert_same(
        _run(ours, x, y, ref=ref, ref_labels=ref_y), _run(theirs, x, y, ref=ref, ref_labels=ref_y)
    )
    t = _miner_tuple("pairs", x, y)
    _assert_same(_run(ours, x, indices_tuple=t), _run(theirs, x, indices_tuple=t))


# --------------------------------------------------------------------------------- NPairsLoss
@pytest.mark.parametrize(
    "distance",
    [None, ("LpDistance", {}), ("CosineSimilarity", {}), ("DotProductSimilarity", {})],
)
def test_npairs(distance):
    x, y = _batch(n=32, classes=8)
    ours, theirs = _pair("NPairsLoss", **({} if distance is None else {"distance": distance}))
    _assert_same(_run(ours, x, y), _run(theirs, x, y))
    assert ours.num_pairs == theirs.num_pairs


@pytest.mark.parametrize("kind", ["triplets", "pairs"])
def test_npairs_miner_tuple(kind):
    x, y = _batch(n=32, classes=8)
    t = _miner_tuple(kind, x, y)
    ours, theirs = _pair("NPairsLoss")
    _assert_same(_run(ours, x, y, t), _run(theirs, x, y, t))


# ------------------------------------------------------------------------------- InstanceLoss
@pytest.mark.parametrize("gamma", [64, 8])
@pytest.mark.parametrize("labels", ["random", "sparse"])
def test_instance(gamma, labels):
    x, y = _batch(n=20, classes=6)
    if labels == "sparse":  # label values far apart: the target is the label's rank
        y = y * 7 + 3
    ours, theirs = _pair("InstanceLoss", gamma=gamma)
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


# --------------------------------------------------------------------------------- MarginLoss
MARGIN_REDUCERS = {
    "default": None,
    "divisor": ("DivisorReducer", {}),
    "mean": ("MeanReducer", {}),
    "sum": ("SumReducer", {}),
    "avg_nonzero": ("AvgNonZeroReducer", {}),
    "threshold": ("ThresholdReducer", {"low": 0.05, "high": 0.5}),
}
MARGIN_PARAMS = {
    "default": {},
    "custom": {"margin": 0.3, "beta": 0.9},
    "learn": {"learn_beta": True, "nu": 0.1},
    "per_class": {"learn_beta": True, "nu": 0.1, "num_classes": 4},
    "per_class_fixed": {"num_classes": 4, "beta": 1.0},
}


def _margin_pair(params, reducer=None, distance=None, beta_dtype=torch.float64):
    kw = dict(MARGIN_PARAMS[params])
    if reducer is not None:
        kw["reducer"] = reducer
    if distance is not None:
        kw["distance"] = distance
    ours, theirs = _pair("MarginLoss", **kw)
    beta = torch.linspace(0.8, 1.3, len(theirs.beta), dtype=beta_dtype)
    if kw.get("learn_beta"):
        ours.beta = torch.nn.Parameter(beta.clone())
        theirs.beta = torch.nn.Parameter(beta.clone())
    return ours, theirs


def _assert_beta_grads(ours, theirs, rtol=1e-6):
    if theirs.learn_beta:
        torch.testing.assert_close(ours.beta.grad, theirs.beta.grad, rtol=rtol, atol=1e-10)


@pytest.mark.parametrize("params", sorted(MARGIN_PARAMS))
@pytest.mark.parametrize("reducer", sorted(MARGIN_REDUCERS))
@pytest.mark.parametrize("distance", [None, ("CosineSimilarity", {})])
def test_margin_all_triplets(params, reducer, distance):
    x, y = _batch()
    ours, theirs = _margin_pair(params, MARGIN_REDUCERS[reducer], distance)
    _assert_same(_run(ours, x, y), _run(theirs, x, y))
    _assert_beta_grads(ours, theirs)


def test_margin_float32_beta_gradients():
    """A float32 beta with float64 embeddings: PML accumulates the per-class gradient in float32
    triplet by triplet, we in float64; they agree to float32 precision."""
    x, y = _batch()
    ours, theirs = _margin_pair("per_class", beta_dtype=torch.float32)
    _assert_same(_run(ours, x, y), _run(theirs, x, y))
    _assert_beta_grads(ours, theirs, rtol=1e-4)


@pytest.mark.parametrize("params", ["default", "learn", "per_class"])
@pytest.mark.parametrize("kind", ["triplets", "pairs"])
def test_margin_miner_tuple(params, kind):
    x, y = _batch()
    t = _miner_tuple(kind, x, y)
    ours, theirs = _margin_pair(params)
    _assert_same(_run(ours, x, y, t), _run(theirs, x, y, t))
    _assert_beta_grads(ours, theirs)


@pytest.mark.parametrize("params", ["default", "per_class"])
@pytest.mark.parametrize("reducer", ["default", "mean"])
def test_margin_ref_emb(params, reducer):
    x, y = _batch()
    ref, ref_y = _ref()
    ours, theirs = _margin_pair(params, MARGIN_REDUCERS[reducer])
    _assert_same(
        _run(ours, x, y, ref=ref, ref_labels=ref_y), _run(theirs, x, y, ref=ref, ref_labels=ref_y)
    )
    _assert_beta_grads(ours, theirs)


@pytest.mark.parametrize("name", ["MarginLoss", "DynamicSoftMarginLoss"])
def test_same_length_ref_emb_without_ref_labels(name):
    """PML then reuses the query labels for the reference rows (self pairs excluded)."""
    x, y = _batch()
    ref = torch.randn_like(x)
    ours, theirs = (
        _margin_pair("default") if name == "MarginLoss" else (DynamicSoftMarginLoss(), _pml_dsm())
    )
    _assert_same(_run(ours, x, y, ref=ref), _run(theirs, x, y, ref=ref))


def test_margin_divisor_stat():
    x, y = _batch()
    ours, theirs = _margin_pair("default", ("DivisorReducer", {"collect_stats": True}))
    _run(ours, x, y)
    _run(theirs, x, y)
    ours_div = ours.reducer.reducers["margin_loss"].divisor
    assert int(ours_div) == int(theirs.reducer.reducers["margin_loss"].divisor)


# ---------------------------------------------------------------------------------------- TCM
@pytest.mark.parametrize(
    "params",
    [{}, {"lambda_plus": 0.5, "lambda_minus": 2.0, "margin_plus": 0.2, "margin_minus": -0.1}],
)
def test_tcm(params):
    x, y = _batch()
    ours, theirs = _pair("ThresholdConsistentMarginLoss", **params)
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


@pytest.mark.parametrize("kind", ["triplets", "pairs"])
def test_tcm_miner_tuple(kind):
    x, y = _batch()
    t = _miner_tuple(kind, x, y)
    ours, theirs = _pair("ThresholdConsistentMarginLoss", margin_plus=0.3, margin_minus=0.0)
    _assert_same(_run(ours, x, y, t), _run(theirs, x, y, t))
    _assert_same(_run(ours, x, indices_tuple=t), _run(theirs, x, indices_tuple=t))


def test_tcm_copy_of_the_batch_as_ref_emb():
    """PML ignores ref_emb; with a copy of the batch (and of the labels) both agree."""
    x, y = _batch()
    ours, theirs = _pair("ThresholdConsistentMarginLoss", margin_plus=0.3, margin_minus=0.0)
    kw = dict(ref=x.clone(), ref_labels=y.clone())
    o, t = _run(ours, x, y, **kw), _run(theirs, x, y, **kw)
    torch.testing.assert_close(o[0], t[0], rtol=1e-6, atol=1e-12)
    # PML differentiates the query copy only; we split the gradient between query and reference
    torch.testing.assert_close(o[1] + o[2], t[1], rtol=1e-6, atol=1e-10)


# ---------------------------------------------------------------------- DynamicSoftMarginLoss
def _pml_dsm(**kwargs):
    """PML's loss with its histogram update fed a detached input: PML differentiates through the
    histogram (and then fails on the next backward); we hold the CDF constant."""
    loss = pml_losses.DynamicSoftMarginLoss(**kwargs)
    update = type(loss).update_histogram
    loss.update_histogram = lambda data: update(loss, data.detach())
    return loss


@pytest.mark.parametrize(
    "params", [{}, {"min_val": -3.0, "num_bins": 7, "momentum": 0.3}, {"num_bins": 40}]
)
def test_dynamic_soft_margin_three_steps(params):
    ours, theirs = DynamicSoftMarginLoss(**params), _pml_dsm(**params)
    for _ in range(3):  # the running histogram carries over
        x, y = _batch()
        _assert_same(_run(ours, x, y), _run(theirs, x, y))
        torch.testing.assert_close(ours.hist_, theirs.hist_, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["triplets", "pairs"])
def test_dynamic_soft_margin_tuple_and_ref(kind):
    ours, theirs = DynamicSoftMarginLoss(), _pml_dsm()
    x, y = _batch()
    t = _miner_tuple(kind, x, y)
    _assert_same(_run(ours, x, y, t), _run(theirs, x, y, t))
    ref, ref_y = _ref()
    _assert_same(
        _run(ours, x, y, ref=ref, ref_labels=ref_y), _run(theirs, x, y, ref=ref, ref_labels=ref_y)
    )


@pytest.mark.parametrize("shape", [(12, 12), (9, 6), (6, 9), (2, 1), (1, 3)])
def test_dynamic_soft_margin_without_labels(shape):
    """Row i of the batch matches row i of ref_emb. PML's backward fails here (an in-place fill
    of the distance matrix), so only the values and the histogram are compared."""
    ours, theirs = DynamicSoftMarginLoss(), _pml_dsm()
    for _ in range(2):
        x = torch.randn(shape[0], 8, dtype=torch.float64)
        ref = torch.randn(shape[1], 8, dtype=torch.float64)
        value = ours(x, ref_emb=ref)
        with torch.no_grad():
            expected = theirs(x, ref_emb=ref)
        torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(ours.hist_, theirs.hist_, rtol=1e-9, atol=1e-12)


def test_find_hard_negatives():
    from pytorch_metric_learning.losses.dynamic_soft_margin_loss import (
        find_hard_negatives as pml_find_hard_negatives,
    )

    d = torch.rand(9, 9, dtype=torch.float64)
    ours = find_hard_negatives(d)
    theirs = pml_find_hard_negatives(d.clone())
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])
