"""CrossBatchMemory: queue order and wrap-around, self-comparison removal, enqueue_mask, miners,
state, dtypes and errors; values against a loop reference of the memory."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric._types import PairMasks
from deepmetric.distances.cosine_similarity import CosineSimilarity
from deepmetric.functional import tuples as T
from deepmetric.losses.base_loss_wrapper import BaseLossWrapper
from deepmetric.losses.contrastive_loss import ContrastiveLoss
from deepmetric.losses.cross_batch_memory import CrossBatchMemory
from deepmetric.losses.ntxent_loss import NTXentLoss
from deepmetric.losses.triplet_margin_loss import TripletMarginLoss
from deepmetric.losses.vicreg_loss import VICRegLoss
from deepmetric.miners.base_miner import BaseMiner
from deepmetric.reducers.mean_reducer import MeanReducer
from reference.losses import avg_nonzero, contrastive, mean, triplet_terms
from reference.memory_bank import RingMemory, pairs_against, triplets_against


# ---------------------------------------------------------------------- helpers
class SpyContrastive(ContrastiveLoss):
    """ContrastiveLoss that keeps what compute_loss received."""

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        self.seen = (embeddings, labels, indices_tuple, ref_emb, ref_labels)
        return super().compute_loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)


class SpyTriplet(TripletMarginLoss):
    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        self.seen = (embeddings, labels, indices_tuple, ref_emb, ref_labels)
        return super().compute_loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)


class TripletWithoutMasks(TripletMarginLoss):
    """Same loss, but declares no PairMasks support: the wrapper must build index tuples."""

    supports_pair_masks = False


class EvenPairsMiner(BaseMiner):
    """Deterministic miner: the pairs whose query index is even; records its inputs."""

    def mine(self, embeddings, labels, ref_emb, ref_labels):
        self.seen = (embeddings, labels, ref_emb, ref_labels)
        a1, p, a2, n = T.get_all_pairs_indices(labels, ref_labels)
        return a1[a1 % 2 == 0], p[a1 % 2 == 0], a2[a2 % 2 == 0], n[a2 % 2 == 0]


class FirstTripletsMiner(BaseMiner):
    """Deterministic miner returning every triplet of even anchors (tests the triplet form)."""

    def mine(self, embeddings, labels, ref_emb, ref_labels):
        a, p, n = T.get_all_triplets_indices(labels, ref_labels)
        keep = a % 2 == 0
        return a[keep], p[keep], n[keep]


def _rows(n, d=4, start=0, dtype=torch.float64):
    """Rows whose first entry is their global index: easy to find in memory."""
    x = torch.randn(n, d, dtype=dtype)
    x[:, 0] = torch.arange(start, start + n, dtype=dtype)
    return x


def _self_positive(tuples, slots):
    a, p = tuples[0], tuples[1]
    return bool((p == slots[a]).any())


# ---------------------------------------------------------------------- queue mechanics
def test_enqueue_order_and_wraparound():
    cbm = CrossBatchMemory(ContrastiveLoss(), 4, memory_size=10)
    sizes = [4, 4, 4, 3, 10]
    expected_idx = [4, 8, 2, 5, 5]
    expected_filled = [False, False, True, True, True]
    ring = RingMemory(10)
    start = 0
    for size, idx, filled in zip(sizes, expected_idx, expected_filled, strict=True):
        x = _rows(size, start=start)
        y = torch.arange(start, start + size) % 3
        slots = ring.write(list(x), y.tolist())
        cbm(x, y)
        assert int(cbm.queue_idx) == idx
        assert bool(cbm.has_been_filled) is filled
        assert cbm.curr_batch_idx.tolist() == slots
        for slot in range(10):
            if ring.rows[slot] is None:
                assert torch.equal(cbm.embedding_memory[slot], torch.zeros(4, dtype=x.dtype))
            else:
                assert torch.equal(cbm.embedding_memory[slot], ring.rows[slot])
                assert int(cbm.label_memory[slot]) == ring.labels[slot]
        start += size


@pytest.mark.parametrize("sizes", [[10], [6, 4], [7, 7]])
def test_has_been_filled_exactly_at_the_first_wrap(sizes):
    cbm = CrossBatchMemory(ContrastiveLoss(), 4, memory_size=10)
    written = 0
    for size in sizes:
        cbm(_rows(size), torch.arange(size) % 2)
        written += size
        assert bool(cbm.has_been_filled) is (written >= 10)
        assert int(cbm.queue_idx) == written % 10


def test_only_written_slots_are_used_before_filling():
    loss = SpyContrastive()
    cbm = CrossBatchMemory(loss, 4, memory_size=12)
    cbm(_rows(5), torch.arange(5) % 2)
    assert loss.seen[3].shape == (5, 4)
    cbm(_rows(4, start=5), torch.arange(4) % 2)
    assert loss.seen[3].shape == (9, 4)
    cbm(_rows(4, start=9), torch.arange(4) % 2)  # wraps: the whole memory from now on
    assert loss.seen[3].shape == (12, 4)
    assert loss.seen[3].data_ptr() == cbm.embedding_memory.data_ptr()


def test_memory_holds_detached_copies_and_gradients_reach_the_batch_only():
    cbm = CrossBatchMemory(ContrastiveLoss(), 4, memory_size=8)
    x = torch.randn(6, 4, requires_grad=True)
    out = cbm(x, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert not cbm.embedding_memory.requires_grad
    torch.testing.assert_close(cbm.embedding_memory[:6], x.detach())
    out.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_reset_queue():
    cbm = CrossBatchMemory(ContrastiveLoss(), 4, memory_size=6)
    cbm(_rows(6, dtype=torch.float64), torch.arange(6) % 2)
    cbm.reset_queue()
    assert int(cbm.queue_idx) == 0 and not bool(cbm.has_been_filled)
    assert cbm.embedding_memory.abs().sum() == 0 and cbm.label_memory.abs().sum() == 0
    assert cbm.embedding_memory.dtype == torch.float64  # keeps the dtype it follows


# ---------------------------------------------------------------------- self comparisons
@pytest.mark.parametrize("sizes", [[5, 5, 5], [3, 1, 4, 1], [8, 8]])
def test_self_positives_removed_explicit_pairs(sizes):
    """Index-tuple path: no query paired with its own slot; every other pair kept."""
    loss = SpyContrastive()
    cbm = CrossBatchMemory(loss, 4, memory_size=9)
    ring = RingMemory(9)
    for step, size in enumerate(sizes):
        x, y = _rows(size), torch.randint(0, 3, (size,))
        own = ring.write(list(x), y.tolist())
        cbm(x, y)
        a1, p, a2, n = loss.seen[2]
        assert not _self_positive((a1, p), cbm.curr_batch_idx)
        mem_labels = [ring.labels[s] for s in ring.in_use()]
        pos, neg = pairs_against(y.tolist(), mem_labels, own)
        assert list(zip(a1.tolist(), p.tolist(), strict=True)) == pos, step
        assert list(zip(a2.tolist(), n.tolist(), strict=True)) == neg, step


def test_batch_of_one_drops_its_own_slot():
    """PML keeps (0, own slot) for a batch of one (its start == end check); deepmetric drops it."""
    loss = SpyContrastive()
    cbm = CrossBatchMemory(loss, 4, memory_size=8)
    cbm(_rows(3), torch.tensor([0, 1, 2]))
    cbm(_rows(1, start=3), torch.tensor([2]))
    a1, p = loss.seen[2][:2]
    assert list(zip(a1.tolist(), p.tolist(), strict=True)) == [(0, 2)]


def test_self_positives_removed_pair_masks():
    loss = SpyTriplet()
    cbm = CrossBatchMemory(loss, 4, memory_size=7)
    for size in (4, 5):
        y = torch.randint(0, 2, (size,))
        cbm(_rows(size), y)
        masks = loss.seen[2]
        assert isinstance(masks, PairMasks)
        mem_labels = loss.seen[4]
        rows = torch.arange(size)
        expected_pos = y[:, None] == mem_labels[None, :]
        expected_pos[rows, cbm.curr_batch_idx] = False
        assert torch.equal(masks.pos, expected_pos)
        assert torch.equal(masks.neg, y[:, None] != mem_labels[None, :])


# ---------------------------------------------------------------------- values
def _simulate(loss_fn, reference, steps, memory_size=11, d=5, classes=3):
    """Run ``loss_fn`` (a CrossBatchMemory) over ``steps`` batch sizes next to a loop
    reference fed by a RingMemory; compare values and (through ``reference``) nothing else."""
    ring = RingMemory(memory_size)
    for size in steps:
        x = torch.randn(size, d, dtype=torch.float64, requires_grad=True)
        y = torch.randint(0, classes, (size,))
        own = ring.write(list(x.detach()), y.tolist())
        used = ring.in_use()
        mem = torch.stack([ring.rows[s] for s in used])
        mem_labels = [ring.labels[s] for s in used]
        expected = reference(x.detach(), y, mem, mem_labels, own)
        out = loss_fn(x, y)
        assert out.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
        out.backward()


STEPS = [4, 6, 3, 5, 11, 2]  # fills after the third call, wraps several times


@pytest.mark.parametrize("margin", [0.05, 0.4])
def test_triplet_values_against_loop_reference(margin):
    def reference(x, y, mem, mem_labels, own):
        trip = triplets_against(y.tolist(), mem_labels, own)
        terms = triplet_terms(
            x, y, margin=margin, ref=mem, ref_labels=torch.tensor(mem_labels), triplets=trip
        )
        return avg_nonzero(terms)

    cbm = CrossBatchMemory(TripletMarginLoss(margin=margin), 5, memory_size=11)
    _simulate(cbm, reference, STEPS)


def test_contrastive_cosine_values_against_loop_reference():
    def reference(x, y, mem, mem_labels, own):
        pairs = pairs_against(y.tolist(), mem_labels, own)
        return contrastive(
            x,
            y,
            pos_margin=0.9,
            neg_margin=0.3,
            kind="cos",
            ref=mem,
            ref_labels=torch.tensor(mem_labels),
            pairs=pairs,
        )

    loss = ContrastiveLoss(pos_margin=0.9, neg_margin=0.3, distance=CosineSimilarity())
    _simulate(CrossBatchMemory(loss, 5, memory_size=11), reference, STEPS)


@pytest.mark.parametrize("reducer", [None, MeanReducer()])
def test_pair_mask_path_equals_index_tuple_path(reducer):
    """The PairMasks fast path and the explicit-triplet path give the same values and grads."""
    kw = {} if reducer is None else {"reducer": reducer}
    fast = CrossBatchMemory(TripletMarginLoss(margin=0.3, **kw), 6, memory_size=16)
    slow = CrossBatchMemory(TripletWithoutMasks(margin=0.3, **kw), 6, memory_size=16)
    for size in (7, 7, 7, 3):
        x = torch.randn(size, 6, dtype=torch.float64)
        y = torch.randint(0, 3, (size,))
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        va, vb = fast(xa, y), slow(xb, y)
        va.backward()
        vb.backward()
        torch.testing.assert_close(va, vb, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-9, atol=1e-12)


def test_gradcheck_of_queries_against_the_memory():
    """Queries that are not enqueued (enqueue_mask False) see a constant memory, so their
    gradient is exact. (Enqueued rows are stored detached: by design, not differentiated.)"""
    cbm = CrossBatchMemory(TripletMarginLoss(margin=0.5, reducer=MeanReducer()), 3, memory_size=9)
    cbm(torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2]))
    keys = torch.randn(2, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 2, 0, 2])
    mask = torch.tensor([False] * 4 + [True] * 2)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)

    def fn(e):  # a fresh copy per call: every call writes to the memory
        return copy.deepcopy(cbm)(torch.cat([e, keys]), y, enqueue_mask=mask)

    assert torch.autograd.gradcheck(fn, (x,))


def test_degenerate_batches_give_connected_zero():
    cbm = CrossBatchMemory(TripletMarginLoss(), 4, memory_size=8)
    x = torch.randn(3, 4, requires_grad=True)
    out = cbm(x, torch.tensor([0, 1, 2]))  # no query has a positive in memory
    assert out.item() == 0
    out.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


# ---------------------------------------------------------------------- enqueue_mask
def test_enqueue_mask_splits_queue_and_query():
    loss = SpyContrastive()
    cbm = CrossBatchMemory(loss, 4, memory_size=10)
    x = _rows(6)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    mask = torch.tensor([False, False, False, True, True, True])
    cbm(x, y, enqueue_mask=mask)
    query, q_labels, tuples, ref, ref_labels = loss.seen
    assert torch.equal(query, x[:3]) and torch.equal(q_labels, y[:3])
    assert torch.equal(ref, x[3:]) and torch.equal(ref_labels, y[3:])
    assert int(cbm.queue_idx) == 3
    # no self-comparison removal: query i and key i share a label and stay a positive pair
    a1, p = tuples[:2]
    assert list(zip(a1.tolist(), p.tolist(), strict=True)) == [(0, 0), (1, 1), (2, 2)]


def test_enqueue_mask_with_pair_masks_keeps_every_positive():
    loss = SpyTriplet()
    cbm = CrossBatchMemory(loss, 4, memory_size=10)
    y = torch.tensor([0, 1, 0, 1])
    cbm(_rows(4), y, enqueue_mask=torch.tensor([True, True, False, False]))
    masks = loss.seen[2]
    assert torch.equal(masks.pos, torch.tensor([[True, False], [False, True]]))


def test_enqueue_everything_gives_connected_zero():
    cbm = CrossBatchMemory(ContrastiveLoss(), 4, memory_size=8)
    x = torch.randn(4, 4, requires_grad=True)
    out = cbm(x, torch.arange(4), enqueue_mask=torch.ones(4, dtype=torch.bool))
    assert out.item() == 0 and int(cbm.queue_idx) == 4
    out.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_enqueue_nothing_into_empty_memory():
    """PML marks the memory filled on an empty enqueue and compares with 8 zero rows."""
    cbm = CrossBatchMemory(ContrastiveLoss(), 4, memory_size=8)
    x = torch.randn(4, 4, requires_grad=True)
    out = cbm(x, torch.arange(4), enqueue_mask=torch.zeros(4, dtype=torch.bool))
    assert out.item() == 0
    assert int(cbm.queue_idx) == 0 and not bool(cbm.has_been_filled)
    out.backward()


# ---------------------------------------------------------------------- miners and tuples
def test_miner_sees_query_and_memory_and_self_positives_are_removed():
    miner = EvenPairsMiner()
    loss = SpyContrastive()
    cbm = CrossBatchMemory(loss, 4, memory_size=10, miner=miner)
    cbm(_rows(4), torch.tensor([0, 1, 0, 1]))
    x = _rows(4, start=4)
    y = torch.tensor([0, 0, 1, 1])
    cbm(x, y)
    m_query, m_labels, m_ref, m_ref_labels = miner.seen
    assert torch.equal(m_query, x) and torch.equal(m_labels, y)
    assert m_ref.shape == (8, 4) and m_ref_labels.tolist() == [0, 1, 0, 1, 0, 0, 1, 1]
    a1, p, a2, n = loss.seen[2]
    assert set(a1.tolist()) <= {0, 2} and set(a2.tolist()) <= {0, 2}
    assert not _self_positive((a1, p), cbm.curr_batch_idx)
    pos, neg = pairs_against(y.tolist(), m_ref_labels.tolist(), cbm.curr_batch_idx.tolist())
    assert list(zip(a1.tolist(), p.tolist(), strict=True)) == [q for q in pos if q[0] % 2 == 0]
    assert list(zip(a2.tolist(), n.tolist(), strict=True)) == [q for q in neg if q[0] % 2 == 0]


def test_miner_with_enqueue_mask_keeps_its_output():
    miner = EvenPairsMiner()
    loss = SpyContrastive()
    cbm = CrossBatchMemory(loss, 4, memory_size=10, miner=miner)
    y = torch.tensor([0, 1, 0, 1])
    cbm(_rows(4), y, enqueue_mask=torch.tensor([False, False, True, True]))
    assert torch.equal(miner.seen[0], loss.seen[0])
    a1, p = loss.seen[2][:2]
    assert list(zip(a1.tolist(), p.tolist(), strict=True)) == [(0, 0)]


def test_caller_tuple_is_converted_and_appended():
    loss = SpyContrastive()
    cbm = CrossBatchMemory(loss, 4, memory_size=10)
    y = torch.tensor([0, 0, 1, 1])
    extra = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))  # a triplet
    cbm(_rows(4), y, indices_tuple=extra)
    a1, p, a2, n = loss.seen[2]
    all_pairs = T.remove_self_comparisons(
        T.get_all_pairs_indices(y, y.clone()), cbm.curr_batch_idx, 10
    )
    expected = [*all_pairs[0].tolist(), 0], [*all_pairs[1].tolist(), 1]
    assert (a1.tolist(), p.tolist()) == expected
    assert (a2.tolist(), n.tolist()) == ([*all_pairs[2].tolist(), 0], [*all_pairs[3].tolist(), 2])


def test_caller_pairs_are_expanded_to_triplets_for_a_triplet_miner():
    loss = SpyTriplet()
    cbm = CrossBatchMemory(loss, 4, memory_size=10, miner=FirstTripletsMiner())
    y = torch.tensor([0, 0, 1, 1])
    extra = (torch.tensor([1]), torch.tensor([0]), torch.tensor([1, 1]), torch.tensor([2, 3]))
    cbm(_rows(4), y, indices_tuple=extra)
    a, p, n = loss.seen[2]
    assert list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))[-2:] == [(1, 0, 2), (1, 0, 3)]
    assert not _self_positive((a, p), cbm.curr_batch_idx)


# ---------------------------------------------------------------------- state, devices, dtypes
def test_state_dict_round_trip_continues_identically():
    cbm = CrossBatchMemory(TripletMarginLoss(), 4, memory_size=7)
    for size in (5, 4):
        cbm(torch.randn(size, 4), torch.randint(0, 2, (size,)))
    state = cbm.state_dict()
    assert {"embedding_memory", "label_memory", "queue_idx", "has_been_filled"} <= set(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = CrossBatchMemory(TripletMarginLoss(), 4, memory_size=7)
    restored.load_state_dict(torch.load(buffer))
    assert int(restored.queue_idx) == 2 and bool(restored.has_been_filled)
    x, y = torch.randn(3, 4), torch.tensor([0, 1, 0])
    expected = copy.deepcopy(cbm)(x, y)
    for clone in (restored, copy.deepcopy(cbm), pickle.loads(pickle.dumps(cbm))):
        torch.testing.assert_close(clone(x, y), expected)
        assert int(clone.queue_idx) == 5


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes_memory_follows_embeddings(dtype):
    cbm = CrossBatchMemory(TripletMarginLoss(margin=0.2), 8, memory_size=32)
    torch.manual_seed(1)
    x32 = torch.randn(12, 8)
    y = torch.arange(12) % 3
    ref = CrossBatchMemory(TripletMarginLoss(margin=0.2), 8, memory_size=32)
    for _ in range(3):
        x = x32.to(dtype).requires_grad_()
        out = cbm(x, y.to(torch.int32))
        expected = ref(x32.double(), y)
        assert out.dtype == dtype and torch.isfinite(out)
        out.backward()
        assert torch.isfinite(x.grad).all()
        tol = 1e-5 if dtype in (torch.float32, torch.float64) else 5e-2
        assert out.double().item() == pytest.approx(expected.item(), abs=tol, rel=tol)
    assert cbm.embedding_memory.dtype == dtype
    assert cbm.label_memory.dtype == torch.int32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.needs_cuda
def test_cuda_memory_follows_device():
    cbm = CrossBatchMemory(TripletMarginLoss(), 8, memory_size=16)
    cpu_out = copy.deepcopy(cbm)(torch.ones(4, 8), torch.tensor([0, 0, 1, 1]))
    x = torch.randn(6, 8, device="cuda", requires_grad=True)
    out = cbm(x, torch.tensor([0, 0, 1, 1, 2, 2]))  # CPU labels, CUDA embeddings
    out.backward()
    assert cbm.embedding_memory.is_cuda and cbm.label_memory.is_cuda and cbm.queue_idx.is_cuda
    assert torch.isfinite(cpu_out)
    moved = CrossBatchMemory(TripletMarginLoss(), 8, memory_size=16).cuda()
    assert moved.embedding_memory.is_cuda and moved.has_been_filled.is_cuda


def test_recordables_and_repr():
    cbm = CrossBatchMemory(ContrastiveLoss(), 4, memory_size=6)
    assert {"embedding_size", "memory_size", "queue_idx"} <= set(cbm._record_these)
    text = repr(cbm)
    assert "embedding_size=4" in text and "memory_size=6" in text and "ContrastiveLoss" in text


# ---------------------------------------------------------------------- capabilities
def test_supported_losses_come_from_declared_flags():
    names = CrossBatchMemory.supported_losses()
    assert {"ContrastiveLoss", "TripletMarginLoss"} <= set(names)
    assert "VICRegLoss" not in names
    CrossBatchMemory.check_loss_support("TripletMarginLoss")  # PML passes a name
    CrossBatchMemory.check_loss_support(TripletMarginLoss)
    assert issubclass(CrossBatchMemory, BaseLossWrapper)


class NoRefTriplet(TripletMarginLoss):
    supports_ref_emb = False


@pytest.mark.parametrize(
    ("loss", "missing"),
    [
        (VICRegLoss(), "supports_labels, supports_indices_tuple"),
        (NoRefTriplet(), "supports_ref_emb"),
    ],
)
def test_unsupported_loss_names_the_missing_capability(loss, missing):
    with pytest.raises(TypeError, match=f"CrossBatchMemory: .*missing capability: {missing}"):
        CrossBatchMemory(loss, 4)
    with pytest.raises(TypeError, match=f"missing capability: {missing}"):
        CrossBatchMemory.check_loss_support(
            type(loss).__name__ if loss.__class__ is VICRegLoss else loss
        )


def test_unknown_loss_name_and_non_module():
    with pytest.raises(ValueError, match=r"Unknown loss 'TripletMarginLos'.*TripletMarginLoss"):
        CrossBatchMemory.check_loss_support("TripletMarginLos")
    with pytest.raises(TypeError, match="expected `loss` to be a loss module"):
        CrossBatchMemory(lambda *a: 0, 4)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"embedding_size": 4.0}, TypeError, "`embedding_size` to be a positive int, got 4.0"),
        ({"embedding_size": 0}, ValueError, "`embedding_size` to be a positive int, got 0"),
        ({"embedding_size": 4, "memory_size": 0}, ValueError, "`memory_size` to be a positive"),
        ({"embedding_size": 4, "memory_size": True}, TypeError, "`memory_size` to be a positive"),
        ({"embedding_size": 4, "miner": "hard"}, TypeError, "`miner` to be a callable miner"),
    ],
)
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        CrossBatchMemory(ContrastiveLoss(), **kwargs)


def _call(cbm, **overrides):
    args = {"embeddings": torch.randn(4, 4), "labels": torch.tensor([0, 0, 1, 1])}
    args.update(overrides)
    return cbm(**args)


@pytest.mark.parametrize(
    ("overrides", "exc", "match"),
    [
        ({"labels": None}, ValueError, "CrossBatchMemory: expected `labels`.*got None"),
        ({"labels": torch.tensor([0, 1])}, ValueError, r"`labels` of shape \(N,\) with N=4"),
        ({"embeddings": torch.randn(4, 5)}, ValueError, r"shape \(N, 4\) \(embedding_size\)"),
        ({"embeddings": torch.randn(9, 4), "labels": torch.arange(9)}, ValueError, "at most"),
        (
            {"enqueue_mask": torch.ones(4, dtype=torch.bool), "indices_tuple": (1, 2, 3)},
            ValueError,
            "mutually exclusive",
        ),
        ({"enqueue_mask": torch.ones(4)}, TypeError, "a bool `enqueue_mask`, got torch.float32"),
        ({"enqueue_mask": torch.ones(3, dtype=torch.bool)}, ValueError, "`enqueue_mask` of shape"),
        ({"enqueue_mask": [True] * 4}, TypeError, "`enqueue_mask` to be a torch.Tensor"),
    ],
)
def test_forward_errors(overrides, exc, match):
    cbm = CrossBatchMemory(ContrastiveLoss(), 4, memory_size=8)
    with pytest.raises(exc, match=match):
        _call(cbm, **overrides)


def test_too_many_rows_to_enqueue():
    cbm = CrossBatchMemory(ContrastiveLoss(), 4, memory_size=3)
    with pytest.raises(ValueError, match="at most memory_size=3 rows to enqueue, got 4"):
        _call(cbm, enqueue_mask=torch.ones(4, dtype=torch.bool))


def test_pair_masks_refused_by_a_loss_without_the_flag():
    x, y = torch.randn(3, 4), torch.tensor([0, 0, 1])
    masks = PairMasks(y[:, None] == y, y[:, None] != y)
    with pytest.raises(TypeError, match="PairMasks not supported here"):
        ContrastiveLoss()(x, y, masks)
    with pytest.raises(ValueError, match=r"PairMasks.pos of dtype bool, shape \(N, M\)=\(3, 3\)"):
        TripletMarginLoss()(x, y, PairMasks(masks.pos.int(), masks.neg))


def test_reference_helpers_agree_on_a_tiny_case():
    """Guards the loop reference itself: mean over the expected triplets of a hand-made case."""
    trip = triplets_against([0], [0, 0, 1], own_slot=[0])
    assert trip == [(0, 1, 2)]
    assert mean([1.0, 3.0]) == 2.0


# ---------------------------------------------------------------------- MoCo-style example
def test_moco_style_training_example():
    """MoCo (He et al., CVPR 2020) with a queue and its InfoNCE loss (NTXentLoss): a query encoder
    is trained against the keys of a momentum encoder; this step's keys are enqueued with
    ``enqueue_mask`` and the queries are compared with the whole memory (this step's keys and
    the keys of earlier steps)."""
    torch.manual_seed(0)
    d_in, d, batch, memory_size = 10, 6, 8, 20
    query_enc = torch.nn.Linear(d_in, d)
    key_enc = copy.deepcopy(query_enc).requires_grad_(False)
    loss_fn = CrossBatchMemory(NTXentLoss(temperature=0.1), d, memory_size=memory_size)
    opt = torch.optim.SGD(query_enc.parameters(), lr=0.1)
    mask = torch.cat([torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)])
    for step in range(5):
        data = torch.randn(batch, d_in)
        q = query_enc(data + 0.05 * torch.randn_like(data))
        with torch.no_grad():
            k = key_enc(data + 0.05 * torch.randn_like(data))
        ids = torch.arange(batch) + step * batch  # one label per instance, new every step
        start = int(loss_fn.queue_idx)
        loss = loss_fn(torch.cat([q, k]), torch.cat([ids, ids]), enqueue_mask=mask)

        slots = (torch.arange(batch) + start) % memory_size
        assert torch.equal(loss_fn.embedding_memory[slots], k)
        assert torch.equal(loss_fn.label_memory[slots], ids)
        used = memory_size if bool(loss_fn.has_been_filled) else int(loss_fn.queue_idx)
        assert used == min((step + 1) * batch, memory_size)
        expected = NTXentLoss(temperature=0.1)(
            q,
            ids,
            ref_emb=loss_fn.embedding_memory[:used],
            ref_labels=loss_fn.label_memory[:used],
        )
        torch.testing.assert_close(loss, expected)

        opt.zero_grad()
        loss.backward()
        assert query_enc.weight.grad.abs().sum() > 0 and key_enc.weight.grad is None
        opt.step()
        with torch.no_grad():  # momentum update of the key encoder
            for pk, pq in zip(key_enc.parameters(), query_enc.parameters(), strict=True):
                pk.mul_(0.9).add_(0.1 * pq)
