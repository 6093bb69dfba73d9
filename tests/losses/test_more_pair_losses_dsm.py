"""DynamicSoftMarginLoss: loop reference over several steps (running histogram), blockwise
all-triplets kernels, matched-rows mode, histogram state, gradients, dtypes, zero rules, errors."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from conftest import ALL_DTYPES, TOLERANCES
from deepmetric import distances, reducers
from deepmetric.functional import dynamic_soft_margin as FD
from deepmetric.functional import tuples as T
from deepmetric.losses.dynamic_soft_margin_loss import DynamicSoftMarginLoss, find_hard_negatives
from reference import more_pair_losses_ref as R
from reference.pairs import all_triplets


def _batch(n=12, d=6, classes=3, dtype=torch.float64):
    return torch.randn(n, d, dtype=dtype), torch.randint(0, classes, (n,))


PARAMS = [{}, {"min_val": -3.0, "num_bins": 7, "momentum": 0.3}, {"min_val": -0.5, "num_bins": 4}]


@pytest.mark.parametrize("params", PARAMS)
def test_matches_reference_over_steps(params):
    """Three batches: the histogram carries over (the last params put values past both ends of
    the histogram, which clamp into the first / last bin)."""
    loss_fn, ref = DynamicSoftMarginLoss(**params), R.DynamicSoftMargin(**params)
    for _ in range(3):
        x, y = _batch()
        expected = ref(ref.values(x, y))
        assert loss_fn(x, y).item() == pytest.approx(expected, rel=1e-10, abs=1e-14)
        torch.testing.assert_close(loss_fn.hist_, torch.tensor(ref.hist, dtype=torch.float64))


def test_distance_power_two_is_allowed():
    loss_fn = DynamicSoftMarginLoss(distance=distances.LpDistance(power=2))
    ref = R.DynamicSoftMargin()
    x, y = _batch()
    expected = ref(ref.values(x, y, kind="l2sq"))
    assert loss_fn(x, y).item() == pytest.approx(expected, rel=1e-10)


def test_tuples_and_ref_emb():
    x, y = _batch()
    trips = all_triplets(y.tolist(), y.tolist(), True)[::5]
    t = tuple(torch.tensor(c) for c in zip(*trips, strict=True))
    ref = R.DynamicSoftMargin()
    expected = ref(ref.values(x, y, triplets=trips))
    assert DynamicSoftMarginLoss()(x, y, t).item() == pytest.approx(expected, rel=1e-10)
    pairs = (torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([0]), torch.tensor([3]))
    ref = R.DynamicSoftMargin()
    expected = ref(ref.values(x, y, triplets=[(0, 1, 3), (0, 2, 3)]))
    assert DynamicSoftMarginLoss()(x, y, pairs).item() == pytest.approx(expected, rel=1e-10)
    r, ry = _batch(n=9)
    ref = R.DynamicSoftMargin()
    expected = ref(ref.values(x, y, ref=r, ref_labels=ry))
    out = DynamicSoftMarginLoss()(x, y, ref_emb=r, ref_labels=ry)
    assert out.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("shape", [(10, 10), (8, 5), (5, 8), (1, 4), (3, 1)])
def test_without_labels_matched_rows(shape):
    loss_fn, ref = DynamicSoftMarginLoss(), R.DynamicSoftMargin()
    for _ in range(2):
        x = torch.randn(shape[0], 6, dtype=torch.float64)
        r = torch.randn(shape[1], 6, dtype=torch.float64)
        expected = ref(ref.values(x, ref=r))
        assert loss_fn(x, ref_emb=r).item() == pytest.approx(expected, rel=1e-10, abs=1e-14)
    x = torch.randn(7, 6, dtype=torch.float64)
    ref = R.DynamicSoftMargin()
    assert DynamicSoftMarginLoss()(x).item() == pytest.approx(ref(ref.values(x)), rel=1e-10)


@pytest.mark.parametrize("params", [(-2.0, 10), (-0.6, 6), (-3.0, 1)])
@pytest.mark.parametrize("ref_set", [False, True])
def test_sorted_run_kernels_equal_explicit_triplets(params, ref_set):
    """The searchsorted forms of the histogram, the loss and its gradient equal the per-triplet
    formulas (values past both ends of the range included)."""
    min_val, num_bins = params
    x, y = _batch(n=20, classes=4)
    r, ry = _batch(n=15, classes=4) if ref_set else (x, y)
    mat = torch.cdist(x, r).requires_grad_()
    pos, neg = T.get_matches_and_diffs(y, ry if ref_set else None)
    a, p, n = T.triplets_from_masks(pos, neg)
    bins = {"min_val": min_val, "delta": 2 * abs(min_val) / num_bins}
    explicit = FD.soft_histogram(mat[a, p] - mat[a, n], num_bins=num_bins, **bins)
    counts = FD.all_triplets_soft_histogram(mat, pos, neg, num_bins=num_bins, **bins)
    torch.testing.assert_close(counts, explicit)
    cdf = torch.cumsum(explicit / explicit.sum(), 0)
    expected = FD.cdf_weighted_mean(mat[a, p] - mat[a, n], cdf, num_bins=num_bins, **bins)
    (grad_expected,) = torch.autograd.grad(expected, mat)
    value = FD.all_triplets_cdf_weighted_mean(mat, pos, neg, cdf, **bins)
    (grad,) = torch.autograd.grad(value, mat)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad, grad_expected)


def _frozen(**kwargs):
    """A loss whose histogram no longer moves (momentum 0, already filled): the CDF is then a
    constant and finite differences see the same function as the analytic gradient."""
    loss_fn = DynamicSoftMarginLoss(momentum=0.0, **kwargs)
    loss_fn.hist_ = torch.tensor([0.0, 0.02, 0.08, 0.15, 0.25, 0.2, 0.15, 0.1, 0.05, 0.0])
    return loss_fn


def test_gradcheck():
    x, y = _batch(n=8, d=4)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: _frozen()(e, y), (x,))
    trips = all_triplets(y.tolist(), y.tolist(), True)[::3]
    t = tuple(torch.tensor(c) for c in zip(*trips, strict=True))
    assert torch.autograd.gradcheck(lambda e: _frozen()(e, y, t), (x,))
    r = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e, q: _frozen()(e, ref_emb=q), (x, r))


def test_histogram_is_a_buffer_and_state():
    loss_fn = DynamicSoftMarginLoss()
    assert "hist_" in dict(loss_fn.named_buffers()) and torch.equal(loss_fn.hist_, torch.zeros(10))
    x, y = _batch()
    first = loss_fn(x, y)
    assert loss_fn.hist_.dtype == torch.float64 and loss_fn.hist_.sum().item() == pytest.approx(1)
    assert not loss_fn.hist_.requires_grad  # the running state carries no graph
    # state_dict round trip restores the running histogram
    buffer = io.BytesIO()
    torch.save(loss_fn.state_dict(), buffer)
    buffer.seek(0)
    restored = DynamicSoftMarginLoss()
    restored.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(restored.hist_, loss_fn.hist_)
    x2, y2 = _batch()
    torch.testing.assert_close(restored(x2, y2), copy.deepcopy(loss_fn)(x2, y2))
    # a PML state dict (no histogram) loads too, keeping the current histogram
    fresh = DynamicSoftMarginLoss()
    fresh.load_state_dict({})
    assert torch.equal(fresh.hist_, torch.zeros(10))
    # two steps in a row, each with backward (PML fails on the second)
    e = x.clone().requires_grad_()
    loss_fn(e, y).backward()
    loss_fn(e, y).backward()
    assert first.item() != 0


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes(dtype):
    x, y = _batch(n=32, d=16, classes=4)
    ref = R.DynamicSoftMargin()
    expected = ref(ref.values(x, y))
    e = x.to(dtype).requires_grad_()
    loss_fn = DynamicSoftMarginLoss()
    out = loss_fn(e, y)
    assert out.dtype == dtype
    out.backward()
    assert torch.isfinite(e.grad).all()
    assert loss_fn.hist_.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    rtol, atol = TOLERANCES[dtype]
    assert out.double().item() == pytest.approx(expected, rel=rtol * 30, abs=atol * 30)


@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3], [5]])
def test_degenerate_batches_give_connected_zero(labels):
    loss_fn = DynamicSoftMarginLoss()
    x = torch.randn(len(labels), 3, requires_grad=True)
    out = loss_fn(x, torch.tensor(labels))
    assert out.item() == 0 and out.requires_grad
    out.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.equal(loss_fn.hist_, torch.zeros(10))  # nothing was counted
    single = DynamicSoftMarginLoss()(torch.randn(1, 3), ref_emb=torch.randn(1, 3))
    assert single.item() == 0


def test_errors():
    x, y = _batch()
    with pytest.raises(ValueError, match="num_bins"):
        DynamicSoftMarginLoss(num_bins=0)
    with pytest.raises(ValueError, match="num_bins"):
        DynamicSoftMarginLoss(num_bins=2.5)
    with pytest.raises(ValueError, match="min_val"):
        DynamicSoftMarginLoss(min_val=0)
    for bad in (
        distances.CosineSimilarity(),
        distances.LpDistance(normalize_embeddings=False),
        distances.LpDistance(p=1),
        distances.SNRDistance(),
    ):
        with pytest.raises(ValueError, match="LpDistance with p=2"):
            DynamicSoftMarginLoss(distance=bad)
    t = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    with pytest.raises(ValueError, match="`labels` together with `indices_tuple`"):
        DynamicSoftMarginLoss()(x, indices_tuple=t)
    with pytest.raises(ValueError, match="`labels` together with `ref_labels`"):
        DynamicSoftMarginLoss()(x, ref_emb=x.clone(), ref_labels=y)
    with pytest.raises(ValueError, match="`ref_labels` together with a separate `ref_emb`"):
        DynamicSoftMarginLoss()(x, y, ref_emb=torch.randn(5, 6, dtype=torch.float64))
    assert DynamicSoftMarginLoss(reducer=reducers.SumReducer())(x, y).ndim == 0


def test_find_hard_negatives():
    d = torch.tensor([[0.1, 0.9, 0.4], [0.3, 0.2, 0.8], [0.7, 0.6, 0.5]])
    before = d.clone()
    pos, neg = find_hard_negatives(d)
    torch.testing.assert_close(pos, torch.tensor([0.1, 0.2, 0.5]))
    # e.g. i = 1: min over row 1 (0.3, 0.8) and column 1 (0.9, 0.6) without (1, 1)
    torch.testing.assert_close(neg, torch.tensor([0.3, 0.3, 0.4]))
    assert torch.equal(d, before)  # not modified
    with pytest.raises(ValueError, match="square `dmat`"):
        find_hard_negatives(torch.randn(3, 4))
