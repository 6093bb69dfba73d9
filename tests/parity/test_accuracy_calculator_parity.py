"""AccuracyCalculator and k-NN against PML 2.9.0 (with faiss) on random clustered data.

The embeddings are rounded to a grid of quarter units so that every squared distance is exact
in float32: faiss' BLAS kernel and torch's GEMM then produce bit-identical distances, exact ties
included, and any difference would come from the ranking or the metric itself. (On unrounded
data two libraries' GEMMs round differently and may swap near-equal neighbours.)
"""

from __future__ import annotations

import itertools
import logging
import math

import pytest
import torch

pml = pytest.importorskip("pytorch_metric_learning")
pytest.importorskip("faiss")
from pytorch_metric_learning.distances import CosineSimilarity as PCos  # noqa: E402
from pytorch_metric_learning.utils import inference as pml_inference  # noqa: E402
from pytorch_metric_learning.utils.accuracy_calculator import (  # noqa: E402
    AccuracyCalculator as PAccuracyCalculator,
)

from deepmetric.distances import CosineSimilarity  # noqa: E402
from deepmetric.inference.custom_knn import CustomKNN  # noqa: E402
from deepmetric.inference.faiss_knn import FaissKNN  # noqa: E402
from deepmetric.inference.torch_knn import TorchKNN  # noqa: E402
from deepmetric.metrics.accuracy_calculator import AccuracyCalculator  # noqa: E402

pytestmark = [pytest.mark.parity, pytest.mark.needs_faiss]


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def clustered(n=150, m=260, classes=6, d=8, seed=0, lone=True):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, d, generator=g) * 1.5
    rl = torch.randint(0, classes, (m,), generator=g)
    ref = torch.round((centers[rl] + torch.randn(m, d, generator=g)) * 4) / 4
    ql = torch.randint(0, classes + int(lone), (n,), generator=g)  # label `classes`: lone
    query = torch.round((centers[ql.clamp(max=classes - 1)] + torch.randn(n, d, generator=g)) * 4)
    return query / 4, ql, ref, rl


def equal(a, b, tol=1e-6):
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(equal(x, y) for x, y in zip(a, b, strict=True))
        )
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def both(**kwargs):
    kwargs.setdefault("device", torch.device("cpu"))
    return PAccuracyCalculator(**kwargs), AccuracyCalculator(**kwargs)


def assert_same(pml_out, ours):
    assert list(pml_out) == list(ours)
    for name, value in pml_out.items():
        assert equal(float(value) if not isinstance(value, list) else value, ours[name]), (
            name,
            value,
            ours[name],
        )


SOURCES = ["reference_is_query", "queries_first_in_reference", "separate_with_lone_queries"]
K_VALUES = [None, "max_bin_count", 5, 1]
MODES = ["mean", "avg_of_avgs", "return_per_class"]


def run(calcs, source, seed=0):
    query, ql, ref, rl = clustered(seed=seed)
    outs = []
    for c in calcs:
        if source == "reference_is_query":
            outs.append(c.get_accuracy(ref, rl))
        elif source == "queries_first_in_reference":
            outs.append(
                c.get_accuracy(query, ql, torch.cat([query, ref]), torch.cat([ql, rl]), True)
            )
        else:
            outs.append(c.get_accuracy(query, ql, ref, rl))
    return outs


@pytest.mark.parametrize(("source", "k", "mode"), list(itertools.product(SOURCES, K_VALUES, MODES)))
def test_knn_metrics(source, k, mode):
    calcs = both(
        exclude=("NMI", "AMI"),
        k=k,
        avg_of_avgs=mode == "avg_of_avgs",
        return_per_class=mode == "return_per_class",
    )
    assert_same(*run(calcs, source, seed=1))


def fixed_clusters(x, n):
    return torch.arange(len(x)) % n


@pytest.mark.parametrize("source", SOURCES)
def test_all_default_metrics_with_a_shared_kmeans(source):
    assert_same(*run(both(kmeans_func=fixed_clusters), source, seed=2))


def test_clustering_on_separated_clusters_with_each_default_kmeans():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 4
    x = torch.eye(8)[labels] * 30 + torch.randn(120, 8, generator=g)
    p = PAccuracyCalculator(include=("NMI", "AMI"), device=torch.device("cpu")).get_accuracy(
        x, labels
    )
    o = AccuracyCalculator(include=("NMI", "AMI"), device="cpu").get_accuracy(x, labels)
    assert p == pytest.approx(o) == {"NMI": 1.0, "AMI": 1.0}


def reflexive(x, y):
    return x[..., 0] == y[..., 0]


def non_reflexive(x, y):
    return (x[..., 0] == y[..., 0]) & (x[..., 1] != y[..., 1])


@pytest.mark.parametrize(
    ("fn", "source", "k", "mode"),
    list(
        itertools.product(
            [reflexive, non_reflexive],
            ["queries_first_in_reference", "separate_with_lone_queries"],
            [None, "max_bin_count", 4],
            MODES,
        )
    ),
)
def test_label_comparison_fn(fn, source, k, mode):
    query, ql, ref, rl = clustered(seed=3)
    g = torch.Generator().manual_seed(1)
    ql = torch.stack([ql, torch.randint(0, 3, (len(ql),), generator=g)], 1)
    rl = torch.stack([rl, torch.randint(0, 3, (len(rl),), generator=g)], 1)
    same = source == "queries_first_in_reference"
    if same:
        ref, rl = torch.cat([query, ref]), torch.cat([ql, rl])
    calcs = both(
        exclude=("NMI", "AMI"),
        k=k,
        label_comparison_fn=fn,
        avg_of_avgs=mode == "avg_of_avgs",
        return_per_class=mode == "return_per_class",
    )
    assert_same(*(c.get_accuracy(query, ql, ref, rl, same) for c in calcs))


def test_faiss_knn_func_in_ours_equals_pml_default():
    p = PAccuracyCalculator(exclude=("NMI", "AMI"), device=torch.device("cpu"))
    o = AccuracyCalculator(exclude=("NMI", "AMI"), device="cpu", knn_func=FaissKNN())
    assert_same(*run([p, o], "separate_with_lone_queries", seed=4))


@pytest.mark.parametrize("same", [False, True])
@pytest.mark.parametrize("k", [1, 6, 259])
def test_knn_funcs_equal_pml_faiss(same, k):
    query, _, ref, _ = clustered(seed=5)
    if same:
        query = ref[:100]
    pd, pi = pml_inference.FaissKNN()(query, k, ref, same)
    for ours in (TorchKNN(), FaissKNN(), TorchKNN(batch_size=9, reference_batch_size=31)):
        od, oi = ours(query, k, ref, same)
        assert torch.equal(oi, pi)
        assert torch.equal(od, pd)


def test_custom_knn_equals_pml_custom_knn():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(120, 16, generator=g)  # continuous data: no exact cosine ties
    pd, pi = pml_inference.CustomKNN(PCos())(x, 7, x, True)
    od, oi = CustomKNN(CosineSimilarity())(x, 7, x, True)
    assert torch.equal(oi, pi)
    assert torch.allclose(od, pd, atol=1e-6)
    pml_out = PAccuracyCalculator(
        exclude=("NMI", "AMI"), device=torch.device("cpu"), knn_func=pml_inference.CustomKNN(PCos())
    ).get_accuracy(x, torch.arange(120) % 5)
    ours = AccuracyCalculator(
        exclude=("NMI", "AMI"), device="cpu", knn_func=CustomKNN(CosineSimilarity())
    ).get_accuracy(x, torch.arange(120) % 5)
    assert_same(pml_out, ours)


def test_documented_deviations():
    p, o = both()
    # metric discovery and defaults are otherwise the same
    assert p.get_curr_metrics() == o.get_curr_metrics()
    assert p.k == o.k is None
    # MRR is a k-NN metric here, so it can be requested alone
    assert "mean_reciprocal_rank" not in p.requires_knn()
    assert "mean_reciprocal_rank" in o.requires_knn()
    out = o.get_accuracy(*clustered(seed=7), include=("mean_reciprocal_rank",))
    assert 0 < out["mean_reciprocal_rank"] <= 1
