"""Samplers: class balance, length semantics, coverage, seeding, distributed splits, errors.

Structural checks are plain loops over the yielded indices, written from each sampler's
definition (not from the vectorised code).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepmetric._registry import SAMPLERS
from deepmetric.functional import sampling as F
from deepmetric.functional.tuples import get_all_triplets_indices
from deepmetric.samplers.distributed_m_per_class_sampler import DistributedMPerClassSampler
from deepmetric.samplers.fixed_set_of_triplets import FixedSetOfTriplets
from deepmetric.samplers.hierarchical_sampler import HierarchicalSampler
from deepmetric.samplers.m_per_class_batch_sampler import MPerClassBatchSampler
from deepmetric.samplers.m_per_class_sampler import MPerClassSampler
from deepmetric.samplers.tuples_to_weights_sampler import TuplesToWeightsSampler
from deepmetric.testers.base_tester import BaseTester


def _labels(sizes):
    """Class ``c`` repeated ``sizes[c]`` times, in a scrambled order (fixed)."""
    lab = [c for c, s in enumerate(sizes) for _ in range(s)]
    perm = np.random.default_rng(1).permutation(len(lab))
    return [lab[i] for i in perm]


SIZES = [5, 3, 8, 1, 6, 4, 7, 2, 5, 9]  # 10 classes, incl. a singleton


def _check_m_per_class_chunk(chunk, labels, m, classes):
    """``chunk`` holds ``classes`` distinct classes, ``m`` contiguous samples each, distinct
    within a class unless the class is smaller than m."""
    assert len(chunk) == classes * m
    seen = set()
    for i in range(classes):
        run = chunk[i * m : (i + 1) * m]
        run_labels = {labels[j] for j in run}
        assert len(run_labels) == 1
        (c,) = run_labels
        assert c not in seen
        seen.add(c)
        size = labels.count(c)
        if size >= m:
            assert len(set(run)) == m
        else:
            assert len(set(run)) <= size


# ---------------------------------------------------------------- MPerClassSampler
def _pml_list_size(num_classes, m, batch_size, length):
    """PML's length rule, from its documentation."""
    if batch_size is None:
        single = m * num_classes
        return length - length % single if single < length else length
    return length - length % batch_size


@pytest.mark.parametrize(
    "m,batch_size,length",
    [
        (2, None, 100000),
        (4, None, 100),  # one pass (40) < length: rounded down to 80
        (4, None, 30),  # one pass (40) > length: kept, truncated
        (3, None, 30),  # exactly one pass
        (2, 8, 1001),
        (4, 40, 40),
        (1, 10, 99),
        (5, 15, 1000),
    ],
)
def test_m_per_class_length_and_balance(m, batch_size, length):
    labels = _labels(SIZES)
    s = MPerClassSampler(labels, m, batch_size, length, seed=0)
    expected = _pml_list_size(len(SIZES), m, batch_size, length)
    assert len(s) == s.list_size == expected
    out = list(s)
    assert len(out) == expected
    assert all(isinstance(i, int) for i in out)
    chunk = batch_size if batch_size is not None else m * len(SIZES)
    per_chunk = chunk // m
    for start in range(0, len(out) - chunk + 1, chunk):
        _check_m_per_class_chunk(out[start : start + chunk], labels, m, per_chunk)
    if batch_size is None and expected < chunk:  # a truncated pass: still m per class in a row
        for start in range(0, expected - m + 1, m):
            assert len({labels[j] for j in out[start : start + m]}) == 1


def test_m_per_class_attributes():
    labels = _labels(SIZES)
    s = MPerClassSampler(torch.tensor(labels), 4, 8, 1000, seed=0)
    assert s.m_per_class == 4 and s.batch_size == 8
    assert s.labels == list(range(10))
    assert s.length_of_single_pass == 40
    assert s.calculate_num_iters() == 125
    for c in range(10):
        assert sorted(s.labels_to_indices[c].tolist()) == [
            i for i, v in enumerate(labels) if v == c
        ]


def test_m_per_class_num_iters_rule():
    labels = _labels(SIZES)
    assert MPerClassSampler(labels, 4, length_before_new_iter=30).calculate_num_iters() == 1
    assert MPerClassSampler(labels, 4, length_before_new_iter=40).calculate_num_iters() == 1
    assert MPerClassSampler(labels, 4, length_before_new_iter=85).calculate_num_iters() == 2


def test_m_per_class_label_inputs_agree():
    labels = _labels(SIZES)
    outs = [
        list(MPerClassSampler(x, 2, 4, 200, seed=3))
        for x in (labels, np.array(labels), torch.tensor(labels), torch.tensor(labels).int())
    ]
    assert all(o == outs[0] for o in outs)


def test_m_per_class_seeding_and_epochs():
    labels = _labels(SIZES)
    a = MPerClassSampler(labels, 2, 4, 200, seed=7)
    b = MPerClassSampler(labels, 2, 4, 200, seed=7)
    first_a, first_b = list(a), list(b)
    assert first_a == first_b
    second_a = list(a)
    assert second_a != first_a  # a new epoch draws anew
    assert list(b) == second_a  # ... reproducibly
    assert list(MPerClassSampler(labels, 2, 4, 200, seed=8)) != first_a
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert list(MPerClassSampler(labels, 2, 4, 200, generator=g1)) == list(
        MPerClassSampler(labels, 2, 4, 200, generator=g2)
    )
    torch.manual_seed(11)
    c = list(MPerClassSampler(labels, 2, 4, 200))
    torch.manual_seed(11)
    assert list(MPerClassSampler(labels, 2, 4, 200)) == c


def test_m_per_class_coverage_across_epochs():
    labels = _labels(SIZES)
    s = MPerClassSampler(labels, 2, 4, 100, seed=0)
    seen = set()
    class_counts = Counter()
    for _ in range(20):
        out = list(s)
        seen.update(out)
        class_counts.update(labels[i] for i in out)
    assert seen == set(range(len(labels)))
    # classes are picked uniformly: 20 epochs * 100 indices / 10 classes = 200 each
    assert all(120 < class_counts[c] < 280 for c in range(10))


def test_m_per_class_with_data_loader():
    labels = _labels(SIZES)
    ds = TensorDataset(torch.arange(len(labels)), torch.tensor(labels))
    s = MPerClassSampler(labels, 2, 6, 60, seed=0)
    batches = list(DataLoader(ds, batch_size=6, sampler=s))
    assert len(batches) == 10
    for _, y in batches:
        assert sorted(Counter(y.tolist()).values()) == [2, 2, 2]


# ---------------------------------------------------------------- errors shared by m-per-class
M_PER_CLASS_CLASSES = [
    lambda labels, m, bs, length, **kw: MPerClassSampler(labels, m, bs, length, **kw),
    lambda labels, m, bs, length, **kw: MPerClassBatchSampler(labels, m, bs, length, **kw),
    lambda labels, m, bs, length, **kw: DistributedMPerClassSampler(
        labels, m, bs, length, num_replicas=1, rank=0, **kw
    ),
]


@pytest.mark.parametrize("make", M_PER_CLASS_CLASSES)
def test_m_per_class_errors(make):
    labels = _labels(SIZES)
    with pytest.raises(ValueError, match=r"`batch_size` divisible by m=3, got batch_size=8\. "):
        make(labels, 3, 8, 100)
    with pytest.raises(ValueError, match="at least batch_size // m = 11 classes"):
        make(labels, 2, 22, 100)
    with pytest.raises(ValueError, match="`m` >= 1, got 0"):
        make(labels, 0, 8, 100)
    with pytest.raises(TypeError, match="`m` to be an int"):
        make(labels, 2.0, 8, 100)
    with pytest.raises(TypeError, match="integer `labels`"):
        make([0.0, 1.0, 1.0], 1, 2, 100)
    with pytest.raises(TypeError, match=r"`labels` as integer class ids .* got list that does not"):
        make(["a", "b"], 1, 2, 100)
    with pytest.raises(ValueError, match=r"`labels` of shape \(N,\)"):
        make(torch.zeros(4, 2, dtype=torch.long), 1, 2, 100)
    with pytest.raises(ValueError, match="non-empty `labels`"):
        make(torch.zeros(0, dtype=torch.long), 1, 2, 100)
    with pytest.raises(ValueError, match=r"`length_before_new_iter` >= "):
        make(labels, 2, 8, 4)


def test_m_per_class_seed_errors():
    labels = _labels(SIZES)
    with pytest.raises(ValueError, match="`seed` or `generator`, not both"):
        MPerClassSampler(labels, 2, seed=1, generator=torch.Generator())
    with pytest.raises(TypeError, match="`seed` to be an int or None"):
        MPerClassSampler(labels, 2, seed="1")
    with pytest.raises(TypeError, match=r"`generator` to be a torch\.Generator"):
        MPerClassSampler(labels, 2, generator=1)
    with pytest.raises(TypeError, match="`batch_size` to be an int"):
        MPerClassSampler(labels, 2, batch_size=True)


@pytest.mark.parametrize("cls", [MPerClassBatchSampler, DistributedMPerClassSampler])
def test_small_class_without_replacement_is_an_error(cls):
    kw = {"num_replicas": 1, "rank": 0} if cls is DistributedMPerClassSampler else {}
    with pytest.raises(
        ValueError,
        match=r"at least m=2 samples \(allow_replacement=False\), "
        r"got 1 smaller class\(es\), e\.g\. label 3 with 1 sample",
    ):
        cls(_labels(SIZES), 2, 4, 100, allow_replacement=False, **kw)


# ---------------------------------------------------------------- MPerClassBatchSampler
@pytest.mark.parametrize("m,batch_size,length", [(2, 8, 1001), (4, 40, 40), (1, 10, 99), (3, 6, 6)])
def test_batch_sampler_length_and_balance(m, batch_size, length):
    labels = _labels(SIZES)
    s = MPerClassBatchSampler(labels, m, batch_size, length, seed=0)
    assert len(s) == length // batch_size
    batches = list(s)
    assert len(batches) == len(s)
    for b in batches:
        assert isinstance(b, list)
        _check_m_per_class_chunk(b, labels, m, batch_size // m)


def test_batch_sampler_without_replacement_distinct():
    labels = _labels([4, 5, 6, 4, 7])
    s = MPerClassBatchSampler(labels, 4, 12, 1200, allow_replacement=False, seed=0)
    for b in s:
        assert len(set(b)) == 12


def test_batch_sampler_matches_flat_sampler_structure_and_loader():
    labels = _labels(SIZES)
    flat = MPerClassSampler(labels, 2, 8, 400, seed=0)
    batched = MPerClassBatchSampler(labels, 2, 8, 400, seed=0)
    assert len(batched) * 8 == len(flat)
    assert [i for b in batched for i in b] == list(
        flat
    )  # same generator use: the very same batches
    ds = TensorDataset(torch.arange(len(labels)), torch.tensor(labels))
    loader = DataLoader(ds, batch_sampler=MPerClassBatchSampler(labels, 2, 8, 400, seed=0))
    assert len(loader) == 50
    for _, y in loader:
        assert sorted(Counter(y.tolist()).values()) == [2, 2, 2, 2]


def test_batch_sampler_seeding_and_coverage():
    labels = _labels(SIZES)
    a, b = (MPerClassBatchSampler(labels, 2, 4, 80, seed=1) for _ in range(2))
    assert list(a) == list(b)
    assert list(a) != list(MPerClassBatchSampler(labels, 2, 4, 80, seed=1))  # epoch 2 vs 1
    seen = set()
    for _ in range(15):
        for batch in a:
            seen.update(batch)
    assert seen == set(range(len(labels)))


# ---------------------------------------------------------------- DistributedMPerClassSampler
def _ranks(labels, world, **kw):
    return [
        DistributedMPerClassSampler(labels, num_replicas=world, rank=r, **kw) for r in range(world)
    ]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_distributed_disjoint_balanced_equal_length(world):
    labels = _labels(SIZES)
    samplers = _ranks(labels, world, m=2, batch_size=6, length_before_new_iter=1000, seed=4)
    expected = 1000 // (world * 6)
    assert [len(s) for s in samplers] == [expected] * world
    per_rank = [list(s) for s in samplers]
    assert [len(p) for p in per_rank] == [expected] * world
    for step in range(expected):
        batches = [p[step] for p in per_rank]
        for b in batches:
            _check_m_per_class_chunk(b, labels, 2, 3)
        for x, y in itertools.combinations(batches, 2):
            assert not set(x) & set(y)
            assert not {labels[i] for i in x} & {labels[i] for i in y}
        # the gathered global batch is itself m-per-class
        _check_m_per_class_chunk([i for b in batches for i in b], labels, 2, 3 * world)


def test_distributed_epochs_and_determinism():
    labels = _labels(SIZES)
    kw = {"m": 2, "batch_size": 4, "length_before_new_iter": 200, "seed": 3}
    a = DistributedMPerClassSampler(labels, num_replicas=2, rank=1, **kw)
    b = DistributedMPerClassSampler(labels, num_replicas=2, rank=1, **kw)
    e0 = list(a)
    assert list(a) == e0  # no set_epoch: the same order again (as DistributedSampler)
    assert list(b) == e0  # a fresh instance agrees: nothing but seed + epoch matters
    a.set_epoch(1)
    e1 = list(a)
    assert e1 != e0
    b.set_epoch(1)
    assert list(b) == e1
    other_seed = DistributedMPerClassSampler(labels, num_replicas=2, rank=1, **{**kw, "seed": 4})
    assert list(other_seed) != e0


def test_distributed_coverage_across_epochs():
    labels = _labels(SIZES)
    samplers = _ranks(labels, 2, m=2, batch_size=4, length_before_new_iter=80)
    seen = set()
    for epoch in range(10):
        for s in samplers:
            s.set_epoch(epoch)
            for batch in s:
                seen.update(batch)
    assert seen == set(range(len(labels)))


def test_distributed_errors():
    labels = _labels(SIZES)
    kw = {"m": 2, "batch_size": 4}
    with pytest.raises(RuntimeError, match="`num_replicas and rank` given, or an initialised"):
        DistributedMPerClassSampler(labels, **kw)
    with pytest.raises(RuntimeError, match="`rank` given, or an initialised"):
        DistributedMPerClassSampler(labels, num_replicas=2, **kw)
    with pytest.raises(
        ValueError, match=r"`rank` in \[0, num_replicas - 1\] = \[0, 1\], got rank=2"
    ):
        DistributedMPerClassSampler(labels, num_replicas=2, rank=2, **kw)
    with pytest.raises(ValueError, match="`rank` >= 0"):
        DistributedMPerClassSampler(labels, num_replicas=2, rank=-1, **kw)
    with pytest.raises(ValueError, match="`num_replicas` >= 1"):
        DistributedMPerClassSampler(labels, num_replicas=0, rank=0, **kw)
    with pytest.raises(ValueError, match=r"at least num_replicas \* batch_size // m = 6 \* 2 = 12"):
        DistributedMPerClassSampler(labels, num_replicas=6, rank=0, **kw)
    with pytest.raises(ValueError, match=r"`length_before_new_iter` >= num_replicas \* batch_size"):
        DistributedMPerClassSampler(labels, 2, 4, 7, num_replicas=2, rank=0)
    s = DistributedMPerClassSampler(labels, num_replicas=2, rank=0, **kw)
    with pytest.raises(ValueError, match="`epoch` >= 0"):
        s.set_epoch(-1)


def test_distributed_defaults_from_process_group(tmp_path):
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        s = DistributedMPerClassSampler(_labels(SIZES), 2, 4, 40)
        assert (s.num_replicas, s.rank) == (1, 0)
        assert len(s) == 10
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- HierarchicalSampler
def _hier_labels():
    """(class, super-class) rows: 4 super-classes with 5 classes of 1..6 samples each."""
    rng = np.random.default_rng(0)
    rows = [
        (sup * 10 + c, sup) for sup in range(4) for c in range(5) for _ in range(rng.integers(1, 7))
    ]
    return np.array(rows)[rng.permutation(len(rows))]


@pytest.mark.parametrize("spc", [1, 2, 4, "all"])
@pytest.mark.parametrize("supers,bpst", [(2, 4), (1, 3), (3, 2)])
def test_hierarchical_structure(spc, supers, bpst):
    labels = _hier_labels()
    batch_size = 8 * supers
    s = HierarchicalSampler(labels, batch_size, spc, bpst, supers, seed=0)
    assert len(s) == math.comb(4, supers) * bpst
    batches = list(s)
    assert len(batches) == len(s) and batches == s.batches
    combos = Counter()
    for b in batches:
        assert len(b) <= batch_size
        by_super = {}
        for i in b:
            by_super.setdefault(labels[i, 1], []).append(i)
        assert len(by_super) == supers
        combos[tuple(sorted(by_super))] += 1
        for sup, members in by_super.items():
            assert len(members) <= 8
            class_counts = Counter(labels[i, 0] for i in members)
            class_sizes = {c: int((labels[:, 0] == c).sum()) for c in class_counts}
            if spc == "all":
                # whole classes, and nothing else of the super-class fits any more
                assert all(class_counts[c] == class_sizes[c] for c in class_counts)
                assert len(set(members)) == len(members)
                room = 8 - len(members)
                others = {c for c in range(sup * 10, sup * 10 + 5)} - set(class_counts)
                assert all(int((labels[:, 0] == c).sum()) > room for c in others)
            else:
                assert set(class_counts.values()) == {spc}
                assert len(class_counts) == min(8 // spc, 5)
                for c in class_counts:
                    picked = [i for i in members if labels[i, 0] == c]
                    if class_sizes[c] >= spc:
                        assert len(set(picked)) == spc
                    else:  # drawn with replacement
                        assert len(set(picked)) <= class_sizes[c]
    # every combination of super-classes gets exactly bpst batches
    assert set(combos.values()) == {bpst} and len(combos) == math.comb(4, supers)


def test_hierarchical_attributes_inputs_and_columns():
    labels = _hier_labels()
    s = HierarchicalSampler(torch.tensor(labels), 16, 4, seed=0)
    assert (s.batch_size, s.batches_per_super_tuple, s.samples_per_class) == (16, 4, 4)
    assert (s.super_classes_per_batch, s.sub_batch_len) == (2, 8)
    assert sorted(s.super_pairs) == list(itertools.combinations(range(4), 2))
    assert set(s.super_image_lists) == {0, 1, 2, 3}
    assert sorted(s.super_image_lists[1][12]) == np.where(labels[:, 0] == 12)[0].tolist()
    swapped = HierarchicalSampler(
        labels[:, ::-1].copy(), 16, 4, inner_label=1, outer_label=0, seed=0
    )
    assert list(swapped) == list(HierarchicalSampler(labels, 16, 4, seed=0))


def test_hierarchical_seeding_and_reshuffle():
    labels = _hier_labels()
    a, b = (HierarchicalSampler(labels, 16, 2, seed=5) for _ in range(2))
    assert a.batches == b.batches
    first = list(a)
    assert first == a.batches  # the attribute holds the batches of the last iteration
    assert first == list(b)
    assert list(a) != first


def test_hierarchical_errors():
    labels = _hier_labels()
    with pytest.raises(ValueError, match="`batch_size` divisible by super_classes_per_batch=2"):
        HierarchicalSampler(labels, 15, 4)
    with pytest.raises(
        ValueError,
        match=r"`samples_per_class` dividing batch_size // "
        r"super_classes_per_batch = 8, got samples_per_class=3",
    ):
        HierarchicalSampler(labels, 16, 3)
    with pytest.raises(ValueError, match="`samples_per_class` >= 1"):
        HierarchicalSampler(labels, 16, 0)
    with pytest.raises(ValueError, match=r'`samples_per_class` to be an int >= 1 or "all"'):
        HierarchicalSampler(labels, 16, "some")
    with pytest.raises(ValueError, match="at least super_classes_per_batch=5 super-classes, got 4"):
        HierarchicalSampler(labels, 20, 2, super_classes_per_batch=5)
    with pytest.raises(ValueError, match=r"`labels` of shape \(N, levels\)"):
        HierarchicalSampler(labels[:, 0], 16, 2)
    with pytest.raises(ValueError, match="`outer_label` < the 2 label columns"):
        HierarchicalSampler(labels, 16, 2, outer_label=2)
    with pytest.raises(TypeError, match="integer `labels`"):
        HierarchicalSampler(labels.astype(float), 16, 2)


# ---------------------------------------------------------------- FixedSetOfTriplets
def test_fixed_set_of_triplets():
    labels = _labels(SIZES)
    s = FixedSetOfTriplets(labels, 500, seed=0)
    assert len(s) == 1500
    t = s.fixed_set_of_triplets
    assert t.shape == (500, 3) and t.dtype == torch.long
    for a, p, n in t.tolist():
        assert labels[a] == labels[p] != labels[n]
        assert (a == p) == (labels.count(labels[a]) == 1)
    rows = sorted(map(tuple, t.tolist()))
    out = list(s)
    assert len(out) == 1500
    assert sorted(zip(out[0::3], out[1::3], out[2::3], strict=True)) == rows  # same set...
    out2 = list(s)
    assert out2 != out  # ... in a new order each epoch
    assert sorted(zip(out2[0::3], out2[1::3], out2[2::3], strict=True)) == rows
    # anchor classes uniform over classes (not over samples): 50 expected per class
    counts = Counter(labels[a] for a in t[:, 0].tolist())
    assert all(25 < counts[c] < 80 for c in range(10))


def test_fixed_set_of_triplets_seeding_and_errors():
    labels = _labels(SIZES)
    a, b = FixedSetOfTriplets(labels, 20, seed=2), FixedSetOfTriplets(labels, 20, seed=2)
    assert torch.equal(a.fixed_set_of_triplets, b.fixed_set_of_triplets)
    assert list(a) == list(b)
    assert len(list(FixedSetOfTriplets(labels, 0))) == 0
    with pytest.raises(ValueError, match="labels with at least 2 classes"):
        FixedSetOfTriplets([3, 3, 3], 5)
    with pytest.raises(ValueError, match="`num_triplets` >= 0"):
        FixedSetOfTriplets(labels, -1)


# ---------------------------------------------------------------- TuplesToWeightsSampler
class AllTriplets:
    """A deterministic miner: every valid triplet of the batch."""

    def __call__(self, embeddings, labels):
        self.seen = (embeddings, labels)
        return get_all_triplets_indices(labels)


def _dataset(n=24, d=5, classes=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = torch.arange(n) % classes
    return TensorDataset(x, y)


def _hand_weights(labels):
    """Count each index's appearances over all (a, p, n) triplets, divided by the maximum."""
    labels = labels.tolist()
    counts = [0] * len(labels)
    for a, p, n in itertools.product(range(len(labels)), repeat=3):
        if a != p and labels[a] == labels[p] and labels[a] != labels[n]:
            counts[a] += 1
            counts[p] += 1
            counts[n] += 1
    top = max(counts)
    return torch.tensor([c / top for c in counts], dtype=torch.float32)


def test_tuples_to_weights_full_dataset():
    ds = _dataset()
    model = torch.nn.Linear(5, 3)
    model.train()
    miner = AllTriplets()
    s = TuplesToWeightsSampler(
        model, miner, ds, batch_size=7, dataloader_num_workers=0, data_device="cpu", seed=0
    )
    assert len(s) == 24 and s.weights is None
    out = list(s)
    assert len(out) == 24 and all(0 <= i < 24 for i in out)
    assert model.training  # mode restored
    emb, lab = miner.seen
    expected = torch.nn.functional.normalize(model(ds.tensors[0]), dim=1)
    assert torch.allclose(emb, expected.detach(), atol=1e-6)
    assert torch.equal(lab, ds.tensors[1])
    assert torch.allclose(s.weights, _hand_weights(ds.tensors[1]))
    assert s.device == torch.device("cpu")


def test_tuples_to_weights_subset_and_draws():
    ds = _dataset(n=40)
    model = torch.nn.Identity()
    miner = AllTriplets()
    s = TuplesToWeightsSampler(
        model,
        miner,
        ds,
        12,
        dataloader_num_workers=0,
        seed=3,
        normalize_embeddings=False,
        data_device="cpu",
    )
    assert len(s) == 12
    out = list(s)
    assert len(out) == 12
    chosen = torch.where(s.weights > 0)[0]
    assert len(chosen) <= 12 and set(out) <= set(chosen.tolist())
    emb, lab = miner.seen
    assert len(emb) == 12
    # the subset's rows, in subset order, are exactly the dataset rows with non-zero weight
    rows = [int(torch.where((ds.tensors[0] == e).all(dim=1))[0]) for e in emb]
    assert len(set(rows)) == 12 and set(chosen.tolist()) <= set(rows)
    assert torch.allclose(s.weights[rows], _hand_weights(lab))
    # draws follow the weights: only rows mined at all, reproducibly
    t = TuplesToWeightsSampler(
        model,
        miner,
        ds,
        12,
        dataloader_num_workers=0,
        seed=3,
        normalize_embeddings=False,
        data_device="cpu",
    )
    assert list(t) == out


def test_tuples_to_weights_draw_distribution():
    ds = _dataset(n=12, classes=3)
    model = torch.nn.Identity()
    s = TuplesToWeightsSampler(model, AllTriplets(), ds, dataloader_num_workers=0, seed=0)
    counts = Counter()
    for _ in range(120):
        counts.update(s)
    w = (s.weights / s.weights.sum()).cpu()
    freq = torch.tensor([counts[i] for i in range(12)], dtype=torch.float32) / (120 * 12)
    assert torch.allclose(freq, w, atol=0.03)


def test_tuples_to_weights_labels_hierarchy_and_getter():
    x = torch.randn(10, 3)
    y = torch.stack([torch.arange(10) % 2, torch.arange(10) % 5], dim=1)
    ds = TensorDataset(x, y)
    miner = AllTriplets()
    s = TuplesToWeightsSampler(
        torch.nn.Identity(), miner, ds, dataloader_num_workers=0, label_hierarchy_level=1, seed=0
    )
    list(s)
    assert torch.equal(miner.seen[1].cpu(), y[:, 1])
    swapped = TensorDataset(y[:, 0], x)  # items are (label, data)
    s = TuplesToWeightsSampler(
        torch.nn.Identity(),
        miner,
        swapped,
        dataloader_num_workers=0,
        data_and_label_getter=lambda b: (b[1], b[0]),
        dtype=torch.float64,
        seed=0,
    )
    list(s)
    assert miner.seen[0].dtype == torch.float64 and torch.equal(miner.seen[1].cpu(), y[:, 0])


def test_tuples_to_weights_errors():
    ds, model, miner = _dataset(), torch.nn.Identity(), AllTriplets()
    with pytest.raises(
        TypeError, match=r"unknown argument 'batchsize'\. Did you mean 'batch_size'"
    ):
        TuplesToWeightsSampler(model, miner, ds, batchsize=4)
    with pytest.raises(TypeError, match="`label_hierarchy_level` to be an int >= 0"):
        TuplesToWeightsSampler(model, miner, ds, label_hierarchy_level=[0, 1])
    with pytest.raises(TypeError, match=r"`model` to be a torch\.nn\.Module"):
        TuplesToWeightsSampler(lambda x: x, miner, ds)
    with pytest.raises(TypeError, match="a callable `miner`"):
        TuplesToWeightsSampler(model, "miner", ds)
    with pytest.raises(TypeError, match="a map-style `dataset` with a length"):
        TuplesToWeightsSampler(model, miner, iter(ds))
    with pytest.raises(ValueError, match="`subset_size` >= 1"):
        TuplesToWeightsSampler(model, miner, ds, 0)
    with pytest.raises(ValueError, match="BaseTester: expected `batch_size` to be an int >= 1"):
        TuplesToWeightsSampler(model, miner, ds, batch_size=0)  # the tester checks its options


# ---------------------------------------------------------------- registry
def test_samplers_registered():
    assert set(SAMPLERS.names()) >= {
        "DistributedMPerClassSampler",
        "FixedSetOfTriplets",
        "HierarchicalSampler",
        "MPerClassBatchSampler",
        "MPerClassSampler",
        "TuplesToWeightsSampler",
    }
    s = SAMPLERS.build({"name": "MPerClassSampler", "labels": [0, 1, 1], "m": 1, "seed": 0})
    assert isinstance(s, MPerClassSampler)
    with pytest.raises(TypeError, match="unknown argument 'mm'"):
        SAMPLERS.build({"name": "MPerClassSampler", "labels": [0, 1], "mm": 1})


# ---------------------------------------------------------------- functional.sampling
def test_sample_without_replacement_uniform_ordered_subsets():
    """Every ordered 2-subset of range(4) (12 of them) is equally likely; rows distinct."""
    g = torch.Generator().manual_seed(0)
    draws = F.sample_without_replacement(torch.full((24000,), 4), 2, generator=g)
    assert bool((draws[:, 0] != draws[:, 1]).all())
    counts = Counter(map(tuple, draws.tolist()))
    assert set(counts) == {(i, j) for i in range(4) for j in range(4) if i != j}
    assert all(1800 < v < 2200 for v in counts.values())


def test_sample_without_replacement_varying_sizes():
    g = torch.Generator().manual_seed(1)
    sizes = torch.tensor([3, 5, 3, 9, 100] * 400)
    draws = F.sample_without_replacement(sizes, 3, generator=g)
    for row, size in zip(draws.tolist(), sizes.tolist(), strict=True):
        assert len(set(row)) == 3 and all(0 <= v < size for v in row)
    # size 3 rows: all 6 permutations
    perms = Counter(tuple(r) for r, s in zip(draws.tolist(), sizes.tolist(), strict=True) if s == 3)
    assert len(perms) == 6 and all(80 < v < 190 for v in perms.values())


@pytest.mark.parametrize("n,k", [(10, 3), (10, 10), (7, 5), (1, 1), (0, 0)])
def test_random_subsets(n, k):
    g = torch.Generator().manual_seed(0)
    out = F.random_subsets(n, k, 50, generator=g)
    assert out.shape == (50, k)
    for row in out.tolist():
        assert len(set(row)) == k and all(0 <= v < n for v in row)
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(F.random_subsets(n, k, 50, generator=g2), out)


def test_group_by_label():
    labels = torch.tensor([5, 2, 5, 9, 2, 2])
    groups = F.group_by_label(labels)
    assert groups.classes.tolist() == [2, 5, 9]
    assert groups.sizes.tolist() == [3, 2, 1]
    assert [groups.members(c).tolist() for c in range(3)] == [[1, 4, 5], [0, 2], [3]]
    sub = F.group_by_label(labels[[3, 4]], index=torch.tensor([3, 4]))
    assert [sub.members(c).tolist() for c in range(2)] == [[4], [3]]


def test_tuples_to_weights_embeds_with_a_real_tester():
    """``self.tester`` (a BaseTester) embeds the data, so its options apply, e.g. ``pca``."""
    ds = _dataset()
    miner = AllTriplets()
    s = TuplesToWeightsSampler(
        torch.nn.Identity(), miner, ds, pca=2, dataloader_num_workers=0, data_device="cpu", seed=0
    )
    assert isinstance(s.tester, BaseTester) and s.tester.pca == 2
    list(s)
    embeddings = miner.seen[0]
    assert embeddings.shape == (len(ds), 2)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(len(ds)))
