"""Index-tuple helpers against pytorch-metric-learning 2.9.0 (oracle only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning.utils import common_functions as pml_c_f
from pytorch_metric_learning.utils import loss_and_miner_utils as pml_lmu

from deepmetric.utils import common_functions as c_f
from deepmetric.utils import loss_and_miner_utils as lmu

pytestmark = pytest.mark.parity


def same_tuple(ours, theirs):
    assert len(ours) == len(theirs)
    for x, y in zip(ours, theirs, strict=True):
        assert x.dtype == y.dtype, (x.dtype, y.dtype)
        assert torch.equal(x, y), (x, y)


def cases():
    g = torch.Generator().manual_seed(0)
    out = [
        torch.tensor([3]),
        torch.tensor([1, 1, 1]),
        torch.tensor([0, 1, 2, 3]),
        torch.tensor([0, 1, 0, 1, 2, 2, 2, 5]),
        torch.tensor([], dtype=torch.long),
    ]
    for _ in range(6):
        n = int(torch.randint(2, 24, (1,), generator=g))
        out.append(torch.randint(0, 5, (n,), generator=g))
    return out


CASES = cases()
OTHER_REF = torch.tensor([0, 1, 1, 2, 5, 4, 4, 0, 3])


def refs(labels):
    return {"none": None, "same": labels, "clone": labels.clone(), "other": OTHER_REF}


@pytest.mark.parametrize("labels", CASES)
@pytest.mark.parametrize("mode", ["none", "same", "clone", "other"])
def test_pairs_and_triplets(labels, mode):
    ref = refs(labels)[mode]
    m_ours, d_ours = lmu.get_matches_and_diffs(labels, ref)
    m_pml, d_pml = pml_lmu.get_matches_and_diffs(labels, ref)
    assert torch.equal(m_ours, m_pml.bool()) and torch.equal(d_ours, d_pml.bool())
    same_tuple(lmu.get_all_pairs_indices(labels, ref), pml_lmu.get_all_pairs_indices(labels, ref))
    same_tuple(
        lmu.get_all_triplets_indices(labels, ref), pml_lmu.get_all_triplets_indices(labels, ref)
    )
    same_tuple(lmu.convert_to_pairs(None, labels, ref), pml_lmu.convert_to_pairs(None, labels, ref))
    same_tuple(
        lmu.convert_to_triplets(None, labels, ref, t_per_anchor="all"),
        pml_lmu.convert_to_triplets(None, labels, ref, t_per_anchor="all"),
    )


@pytest.mark.parametrize("seed", range(8))
def test_convert_to_triplets_from_shuffled_pairs(seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (int(torch.randint(2, 16, (1,), generator=g)),), generator=g)
    a1, p, a2, n = lmu.get_all_pairs_indices(labels)
    keep_p = torch.rand(len(a1), generator=g) > 0.3
    keep_n = torch.rand(len(a2), generator=g) > 0.3
    i = torch.randperm(int(keep_p.sum()), generator=g)
    j = torch.randperm(int(keep_n.sum()), generator=g)
    pairs = (a1[keep_p][i], p[keep_p][i], a2[keep_n][j], n[keep_n][j])
    same_tuple(lmu.convert_to_triplets(pairs, labels), pml_lmu.convert_to_triplets(pairs, labels))
    same_tuple(
        lmu.convert_to_pos_pairs_with_unique_labels(pairs, labels),
        pml_lmu.convert_to_pos_pairs_with_unique_labels(pairs, labels),
    )
    triplets = lmu.get_all_triplets_indices(labels)
    same_tuple(lmu.convert_to_pairs(triplets, labels), pml_lmu.convert_to_pairs(triplets, labels))


@pytest.mark.parametrize("using_ref", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_convert_to_weights(using_ref, dtype):
    labels = torch.zeros(7, dtype=torch.long)
    e = torch.tensor([], dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    tuples = [
        None,
        (e, e, e),
        (e, e, e, e),
        tuple(torch.randint(0, 7, (9,), generator=g) for _ in range(3)),
        tuple(torch.randint(0, 7, (k,), generator=g) for k in (5, 5, 8, 8)),
    ]
    for t in tuples:
        ours = lmu.convert_to_weights(t, labels, dtype, using_ref=using_ref)
        theirs = pml_lmu.convert_to_weights(t, labels, dtype, using_ref=using_ref)
        assert ours.dtype == theirs.dtype
        tol = 1e-3 if dtype == torch.float16 else 1e-6
        assert torch.allclose(ours.double(), theirs.double(), atol=tol, rtol=0)


@pytest.mark.parametrize("ref_is_subset", [False, True])
@pytest.mark.parametrize(
    "memory_size, batch_size, start", [(6, 3, 1), (6, 3, 4), (6, 6, 0), (6, 6, 3), (9, 2, 8)]
)
def test_remove_self_comparisons(ref_is_subset, memory_size, batch_size, start):
    # PML's batch of one (first slot == last slot) keeps its self comparison; see test_tuples.py.
    slots = (start + torch.arange(batch_size)) % memory_size
    n_a = memory_size if ref_is_subset else batch_size
    a = torch.arange(n_a).repeat_interleave(memory_size)
    p = torch.arange(memory_size).repeat(n_a)
    n = torch.arange(len(a))
    for t in [(a, p, n), (a, p, a.flip(0), n)]:
        same_tuple(
            lmu.remove_self_comparisons(t, slots, memory_size, ref_is_subset),
            pml_lmu.remove_self_comparisons(t, slots, memory_size, ref_is_subset),
        )


@pytest.mark.parametrize("add_one", [True, False])
@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_logsumexp(add_one, dim, dtype):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(6, 5, generator=g) * 5).to(dtype)
    keep = torch.rand(6, 5, generator=g) > 0.5
    keep[2] = False
    keep[:, 1] = False
    for mask in (None, keep):
        ours = lmu.logsumexp(x, mask, add_one=add_one, dim=dim)
        theirs = pml_lmu.logsumexp(x, mask, add_one=add_one, dim=dim)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        tol = 2e-2 if dtype == torch.float16 else 1e-5
        assert torch.allclose(ours.double(), theirs.double(), rtol=tol, atol=tol)


def test_small_index_helpers():
    t3 = (torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    t4 = (*t3, torch.tensor([6, 7]))
    for t in (t3, t4):
        same_tuple(c_f.shift_indices_tuple(t, 10), pml_c_f.shift_indices_tuple(t, 10))
        same_tuple(c_f.concatenate_indices_tuples(t, t), pml_c_f.concatenate_indices_tuples(t, t))
        assert torch.equal(lmu.get_anchors(t), pml_lmu.get_anchors(t))
        assert lmu.pos_pairs_from_tuple(t) == tuple(pml_lmu.pos_pairs_from_tuple(t))
        assert lmu.neg_pairs_from_tuple(t) == tuple(pml_lmu.neg_pairs_from_tuple(t))
    small, big = torch.tensor([1, 2, 3]), torch.arange(8)
    assert torch.equal(
        lmu.repeat_to_match_size(small, 8, 3), pml_lmu.repeat_to_match_size(small, 8, 3)
    )
    for pair in ((small, big), (big, small), (small, small)):
        same_tuple(lmu.matched_size_indices(*pair), pml_lmu.matched_size_indices(*pair))
    x, y = torch.zeros(4, 2), torch.zeros(3, 2)
    for dim in (0, 1):
        same_tuple(lmu.meshgrid_from_sizes(x, y, dim), pml_lmu.meshgrid_from_sizes(x, y, dim))


@pytest.mark.parametrize("mode", ["none", "same", "clone", "other"])
@pytest.mark.parametrize("t_per_anchor", [None, 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_random_triplet_counts_per_anchor(mode, t_per_anchor, weighted):
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 4])
    ref = refs(labels)[mode]
    m = len(labels) if ref is None else len(ref)
    weights = None
    if weighted:
        weights = torch.rand(len(labels), m, generator=torch.Generator().manual_seed(0))
        weights[1] = 0
    ours = lmu.get_random_triplet_indices(labels, ref, t_per_anchor, weights)
    theirs = pml_lmu.get_random_triplet_indices(labels, ref, t_per_anchor, weights)
    counts = torch.bincount(ours[0], minlength=len(labels))
    assert torch.equal(counts, torch.bincount(theirs[0], minlength=len(labels)))
    assert all(t.dtype == torch.long for t in ours)


def test_common_function_values():
    x = torch.tensor([[1.0, 2.0], [3.0, 5.0], [5.0, 11.0]])
    assert torch.allclose(c_f.torch_standard_scaler(x), pml_c_f.torch_standard_scaler(x))
    b = torch.rand(2, 3, 4) > 0.2
    for dim in (0, 1, 2):
        assert torch.equal(
            c_f.torch_all_from_dim_to_end(b, dim), pml_c_f.torch_all_from_dim_to_end(b, dim)
        )
    parts = [torch.randn(3, 2) for _ in range(3)]
    assert torch.equal(c_f.unslice_by_n(parts), pml_c_f.unslice_by_n(parts))
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        assert c_f.pos_inf(dtype) == pml_c_f.pos_inf(dtype)
        assert c_f.neg_inf(dtype) == pml_c_f.neg_inf(dtype)
        assert c_f.small_val(dtype) == pml_c_f.small_val(dtype)
    assert torch.equal(c_f.torch_arange_from_size(x, 1), pml_c_f.torch_arange_from_size(x, 1))


def test_label_helpers():
    labels = np.array([3, 1, 3, 2, 1, 3])
    ours, theirs = c_f.get_labels_to_indices(labels), pml_c_f.get_labels_to_indices(labels)
    assert list(ours) == list(theirs)
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs)
    assert c_f.make_label_to_rank_dict(np.array([5, 2, 9])) == pml_c_f.make_label_to_rank_dict(
        np.array([5, 2, 9])
    )
    two_level = np.array([[5, 1], [2, 1], [9, 0], [2, 0]])
    assert c_f.get_label_map(two_level) == pml_c_f.get_label_map(two_level)
    for data in (np.array([5, 2, 9, 5]), np.array(["b", "a", "c"])):
        query = data[::-1].copy()
        ours_map = c_f.LabelMapper(True, data).map(query, 0)
        theirs_map = pml_c_f.LabelMapper(True, data).map(query, 0)
        assert np.array_equal(ours_map, theirs_map)

    for level in ("all", 0, 1, [1, 0]):
        ours_l = c_f.process_label(two_level, level, c_f.LabelMapper(True, two_level).map)
        theirs_l = pml_c_f.process_label(two_level, level, pml_c_f.LabelMapper(True, two_level).map)
        assert torch.equal(ours_l, theirs_l)
