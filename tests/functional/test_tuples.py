"""deepmetric.functional.tuples against plain-Python references written from the definitions."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmetric.functional import tuples as T


# ------------------------------------------------------------------ references (plain loops)
def ref_is_positive(labels, ref, same_source, i, j):
    return labels[i] == ref[j] and not (same_source and i == j)


def ref_all_pairs(labels, ref_labels=None):
    same = ref_labels is None or ref_labels is labels
    lab = labels.tolist()
    ref = lab if ref_labels is None else ref_labels.tolist()
    pos = [
        (i, j)
        for i in range(len(lab))
        for j in range(len(ref))
        if ref_is_positive(lab, ref, same, i, j)
    ]
    neg = [(i, j) for i in range(len(lab)) for j in range(len(ref)) if lab[i] != ref[j]]
    return pos, neg


def ref_all_triplets(labels, ref_labels=None):
    same = ref_labels is None or ref_labels is labels
    lab = labels.tolist()
    ref = lab if ref_labels is None else ref_labels.tolist()
    out = []
    for a in range(len(lab)):
        for p in range(len(ref)):
            if not ref_is_positive(lab, ref, same, a, p):
                continue
            out.extend((a, p, n) for n in range(len(ref)) if lab[a] != ref[n])
    return out


def ref_pairs_to_triplets(a1, p, a2, n):
    a1, p, a2, n = (t.tolist() for t in (a1, p, a2, n))
    return [(a1[i], p[i], n[j]) for i in range(len(a1)) for j in range(len(a2)) if a1[i] == a2[j]]


def as_list(tup):
    return list(zip(*(t.tolist() for t in tup), strict=True))


def label_cases():
    g = torch.Generator().manual_seed(0)
    cases = {
        "single": torch.tensor([3]),
        "all_same": torch.tensor([1, 1, 1, 1]),
        "all_distinct": torch.tensor([0, 1, 2, 3]),
        "mixed": torch.tensor([0, 1, 0, 1, 2, 2, 2, 5]),
        "negative_and_large": torch.tensor([-7, 2**40, -7, 2**40, 9]),
    }
    for k in range(3):
        cases[f"random{k}"] = torch.randint(
            0, 4, (int(torch.randint(2, 15, (1,), generator=g)),), generator=g
        )
    return cases


LABELS = label_cases()
REF_MODES = ["none", "same_object", "clone", "other"]


def resolve_ref(labels, mode):
    if mode == "none":
        return None
    if mode == "same_object":
        return labels
    if mode == "clone":
        return labels.clone()
    return torch.tensor([0, 1, 1, 2, 5, -7, 2**40])


# ------------------------------------------------------------------ masks and all pairs / triplets
@pytest.mark.parametrize("name", list(LABELS))
@pytest.mark.parametrize("mode", REF_MODES)
def test_matches_and_diffs_follow_the_definition(name, mode):
    labels = LABELS[name]
    ref_labels = resolve_ref(labels, mode)
    matches, diffs = T.get_matches_and_diffs(labels, ref_labels)
    assert matches.dtype == torch.bool and diffs.dtype == torch.bool
    same = mode in ("none", "same_object")
    lab = labels.tolist()
    ref = lab if ref_labels is None else ref_labels.tolist()
    for i, j in itertools.product(range(len(lab)), range(len(ref))):
        assert bool(matches[i, j]) == ref_is_positive(lab, ref, same, i, j)
        assert bool(diffs[i, j]) == (lab[i] != ref[j])


def test_self_pairs_are_kept_for_a_copy_of_the_labels():
    labels = torch.tensor([0, 0, 1])
    matches, _ = T.get_matches_and_diffs(labels, labels.clone())
    assert bool(matches.diagonal().all())
    matches, _ = T.get_matches_and_diffs(labels, labels)
    assert not bool(matches.diagonal().any())


@pytest.mark.parametrize("name", list(LABELS))
@pytest.mark.parametrize("mode", REF_MODES)
def test_all_pairs_match_reference_in_order(name, mode):
    labels = LABELS[name]
    ref_labels = resolve_ref(labels, mode)
    a1, p, a2, n = T.get_all_pairs_indices(labels, ref_labels)
    pos, neg = ref_all_pairs(labels, ref_labels)
    assert as_list((a1, p)) == pos
    assert as_list((a2, n)) == neg
    assert all(t.dtype == torch.long for t in (a1, p, a2, n))


@pytest.mark.parametrize("name", list(LABELS))
@pytest.mark.parametrize("mode", REF_MODES)
def test_all_triplets_match_reference_in_order(name, mode):
    labels = LABELS[name]
    ref_labels = resolve_ref(labels, mode)
    triplets = T.get_all_triplets_indices(labels, ref_labels)
    assert as_list(triplets) == ref_all_triplets(labels, ref_labels)
    assert all(t.dtype == torch.long and t.ndim == 1 for t in triplets)


def test_triplets_from_uint8_masks_equal_bool_masks():
    labels = LABELS["mixed"]
    matches, diffs = T.get_matches_and_diffs(labels)
    a = T.triplets_from_masks(matches, diffs)
    b = T.triplets_from_masks(matches.to(torch.uint8), diffs.to(torch.uint8))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=0, max_size=12),
    st.one_of(st.none(), st.lists(st.integers(0, 4), min_size=0, max_size=12)),
)
def test_all_triplets_property(lab, ref):
    labels = torch.tensor(lab, dtype=torch.long)
    ref_labels = None if ref is None else torch.tensor(ref, dtype=torch.long)
    assert as_list(T.get_all_triplets_indices(labels, ref_labels)) == ref_all_triplets(
        labels, ref_labels
    )


@pytest.mark.parametrize("block_rows", [1, 3, 17, 10**9])
def test_blockwise_expansion_is_independent_of_block_size(block_rows):
    labels = LABELS["random0"]
    matches, diffs = T.get_matches_and_diffs(labels)
    a, p = torch.where(matches)
    _, n = torch.where(diffs)
    out = T._expand_by_anchor(a, p, n, diffs.sum(dim=1), block_rows=block_rows)
    assert as_list(out) == ref_all_triplets(labels)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses RLIMIT_AS and /proc")
def test_all_triplets_never_builds_the_cube():
    # 2048 labels: an N x N x N bool tensor is 8 GiB; the 4.2M triplets need ~0.2 GiB.
    code = textwrap.dedent(
        """
        import resource
        import torch
        from deepmetric.functional import tuples as T
        torch.set_num_threads(1)
        status = open("/proc/self/status").read().splitlines()
        vm = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, resource.RLIM_INFINITY))
        a, p, n = T.get_all_triplets_indices(torch.arange(2048) // 2)
        assert len(a) == 2048 * 2046, len(a)
        try:
            torch.zeros(2048, 2048, 2048, dtype=torch.bool)
        except (RuntimeError, MemoryError):
            print("cube refused")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "cube refused" in out.stdout  # the limit is real


# ------------------------------------------------------------------ conversions
def test_convert_to_pairs_forms():
    labels = LABELS["mixed"]
    assert all(
        torch.equal(x, y)
        for x, y in zip(
            T.convert_to_pairs(None, labels), T.get_all_pairs_indices(labels), strict=True
        )
    )
    pairs = T.get_all_pairs_indices(labels)
    assert T.convert_to_pairs(pairs, labels) is pairs
    a, p, n = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5])
    a1, p1, a2, n2 = T.convert_to_pairs((a, p, n), labels)
    assert a1 is a and p1 is p and a2 is a and n2 is n


def test_convert_to_pairs_with_a_separate_reference_keeps_the_diagonal():
    labels = torch.tensor([0, 0, 1])
    a1, p, _, _ = T.convert_to_pairs(None, labels, torch.tensor([0, 1]))
    assert as_list((a1, p)) == [(0, 0), (1, 0), (2, 1)]


@pytest.mark.parametrize("seed", range(6))
def test_convert_to_triplets_from_pairs_matches_reference(seed):
    g = torch.Generator().manual_seed(seed)
    n_pos, n_neg = (
        int(torch.randint(0, 12, (1,), generator=g)),
        int(torch.randint(0, 12, (1,), generator=g)),
    )
    a1 = torch.randint(0, 5, (n_pos,), generator=g)
    p = torch.randint(0, 9, (n_pos,), generator=g)
    a2 = torch.randint(0, 5, (n_neg,), generator=g)
    n = torch.randint(0, 9, (n_neg,), generator=g)
    out = T.convert_to_triplets((a1, p, a2, n), torch.zeros(5, dtype=torch.long))
    assert as_list(out) == ref_pairs_to_triplets(a1, p, a2, n)
    assert all(t.dtype == torch.long for t in out)


def test_convert_to_triplets_keeps_duplicates_and_drops_anchors_without_negatives():
    pairs = (
        torch.tensor([3, 0, 2, 0]),
        torch.tensor([1, 2, 0, 2]),
        torch.tensor([0, 3, 0, 4]),
        torch.tensor([1, 2, 3, 1]),
    )
    out = T.convert_to_triplets(pairs, torch.zeros(5, dtype=torch.long))
    assert as_list(out) == [(3, 1, 2), (0, 2, 1), (0, 2, 3), (0, 2, 1), (0, 2, 3)]


def test_convert_to_triplets_from_all_pairs_equals_all_triplets():
    labels = LABELS["random1"]
    a = T.convert_to_triplets(T.get_all_pairs_indices(labels), labels)
    b = T.get_all_triplets_indices(labels)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_convert_to_triplets_other_forms():
    labels = LABELS["mixed"]
    triplets = T.get_all_triplets_indices(labels)
    assert T.convert_to_triplets(triplets, labels) is triplets
    everything = T.convert_to_triplets(None, labels, t_per_anchor="all")
    assert as_list(everything) == ref_all_triplets(labels)
    g = torch.Generator().manual_seed(0)
    a, _, _ = T.convert_to_triplets(None, labels, t_per_anchor=3, generator=g)
    assert len(a) == 3 * 7  # seven anchors have a positive and a negative
    with pytest.raises(ValueError, match=r"expected `t_per_anchor` to be None or an int >= 0"):
        T.convert_to_triplets(None, labels, t_per_anchor="some")


def test_convert_to_pos_pairs_with_unique_labels_matches_reference():
    labels = torch.tensor([5, 1, 5, 1, 7, 7, 3])
    g = torch.Generator().manual_seed(3)
    a1, p, a2, n = T.get_all_pairs_indices(labels)
    perm = torch.randperm(len(a1), generator=g)
    pairs = (a1[perm], p[perm], a2, n)
    out_a, out_p = T.convert_to_pos_pairs_with_unique_labels(pairs, labels)
    first = {}
    for a, pp in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
        first.setdefault(int(labels[a]), (a, pp))
    expected = [first[k] for k in sorted(first)]
    assert as_list((out_a, out_p)) == expected
    # triplets use their (a, p) part; None means all pairs
    trip = T.get_all_triplets_indices(labels)
    from_trip = T.convert_to_pos_pairs_with_unique_labels(trip, labels)
    from_none = T.convert_to_pos_pairs_with_unique_labels(None, labels)
    assert as_list(from_trip) == as_list(from_none) == [(1, 3), (0, 2), (4, 5)]


def test_pos_and_neg_pairs_from_tuple():
    t = tuple(torch.tensor([i]) for i in range(4))
    assert T.pos_pairs_from_tuple(t) == t[:2]
    assert T.neg_pairs_from_tuple(t) == t[2:]
    assert T.neg_pairs_from_tuple(t[:3]) == (t[2],)


# ------------------------------------------------------------------ random triplets
def check_valid(labels, ref_labels, triplets):
    a, p, n = triplets
    ref = labels if ref_labels is None else ref_labels
    assert bool((labels[a] == ref[p]).all())
    assert bool((labels[a] != ref[n]).all())
    if ref_labels is None or ref_labels is labels:
        assert bool((a != p).all())
    assert all(t.dtype == torch.long for t in triplets)


def usable_anchors(labels, ref_labels=None):
    matches, diffs = T.get_matches_and_diffs(labels, ref_labels)
    return {i for i in range(len(labels)) if bool(matches[i].any()) and bool(diffs[i].any())}


@pytest.mark.parametrize("name", list(LABELS))
@pytest.mark.parametrize("mode", REF_MODES)
@pytest.mark.parametrize("t_per_anchor", [None, 1, 7])
def test_random_triplets_are_valid_with_expected_counts(name, mode, t_per_anchor):
    labels = LABELS[name]
    ref_labels = resolve_ref(labels, mode)
    g = torch.Generator().manual_seed(1)
    triplets = T.get_random_triplet_indices(labels, ref_labels, t_per_anchor, generator=g)
    check_valid(labels, ref_labels, triplets)
    ref = labels if ref_labels is None else ref_labels
    counts = torch.bincount(triplets[0], minlength=len(labels)).tolist()
    usable = usable_anchors(labels, ref_labels)
    for i in range(len(labels)):
        if i not in usable:
            expected = 0
        elif t_per_anchor is None:
            expected = int((ref == labels[i]).sum())  # same-label references, self included
        else:
            expected = t_per_anchor
        assert counts[i] == expected
    assert torch.equal(triplets[0], triplets[0].sort().values)  # grouped by anchor


def test_random_triplets_are_reproducible_with_a_seeded_generator():
    labels = LABELS["random2"]
    first = T.get_random_triplet_indices(
        labels, t_per_anchor=5, generator=torch.Generator().manual_seed(7)
    )
    again = T.get_random_triplet_indices(
        labels, t_per_anchor=5, generator=torch.Generator().manual_seed(7)
    )
    other = T.get_random_triplet_indices(
        labels, t_per_anchor=5, generator=torch.Generator().manual_seed(8)
    )
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(first, other, strict=True))


def test_random_triplets_draw_uniformly():
    # anchor 0: positives {1, 2, 3, 4}, negatives {5..10}
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3])
    k = 30000
    a, p, n = T.get_random_triplet_indices(
        labels, t_per_anchor=k, generator=torch.Generator().manual_seed(0)
    )
    p0, n0 = p[a == 0], n[a == 0]
    pos_freq = torch.bincount(p0, minlength=11)[1:5].double() / k
    neg_freq = torch.bincount(n0, minlength=11)[5:].double() / k
    assert torch.allclose(pos_freq, torch.full_like(pos_freq, 1 / 4), atol=0.015)
    assert torch.allclose(neg_freq, torch.full_like(neg_freq, 1 / 6), atol=0.015)


def test_random_triplets_draw_negatives_by_weight():
    labels = torch.tensor([0, 0, 1, 1, 2, 3])
    weights = torch.zeros(6, 6)
    weights[0, 2:] = torch.tensor([1.0, 0.0, 3.0, 6.0])  # negatives of anchor 0
    weights[0, 1] = 100.0  # a positive: never used for negatives
    weights[1, 2:] = 1.0
    weights[2, 0] = 1.0
    weights[3, :] = 0.0  # anchor 3: no weight on any negative -> dropped
    weights[4, 0] = 1.0
    weights[5, 5] = 5.0  # anchor 5 has no positive anyway
    k = 20000
    a, p, n = T.get_random_triplet_indices(
        labels, t_per_anchor=k, weights=weights, generator=torch.Generator().manual_seed(0)
    )
    check_valid(labels, None, (a, p, n))
    counts = torch.bincount(a, minlength=6).tolist()
    assert counts == [k, k, k, 0, 0, 0]
    freq = torch.bincount(n[a == 0], minlength=6).double() / k
    expected = torch.tensor([0, 0, 0.1, 0, 0.3, 0.6], dtype=torch.double)
    assert torch.allclose(freq, expected, atol=0.015)
    assert bool((n[a == 2] == 0).all())


def test_random_triplets_with_weights_and_default_count():
    labels = torch.tensor([0, 0, 0, 1])
    weights = torch.ones(4, 4, dtype=torch.float16)
    a, _, n = T.get_random_triplet_indices(
        labels, weights=weights, generator=torch.Generator().manual_seed(0)
    )
    assert torch.bincount(a, minlength=4).tolist() == [3, 3, 3, 0]
    assert bool((n == 3).all())


def test_random_triplets_empty_and_zero_per_anchor():
    for labels in (
        torch.tensor([0, 0, 0]),
        torch.tensor([0, 1, 2]),
        torch.tensor([], dtype=torch.long),
    ):
        a, p, n = T.get_random_triplet_indices(labels, t_per_anchor=4)
        assert len(a) == len(p) == len(n) == 0 and a.dtype == torch.long
    a, _, _ = T.get_random_triplet_indices(LABELS["mixed"], t_per_anchor=0)
    assert len(a) == 0


@pytest.mark.parametrize("bad", [-1, 1.5, True, "all"])
def test_random_triplets_reject_bad_t_per_anchor(bad):
    with pytest.raises(ValueError, match=r"get_random_triplet_indices: expected `t_per_anchor`"):
        T.get_random_triplet_indices(LABELS["mixed"], t_per_anchor=bad)


def test_random_triplets_reject_bad_weight_shape():
    with pytest.raises(
        ValueError, match=r"expected `weights` of shape \(N, M\)=\(8, 8\), got \(8, 7\)"
    ):
        T.get_random_triplet_indices(LABELS["mixed"], weights=torch.ones(8, 7))


# ------------------------------------------------------------------ sizes
def test_repeat_and_matched_sizes():
    assert T.repeat_to_match_size(torch.tensor([1, 2, 3]), 7, 3).tolist() == [1, 2, 3, 1, 2, 3, 1]
    p, n = T.matched_size_indices(torch.tensor([1, 2, 3]), torch.arange(7))
    assert p.tolist() == [1, 2, 3, 1, 2, 3, 1] and n.tolist() == list(range(7))
    p, n = T.matched_size_indices(torch.arange(5), torch.tensor([8, 9]))
    assert p.tolist() == list(range(5)) and n.tolist() == [8, 9, 8, 9, 8]
    same = torch.tensor([4, 5])
    assert T.matched_size_indices(same, same) == (same, same)
    empty = torch.tensor([], dtype=torch.long)
    assert T.matched_size_indices(empty, empty) == (empty, empty)


def test_matched_size_indices_rejects_one_empty_side():
    with pytest.raises(
        ValueError, match=r"matched_size_indices: expected two non-empty .* got lengths \(0, 2\)"
    ):
        T.matched_size_indices(torch.tensor([], dtype=torch.long), torch.tensor([1, 2]))


def test_meshgrid_from_sizes():
    i, j = T.meshgrid_from_sizes(torch.zeros(2, 5), torch.zeros(3))
    assert i.tolist() == [[0, 0, 0], [1, 1, 1]] and j.tolist() == [[0, 1, 2], [0, 1, 2]]
    i, j = T.meshgrid_from_sizes(torch.zeros(2, 5), torch.zeros(3, 4), dim=1)
    assert i.shape == j.shape == (5, 4)


# ------------------------------------------------------------------ anchors and weights
def test_get_anchors():
    t = tuple(torch.tensor([i, i + 10]) for i in range(4))
    assert T.get_anchors(t[:3]) is t[0]
    assert T.get_anchors(t).tolist() == [0, 10, 2, 12]


def ref_weights(indices_tuple, n, using_ref):
    if indices_tuple is None or all(len(t) == 0 for t in indices_tuple):
        return [1.0] * n
    positions = (
        [0, 2]
        if using_ref and len(indices_tuple) == 4
        else [0]
        if using_ref
        else range(len(indices_tuple))
    )
    counts = [0] * n
    for k in positions:
        for i in indices_tuple[k].tolist():
            counts[i] += 1
    top = max(counts)
    return [c / top for c in counts]


@pytest.mark.parametrize("using_ref", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_convert_to_weights_matches_reference(using_ref, dtype):
    labels = torch.zeros(6, dtype=torch.long)
    e = torch.tensor([], dtype=torch.long)
    tuples = [
        None,
        (e, e, e),
        (e, e, e, e),
        (torch.tensor([0, 0, 1]), torch.tensor([2, 2, 3]), torch.tensor([1, 4, 4])),
        (
            torch.tensor([0, 0, 1]),
            torch.tensor([2, 2, 3]),
            torch.tensor([1, 4]),
            torch.tensor([1, 4]),
        ),
    ]
    tol = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}[
        dtype
    ]
    for t in tuples:
        w = T.convert_to_weights(t, labels, dtype, using_ref=using_ref)
        assert w.dtype == dtype and w.shape == (6,)
        expected = torch.tensor(ref_weights(t, 6, using_ref), dtype=torch.float64)
        assert torch.allclose(w.double(), expected, atol=tol, rtol=0)


def test_convert_to_weights_rejects_reference_indices_without_using_ref():
    t = (torch.tensor([0]), torch.tensor([5]), torch.tensor([9]))
    with pytest.raises(
        ValueError, match=r"convert_to_weights: expected indices below len\(labels\)=3, got index 9"
    ):
        T.convert_to_weights(t, torch.zeros(3, dtype=torch.long), torch.float32)
    w = T.convert_to_weights(t, torch.zeros(3, dtype=torch.long), torch.float32, using_ref=True)
    assert w.tolist() == [1.0, 0.0, 0.0]


# ------------------------------------------------------------------ self comparisons
def ref_keep(a, p, slots, ref_is_subset):
    slots = slots.tolist()
    keep = []
    for ai, pi in zip(a.tolist(), p.tolist(), strict=True):
        own = pi < len(slots) and slots[pi] == ai if ref_is_subset else pi == slots[ai]
        keep.append(not own)
    return keep


@pytest.mark.parametrize("ref_is_subset", [False, True])
@pytest.mark.parametrize(
    "memory_size, batch_size, start",
    [(6, 3, 1), (6, 3, 4), (6, 6, 2), (5, 1, 3), (4, 1, 0), (7, 2, 6)],
)
def test_not_self_comparisons_matches_reference(ref_is_subset, memory_size, batch_size, start):
    slots = (start + torch.arange(batch_size)) % memory_size
    n_a, n_p = (memory_size, memory_size) if ref_is_subset else (batch_size, memory_size)
    a = torch.arange(n_a).repeat_interleave(n_p)
    p = torch.arange(n_p).repeat(n_a)
    keep = T.not_self_comparisons(a, p, slots[0], slots[-1], slots, memory_size, ref_is_subset)
    assert keep.dtype == torch.bool
    assert keep.tolist() == ref_keep(a, p, slots, ref_is_subset)


def test_remove_self_comparisons_triplets_and_pairs():
    slots = torch.tensor([4, 5, 0])  # a batch of 3 written with wrap-around into a memory of 6
    a = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    p = torch.tensor([4, 3, 5, 0, 0, 1, 4])
    n = torch.arange(7)
    out = T.remove_self_comparisons((a, p, n), slots, 6)
    assert as_list(out) == [(0, 3, 1), (1, 0, 3), (2, 1, 5), (2, 4, 6)]
    a2, n2 = torch.tensor([0, 1]), torch.tensor([2, 3])
    out = T.remove_self_comparisons((a, p, a2, n2), slots, 6)
    assert as_list(out[:2]) == [(0, 3), (1, 0), (2, 1), (2, 4)]
    assert out[2] is a2 and out[3] is n2


def test_batch_of_one_removes_its_self_comparison():
    out = T.remove_self_comparisons(
        (torch.tensor([0, 0]), torch.tensor([2, 3]), torch.tensor([1, 1])), torch.tensor([2]), 9
    )
    assert as_list(out) == [(0, 3, 1)]


def test_empty_batch_slots_keep_everything():
    keep = T.not_self_comparisons(
        torch.tensor([0]),
        torch.tensor([0]),
        None,
        None,
        torch.tensor([], dtype=torch.long),
        4,
        True,
    )
    assert keep.tolist() == [True]


# ------------------------------------------------------------------ index-tuple arithmetic
def test_shift_and_concatenate():
    t3 = (torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    assert [x.tolist() for x in T.shift_indices_tuple(t3, 10)] == [[0, 1], [12, 13], [14, 15]]
    e = torch.tensor([], dtype=torch.long)
    t4 = (torch.tensor([0, 1]), torch.tensor([2, 3]), e, e)
    assert [x.tolist() for x in T.shift_indices_tuple(t4, 10)] == [[0, 1], [12, 13], [], []]
    cat = T.concatenate_indices_tuples(t3, t3)
    assert [x.tolist() for x in cat] == [[0, 1, 0, 1], [2, 3, 2, 3], [4, 5, 4, 5]]


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: T.convert_to_pairs(t, torch.zeros(2, dtype=torch.long)),
        lambda t: T.convert_to_triplets(t, torch.zeros(2, dtype=torch.long)),
        T.get_anchors,
        lambda t: T.remove_self_comparisons(t, torch.tensor([0]), 2),
        lambda t: T.shift_indices_tuple(t, 2),
    ],
)
def test_bad_tuple_forms_raise(fn):
    two = (torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(
        TypeError, match=r"expected an indices tuple \(a, p, n\) or \(a1, p, a2, n\), got length 2"
    ):
        fn(two)
    with pytest.raises(TypeError, match=r"got Tensor"):
        fn(torch.tensor([0, 1, 2]))


# ------------------------------------------------------------------ masked logsumexp
def ref_logsumexp(x, keep, add_one, dim):
    """float64 loops over the reduced dim of a 2-D tensor."""
    x = x.double()
    if dim == 0:
        x, keep = x.t(), None if keep is None else keep.t()
    rows = []
    for i in range(x.shape[0]):
        terms = [float(v) for j, v in enumerate(x[i]) if keep is None or bool(keep[i, j])]
        if not terms:
            rows.append(0.0)
            continue
        m = max(terms + ([0.0] if add_one else []))
        total = sum(math.exp(t - m) for t in terms) + (math.exp(-m) if add_one else 0.0)
        rows.append(m + math.log(total))
    out = torch.tensor(rows, dtype=torch.float64)[:, None]
    return out if dim == 1 else out.t()


TOL = {torch.float64: 1e-7, torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("add_one", [True, False])
@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("masked", [False, True])
def test_logsumexp_matches_reference(dtype, add_one, dim, masked):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(5, 7, generator=g, dtype=torch.float64) * 4).to(dtype)
    keep = torch.rand(5, 7, generator=g) > 0.5 if masked else None
    if masked:
        keep[1] = False
        keep[:, 2] = False
    out = T.logsumexp(x, keep, add_one=add_one, dim=dim)
    assert out.dtype == dtype
    expected = ref_logsumexp(x, keep, add_one, dim)
    assert out.shape == expected.shape
    assert torch.allclose(out.double(), expected, rtol=TOL[dtype], atol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_logsumexp_is_stable_in_half_precision(dtype):
    x = torch.tensor([[30000.0, 30000.0, -30000.0], [-60000.0, -60000.0, 5.0]], dtype=dtype)
    out = T.logsumexp(x, add_one=True)
    assert bool(torch.isfinite(out).all())
    expected = ref_logsumexp(x, None, True, 1)
    assert torch.allclose(out.double(), expected, rtol=1e-2, atol=0.05)


def test_logsumexp_rows_with_nothing_kept_give_zero_and_zero_grad():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    keep = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    out = T.logsumexp(x, keep, add_one=False)
    assert out[1].item() == 0.0
    out.sum().backward()
    assert bool(torch.isfinite(x.grad).all())
    assert bool((x.grad[~keep] == 0).all())


def test_logsumexp_accepts_non_bool_masks_and_higher_rank():
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    keep = (torch.rand(2, 3, 4) > 0.3).to(torch.uint8)
    a = T.logsumexp(x, keep, dim=2)
    b = T.logsumexp(x, keep.bool(), dim=2)
    assert a.shape == (2, 3, 1) and torch.equal(a, b)
    full = T.logsumexp(x, dim=2, add_one=False)
    assert torch.allclose(full, torch.logsumexp(x, dim=2, keepdim=True))


@pytest.mark.parametrize("add_one", [True, False])
def test_logsumexp_gradcheck(add_one):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    keep = torch.rand(4, 5, generator=g) > 0.4
    keep[2] = False
    assert torch.autograd.gradcheck(lambda t: T.logsumexp(t, keep, add_one=add_one), (x,))


@pytest.mark.parametrize("convert", [T.convert_to_pairs, T.convert_to_triplets])
def test_conversion_without_labels_or_tuple_is_an_error(convert):
    with pytest.raises(ValueError, match="`labels` to build tuples"):
        convert(None, None)
