"""Samplers against PML 2.9.0: lengths, attributes and per-batch class structure.

The index sequences differ (PML draws from NumPy's global RNG, deepmetric from a
``torch.Generator``), so the tests compare structure, not values: a structure function maps an
output to what must agree (chunk lengths, classes per chunk, samples per class, which runs are
distinct), and both libraries' outputs must map to the same thing.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import miners as pml_miners  # noqa: E402
from pytorch_metric_learning import samplers as pml_samplers  # noqa: E402
from pytorch_metric_learning.utils import common_functions as c_f  # noqa: E402

from deepmetric.samplers.distributed_m_per_class_sampler import (  # noqa: E402
    DistributedMPerClassSampler,
)
from deepmetric.samplers.fixed_set_of_triplets import FixedSetOfTriplets  # noqa: E402
from deepmetric.samplers.hierarchical_sampler import HierarchicalSampler  # noqa: E402
from deepmetric.samplers.m_per_class_batch_sampler import MPerClassBatchSampler  # noqa: E402
from deepmetric.samplers.m_per_class_sampler import MPerClassSampler  # noqa: E402
from deepmetric.samplers.tuples_to_weights_sampler import TuplesToWeightsSampler  # noqa: E402

pytestmark = pytest.mark.parity


@pytest.fixture(autouse=True)
def _pml_rng(monkeypatch):
    monkeypatch.setattr(c_f, "NUMPY_RANDOM", np.random.RandomState(0))


def _labels(sizes, seed=1):
    lab = np.array([c for c, s in enumerate(sizes) for _ in range(s)])
    return lab[np.random.default_rng(seed).permutation(len(lab))]


LABEL_SETS = {
    "balanced": [6] * 12,
    "mixed": [5, 3, 8, 1, 6, 4, 7, 2, 5, 9],
    "large": [40, 2, 17, 3, 25, 9, 1, 11, 6, 4],
}


def _chunk_structure(chunk, labels, m):
    """Classes and sample counts of a chunk, runs of m: (class-count multiset, per-run facts)."""
    sizes = Counter(labels.tolist())
    runs = []
    for i in range(0, len(chunk), m):
        run = [int(j) for j in chunk[i : i + m]]
        classes = {int(labels[j]) for j in run}
        homogeneous = len(classes) == 1
        c = classes.pop()
        runs.append((homogeneous, len(set(run)) == m if sizes[c] >= m else True))
    counts = sorted(Counter(int(labels[j]) for j in chunk).values())
    return len(chunk), tuple(counts), len({int(labels[j]) for j in chunk}), tuple(runs)


def _flat_structure(indices, labels, m, chunk):
    indices = list(indices)
    return len(indices), [
        _chunk_structure(indices[i : i + chunk], labels, m) for i in range(0, len(indices), chunk)
    ]


# ---------------------------------------------------------------- MPerClassSampler
SETTINGS = [
    (2, None, 10000),
    (4, None, 100),
    (3, None, 30),
    (2, 8, 1001),
    (4, 40, 40),
    (1, 6, 99),
    (5, 20, 1000),
]


@pytest.mark.parametrize("label_set", sorted(LABEL_SETS))
@pytest.mark.parametrize("m,batch_size,length", SETTINGS)
def test_m_per_class_sampler(label_set, m, batch_size, length):
    labels = _labels(LABEL_SETS[label_set])
    ours = MPerClassSampler(labels, m, batch_size, length, seed=0)
    ref = pml_samplers.MPerClassSampler(labels, m, batch_size, length)
    assert len(ours) == len(ref)
    assert (ours.list_size, ours.length_of_single_pass) == (
        ref.list_size,
        ref.length_of_single_pass,
    )
    assert ours.calculate_num_iters() == ref.calculate_num_iters()
    assert sorted(ours.labels) == sorted(int(v) for v in ref.labels)
    for lab, idx in ref.labels_to_indices.items():
        assert sorted(ours.labels_to_indices[int(lab)].tolist()) == sorted(idx.tolist())
    chunk = batch_size or m * len(ours.labels)
    ref_out = list(ref)
    if len(ref_out) > len(ref):  # PML's short-epoch quirk, see the next test
        assert batch_size is None and len(ref_out) == chunk > length
        ref_out = ref_out[: len(ref)]
    assert _flat_structure(ours, labels, m, chunk) == _flat_structure(ref_out, labels, m, chunk)


def test_m_per_class_sampler_short_epoch_deviation():
    """m * num_classes > length_before_new_iter: both report len == length; PML then yields a
    whole pass (more than its len), deepmetric yields exactly len (documented deviation)."""
    labels = _labels(LABEL_SETS["balanced"])  # 12 classes, m=4: a pass is 48 indices
    ours = MPerClassSampler(labels, 4, None, 30, seed=0)
    ref = pml_samplers.MPerClassSampler(labels, 4, None, 30)
    assert len(ours) == len(ref) == 30
    assert len(list(ref)) == 48
    out = list(ours)
    assert len(out) == 30
    # the same structure over the first 30 indices: runs of 4 from one class, distinct classes
    assert _chunk_structure(out, labels, 4) == _chunk_structure(list(ref)[:30], labels, 4)


@pytest.mark.parametrize("m,batch_size,length", [s for s in SETTINGS if s[1] is not None])
def test_batch_samplers_match_pml_chunks(m, batch_size, length):
    labels = _labels(LABEL_SETS["mixed"])
    ref = list(pml_samplers.MPerClassSampler(labels, m, batch_size, length))
    ref_batches = [ref[i : i + batch_size] for i in range(0, len(ref), batch_size)]
    ref_struct = sorted(_chunk_structure(b, labels, m) for b in ref_batches)
    for sampler in (
        MPerClassBatchSampler(labels, m, batch_size, length, seed=0),
        DistributedMPerClassSampler(labels, m, batch_size, length, num_replicas=1, rank=0),
    ):
        batches = list(sampler)
        assert len(sampler) == len(batches) == len(ref_batches)
        assert sorted(_chunk_structure(b, labels, m) for b in batches) == ref_struct


@pytest.mark.parametrize(
    "m,batch_size,length",
    [(3, 8, 100), (2, 22, 100), (2, 8, 4)],
    ids=["indivisible", "few", "short"],
)
def test_m_per_class_errors_where_pml_asserts(m, batch_size, length):
    labels = _labels(LABEL_SETS["mixed"])
    with pytest.raises(AssertionError):
        pml_samplers.MPerClassSampler(labels, m, batch_size, length)
    with pytest.raises(ValueError, match="MPerClassSampler: expected"):
        MPerClassSampler(labels, m, batch_size, length)


# ---------------------------------------------------------------- HierarchicalSampler
def _hier_labels():
    rng = np.random.default_rng(0)
    rows = [
        (sup * 10 + c, sup)
        for sup in range(4)
        for c in range(3 + sup)
        for _ in range(rng.integers(1, 7))
    ]
    return np.array(rows)[rng.permutation(len(rows))]


def _batch_structure(batch, labels, spc):
    """Per batch: super-classes present and, per super-class, its class counts; for "all",
    whether each class is complete and the sub-batch is greedy-maximal."""
    by_super: dict[int, list[int]] = {}
    for i in batch:
        by_super.setdefault(int(labels[i, 1]), []).append(int(i))
    out = []
    for sup in sorted(by_super):
        members = by_super[sup]
        counts = Counter(int(labels[i, 0]) for i in members)
        if spc == "all":
            sizes = {c: int((labels[:, 0] == c).sum()) for c in set(labels[labels[:, 1] == sup, 0])}
            complete = all(counts[c] == sizes[c] for c in counts)
            out.append((sup, complete, len(set(members)) == len(members)))
        else:
            out.append((sup, tuple(sorted(counts.values())), len(counts)))
    return tuple(out)


@pytest.mark.parametrize("spc", [1, 2, 4, "all"])
@pytest.mark.parametrize("supers,bpst", [(2, 4), (1, 2), (3, 3)])
def test_hierarchical_sampler(spc, supers, bpst):
    labels = _hier_labels()
    batch_size = 8 * supers
    ours = HierarchicalSampler(labels, batch_size, spc, bpst, supers, seed=0)
    ref = pml_samplers.HierarchicalSampler(labels, batch_size, spc, bpst, supers)
    assert len(ours) == len(ref)
    for name in ("batch_size", "batches_per_super_tuple", "samples_per_class"):
        assert getattr(ours, name) == getattr(ref, name)
    assert (ours.super_classes_per_batch, ours.sub_batch_len) == (
        ref.super_classes_per_batch,
        ref.sub_batch_len,
    )
    assert {frozenset(map(int, p)) for p in ours.super_pairs} == {
        frozenset(map(int, p)) for p in ref.super_pairs
    }
    assert {
        int(s): {int(c): sorted(map(int, v)) for c, v in d.items()}
        for s, d in ref.super_image_lists.items()
    } == {s: {c: sorted(v) for c, v in d.items()} for s, d in ours.super_image_lists.items()}
    ours_b, ref_b = list(ours), list(ref)
    assert len(ours_b) == len(ref_b) == len(ours)
    if spc != "all":  # lengths and class counts are determined by the settings
        assert sorted(map(len, ours_b)) == sorted(map(len, ref_b))
        assert Counter(_batch_structure(b, labels, spc) for b in ours_b) == Counter(
            _batch_structure(b, labels, spc) for b in ref_b
        )
    else:  # random lengths: whole classes, no repeats, the same super-classes per batch
        for batches in (ours_b, ref_b):
            facts = [_batch_structure(b, labels, spc) for b in batches]
            assert all(len(f) == supers for f in facts)
            assert {x[1:] for f in facts for x in f} == {(True, True)}


@pytest.mark.parametrize(
    "kwargs",
    [{"batch_size": 15, "samples_per_class": 4}, {"batch_size": 16, "samples_per_class": 3}],
)
def test_hierarchical_errors_where_pml_asserts(kwargs):
    labels = _hier_labels()
    with pytest.raises(AssertionError):
        pml_samplers.HierarchicalSampler(labels, **kwargs)
    with pytest.raises(ValueError, match="HierarchicalSampler: expected"):
        HierarchicalSampler(labels, **kwargs)


# ---------------------------------------------------------------- FixedSetOfTriplets
def _triplet_facts(rows, labels):
    sizes = Counter(labels.tolist())
    facts = set()
    for a, p, n in rows:
        a, p, n = int(a), int(p), int(n)
        facts.add((labels[a] == labels[p], labels[a] != labels[n], a == p, sizes[labels[a]] == 1))
    return facts


def test_fixed_set_of_triplets():
    labels = _labels(LABEL_SETS["mixed"])
    ours = FixedSetOfTriplets(labels, 300, seed=0)
    ref = pml_samplers.FixedSetOfTriplets(labels, 300)
    assert len(ours) == len(ref) == 900
    assert tuple(ours.fixed_set_of_triplets.shape) == ref.fixed_set_of_triplets.shape
    assert ours.num_triplets == ref.num_triplets
    ours_rows, ref_rows = ours.fixed_set_of_triplets.tolist(), ref.fixed_set_of_triplets.tolist()
    # valid triplets; anchor == positive exactly for one-sample classes, in both
    assert _triplet_facts(ours_rows, labels) == _triplet_facts(ref_rows, labels)
    out, ref_out = list(ours), list(ref)
    assert len(out) == len(ref_out)
    assert sorted(zip(out[0::3], out[1::3], out[2::3], strict=True)) == sorted(
        map(tuple, ours_rows)
    )
    assert sorted(zip(ref_out[0::3], ref_out[1::3], ref_out[2::3], strict=True)) == sorted(
        map(tuple, ref_rows)
    )


# ---------------------------------------------------------------- TuplesToWeightsSampler
@pytest.mark.parametrize("normalize", [True, False])
def test_tuples_to_weights_sampler_weights(normalize):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 5, generator=g)
    y = torch.arange(30) % 4
    ds = TensorDataset(x, y)
    model = torch.nn.Linear(5, 4)
    miner = pml_miners.TripletMarginMiner(margin=0.3)
    kw = {"batch_size": 8, "dataloader_num_workers": 0, "data_device": "cpu"}
    kw["normalize_embeddings"] = normalize
    ours = TuplesToWeightsSampler(model, miner, ds, seed=0, **kw)
    ref = pml_samplers.TuplesToWeightsSampler(model, miner, ds, **kw)
    assert len(ours) == len(ref) == 30
    out, ref_out = list(ours), list(ref)
    assert len(out) == len(ref_out)
    torch.testing.assert_close(ours.weights, ref.weights.float(), rtol=1e-6, atol=1e-7)
    # draws land only where the weight is positive, in both
    assert all(ours.weights[i] > 0 for i in out) and all(ref.weights[i] > 0 for i in ref_out)


def test_tuples_to_weights_sampler_subset():
    x = torch.randn(40, 5)
    y = torch.arange(40) % 5
    ds = TensorDataset(x, y)
    model = torch.nn.Identity()
    miner = pml_miners.TripletMarginMiner(margin=10.0)  # every triplet
    kw = {"dataloader_num_workers": 0, "data_device": "cpu"}
    ours = TuplesToWeightsSampler(model, miner, ds, 15, seed=0, **kw)
    ref = pml_samplers.TuplesToWeightsSampler(model, miner, ds, 15, **kw)
    assert len(ours) == len(ref) == 15
    assert len(list(ours)) == len(list(ref)) == 15
    for w in (ours.weights, ref.weights):
        assert w.shape == (40,) and int((w > 0).sum()) <= 15 and float(w.max()) == 1.0


def test_pml_samplers_all_have_a_counterpart():
    names = {n for n in dir(pml_samplers) if n[0].isupper()}
    ours = {
        "FixedSetOfTriplets",
        "HierarchicalSampler",
        "MPerClassSampler",
        "TuplesToWeightsSampler",
    }
    assert names == ours
