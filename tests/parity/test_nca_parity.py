"""NCALoss and ProxyNCALoss against PML 2.9.0: values and gradients (embeddings and proxies) in
float64 (rel 1e-6)."""

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
from deepmetric.losses.nca_loss import NCALoss  # noqa: E402
from deepmetric.losses.proxy_nca_loss import ProxyNCALoss  # noqa: E402

pytestmark = pytest.mark.parity

DISTANCES = {
    "default": None,
    "lp": lambda lib: lib.LpDistance(),
    "lp_raw": lambda lib: lib.LpDistance(normalize_embeddings=False, power=2),
    "cosine": lambda lib: lib.CosineSimilarity(),
    "dot_raw": lambda lib: lib.DotProductSimilarity(normalize_embeddings=False),
}


def _kw(distance, reducer, lib_d, lib_r, **kwargs):
    if DISTANCES[distance] is not None:
        kwargs["distance"] = DISTANCES[distance](lib_d)
    if reducer is not None:
        kwargs["reducer"] = getattr(lib_r, reducer)()
    return kwargs


def _batch(n=24, d=8, classes=4):
    return torch.randn(n, d, dtype=torch.float64), torch.randint(0, classes, (n,))


def _run(loss_fn, x, *args, **kwargs):
    e = x.clone().requires_grad_()
    ref = kwargs.get("ref_emb")
    if ref is not None:
        kwargs["ref_emb"] = ref = ref.clone().requires_grad_()
    out = loss_fn(e, *args, **kwargs)
    out.backward()
    grads = [e.grad, None if ref is None else ref.grad]
    proxies = getattr(loss_fn, "proxies", None)
    grads.append(None if proxies is None else proxies.grad)
    return out.detach(), *grads


def _assert_same(ours, theirs):
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-6, atol=1e-12)
    for a, b in zip(ours[1:], theirs[1:], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-10)


# ------------------------------------------------------------------ NCALoss
@pytest.mark.parametrize("distance", sorted(DISTANCES))
@pytest.mark.parametrize("scale", [1, 3.5])
@pytest.mark.parametrize("reducer", [None, "SumReducer"])
def test_nca(distance, scale, reducer):
    x, y = _batch()
    ours = NCALoss(**_kw(distance, reducer, distances, reducers, softmax_scale=scale))
    theirs = pml_losses.NCALoss(
        **_kw(distance, reducer, pml_distances, pml_reducers, softmax_scale=scale)
    )
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


@pytest.mark.parametrize("miner", ["TripletMarginMiner", "MultiSimilarityMiner", "BatchHardMiner"])
@pytest.mark.parametrize("with_ref", [False, True])
def test_nca_with_miner(miner, with_ref):
    x, y = _batch(n=32)
    kwargs = {}
    if with_ref:
        ref, ref_y = _batch(n=20)
        kwargs = {"ref_emb": ref, "ref_labels": ref_y}
        t = getattr(pml_miners, miner)()(x, y, ref, ref_y)
    else:
        t = getattr(pml_miners, miner)()(x, y)
    _assert_same(_run(NCALoss(), x, y, t, **kwargs), _run(pml_losses.NCALoss(), x, y, t, **kwargs))


@pytest.mark.parametrize("distance", ["default", "cosine"])
def test_nca_ref_emb(distance):
    x, y = _batch()
    ref, ref_y = _batch(n=17)
    ours = NCALoss(**_kw(distance, None, distances, reducers))
    theirs = pml_losses.NCALoss(**_kw(distance, None, pml_distances, pml_reducers))
    kwargs = {"ref_emb": ref, "ref_labels": ref_y}
    _assert_same(_run(ours, x, y, **kwargs), _run(theirs, x, y, **kwargs))


@pytest.mark.parametrize("case", ["single", "one_class", "some_alone"])
def test_nca_degenerate(case):
    y = {"single": [3], "one_class": [1] * 6, "some_alone": [0, 0, 1, 2, 2, 5]}[case]
    y = torch.tensor(y)
    x, _ = _batch(n=len(y))
    _assert_same(_run(NCALoss(), x, y), _run(pml_losses.NCALoss(), x, y))


def test_nca_loss_dict():
    x = torch.randn(10, 8, dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 2, 2, 3, 3, 3, 4, 0])
    a = NCALoss(reducer=reducers.DoNothingReducer())(x, y)["loss"]
    b = pml_losses.NCALoss(reducer=pml_reducers.DoNothingReducer())(x, y)["loss"]
    assert a["reduction_type"] == b["reduction_type"] == "element"
    assert torch.equal(a["indices"], b["indices"])
    torch.testing.assert_close(a["losses"], b["losses"], rtol=1e-6, atol=1e-12)


def test_nca_underflow_deviation():
    """Intentional deviation: PML drops a row whose same-label softmax underflows to 0; we keep it
    with its exact loss."""
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.05], [0.99, 0.1], [-0.99, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    a = NCALoss(softmax_scale=100.0, reducer=reducers.DoNothingReducer())(x, y)["loss"]
    b = pml_losses.NCALoss(softmax_scale=100.0, reducer=pml_reducers.DoNothingReducer())(x, y)
    assert len(b["loss"]["indices"]) < 4 and a["indices"].tolist() == [0, 1, 2, 3]


# ------------------------------------------------------------------ ProxyNCALoss
def _proxy_pair(num_classes=5, d=8, distance="default", reducer=None, **kwargs):
    ours = ProxyNCALoss(
        num_classes, d, **_kw(distance, reducer, distances, reducers, **kwargs)
    ).double()
    theirs_kwargs = {k: v for k, v in kwargs.items() if k != "weight_regularizer"}
    if "weight_regularizer" in kwargs:
        theirs_kwargs["weight_regularizer"] = pml_regs.LpRegularizer()
    theirs = pml_losses.ProxyNCALoss(
        num_classes, d, **_kw(distance, reducer, pml_distances, pml_reducers, **theirs_kwargs)
    )
    with torch.no_grad():  # same proxies in both
        theirs.proxies.data = ours.proxies.detach().clone()
    return ours, theirs


@pytest.mark.parametrize("distance", sorted(DISTANCES))
@pytest.mark.parametrize("scale", [1, 3.5])
def test_proxy_nca(distance, scale):
    x, y = _batch(classes=5)
    ours, theirs = _proxy_pair(distance=distance, softmax_scale=scale)
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


@pytest.mark.parametrize("miner", ["TripletMarginMiner", "MultiSimilarityMiner", "PairMarginMiner"])
def test_proxy_nca_with_miner(miner):
    x, y = _batch(n=32, classes=5)
    t = getattr(pml_miners, miner)()(x, y)
    ours, theirs = _proxy_pair()
    _assert_same(_run(ours, x, y, t), _run(theirs, x, y, t))


@pytest.mark.parametrize("reducer", [None, "SumReducer"])
def test_proxy_nca_weight_regularizer(reducer):
    x, y = _batch(classes=5)
    ours, theirs = _proxy_pair(
        reducer=reducer, weight_regularizer=regularizers.LpRegularizer(), weight_reg_weight=0.3
    )
    assert type(ours.reducer).__name__ == type(theirs.reducer).__name__ == "MultipleReducers"
    _assert_same(_run(ours, x, y), _run(theirs, x, y))


def test_proxy_nca_single_sample_and_get_logits():
    x, y = _batch(n=1, classes=5)
    ours, theirs = _proxy_pair()
    _assert_same(_run(ours, x, y), _run(theirs, x, y))
    x, _ = _batch()
    torch.testing.assert_close(ours.get_logits(x), theirs.get_logits(x))


def test_proxy_nca_recordables():
    ours, theirs = _proxy_pair(softmax_scale=2.0)
    assert ours._record_these == theirs._record_these
    for attr in ours._record_these:
        assert getattr(ours, attr) == getattr(theirs, attr)
    assert type(ours.distance).__name__ == type(theirs.distance).__name__
    assert ours.distance.power == theirs.distance.power == 2
