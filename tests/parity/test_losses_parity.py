"""ContrastiveLoss and TripletMarginLoss against PML 2.9.0: values and gradients (float64)."""

from __future__ import annotations

import pytest
import torch

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import losses as pml_losses  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402
from pytorch_metric_learning import reducers as pml_reducers  # noqa: E402
from pytorch_metric_learning import regularizers as pml_regs  # noqa: E402

from deepmetric import distances, losses, reducers, regularizers  # noqa: E402

pytestmark = pytest.mark.parity

DISTANCES = {
    "lp": ({}, {}),
    "lp_squared": ({"power": 2}, {"power": 2}),
    "lp_raw": ({"normalize_embeddings": False}, {"normalize_embeddings": False}),
    "cosine": "CosineSimilarity",
    "dot_raw": "DotProductSimilarity",
}


def _distance(name: str, lib):
    spec = DISTANCES[name]
    if spec == "CosineSimilarity":
        return lib.CosineSimilarity()
    if spec == "DotProductSimilarity":
        return lib.DotProductSimilarity(normalize_embeddings=False)
    return lib.LpDistance(**spec[0])


REDUCERS = {
    "default": None,
    "mean": "MeanReducer",
    "sum": "SumReducer",
    "avg_nonzero": "AvgNonZeroReducer",
    "threshold_low0": ("ThresholdReducer", {"low": 0}),
    "threshold_band": ("ThresholdReducer", {"low": 0.01, "high": 0.5}),
    "per_anchor": "PerAnchorReducer",
    "class_weighted": ("ClassWeightedReducer", {"weights": torch.tensor([1.0, 2.0, 0.5, 3.0])}),
}


def _reducer(name: str, lib):
    spec = REDUCERS[name]
    if spec is None:
        return None
    cls, kwargs = (spec, {}) if isinstance(spec, str) else spec
    return getattr(lib, cls)(**kwargs)


def _run(loss_fn, x, *args, **kwargs):
    e = x.clone().requires_grad_()
    kwargs = {k: (e if v is x else v) for k, v in kwargs.items()}
    out = loss_fn(e, *args, **kwargs)
    out.backward()
    return out.detach(), e.grad


def _assert_same(ours, theirs):
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-6, atol=1e-10)


def _batch(n=24, d=8, classes=4):
    return torch.randn(n, d, dtype=torch.float64), torch.randint(0, classes, (n,))


@pytest.mark.parametrize("distance", sorted(DISTANCES))
@pytest.mark.parametrize("reducer", ["default", "mean", "per_anchor", "threshold_band"])
@pytest.mark.parametrize("margins", [(0.0, 1.0), (0.1, 0.7)])
def test_contrastive(distance, reducer, margins):
    if distance in ("cosine", "dot_raw"):
        margins = (1 - margins[0], margins[1] - 0.5)
    x, y = _batch()
    kw = lambda lib_d, lib_r: dict(
        distance=_distance(distance, lib_d), reducer=_reducer(reducer, lib_r)
    )
    ours = _run(losses.ContrastiveLoss(*margins, **kw(distances, reducers)), x, y)
    theirs = _run(pml_losses.ContrastiveLoss(*margins, **kw(pml_distances, pml_reducers)), x, y)
    _assert_same(ours, theirs)


TRIPLET_REDUCERS = ["default", "mean", "sum", "threshold_low0", "threshold_band", "class_weighted"]


@pytest.mark.parametrize("distance", ["lp", "lp_squared", "cosine"])
@pytest.mark.parametrize("reducer", TRIPLET_REDUCERS)
@pytest.mark.parametrize(
    ("swap", "smooth"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_triplet_all_triplets(distance, reducer, swap, smooth):
    x, y = _batch()
    kw = lambda lib_d, lib_r: dict(
        distance=_distance(distance, lib_d), reducer=_reducer(reducer, lib_r)
    )
    ours = _run(losses.TripletMarginLoss(0.2, swap, smooth, **kw(distances, reducers)), x, y)
    theirs = _run(
        pml_losses.TripletMarginLoss(0.2, swap, smooth, **kw(pml_distances, pml_reducers)), x, y
    )
    _assert_same(ours, theirs)


@pytest.mark.parametrize("loss_name", ["ContrastiveLoss", "TripletMarginLoss"])
def test_with_ref_emb(loss_name):
    x, y = _batch()
    ref, ref_y = _batch(n=17)
    ours = _run(getattr(losses, loss_name)(), x, y, ref_emb=ref, ref_labels=ref_y)
    theirs = _run(getattr(pml_losses, loss_name)(), x, y, ref_emb=ref, ref_labels=ref_y)
    _assert_same(ours, theirs)


@pytest.mark.parametrize("loss_name", ["ContrastiveLoss", "TripletMarginLoss"])
@pytest.mark.parametrize("miner", ["TripletMarginMiner", "MultiSimilarityMiner", "PairMarginMiner"])
def test_with_miner_indices(loss_name, miner):
    x, y = _batch(n=32)
    kwargs = {"margin": 0.3} if miner == "TripletMarginMiner" else {}
    t = getattr(pml_miners, miner)(**kwargs)(x, y)
    ours = _run(getattr(losses, loss_name)(), x, y, t)
    theirs = _run(getattr(pml_losses, loss_name)(), x, y, t)
    _assert_same(ours, theirs)
    # labels are not needed once the tuple is given
    _assert_same(_run(getattr(losses, loss_name)(), x, indices_tuple=t), theirs)


def test_embedding_regularizer_sum():
    x, y = _batch()
    ours = _run(losses.TripletMarginLoss(embedding_regularizer=regularizers.LpRegularizer()), x, y)
    theirs = _run(
        pml_losses.TripletMarginLoss(embedding_regularizer=pml_regs.LpRegularizer()), x, y
    )
    _assert_same(ours, theirs)
