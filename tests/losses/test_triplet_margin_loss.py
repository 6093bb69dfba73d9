"""TripletMarginLoss: loop reference for every parameter, both code paths, zero rules."""

from __future__ import annotations

import pytest
import torch

from conftest import ALL_DTYPES, TOLERANCES
from deepmetric import distances, losses, reducers
from reference import losses as R
from reference.pairs import all_triplets


def _batch(n=12, d=6, classes=3, dtype=torch.float64):
    return torch.randn(n, d, dtype=dtype), torch.randint(0, classes, (n,))


class ExplicitMean(reducers.MeanReducer):
    """A MeanReducer that declines the on-the-fly path, forcing explicit triplets."""

    def interval_form(self):
        return None


REDUCTIONS = {
    "avg_nonzero": (None, R.avg_nonzero),
    "mean": (reducers.MeanReducer(), R.mean),
    "sum": (reducers.SumReducer(), sum),
    "threshold": (
        reducers.ThresholdReducer(low=0.01, high=0.3),
        lambda t: R.mean([v for v in t if 0.01 < v < 0.3]),
    ),
    "explicit_mean": (ExplicitMean(), R.mean),
}


@pytest.mark.parametrize("reduction", sorted(REDUCTIONS))
@pytest.mark.parametrize("kind", ["l2", "cos"])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("smooth", [False, True])
def test_all_triplets_match_reference(reduction, kind, swap, smooth):
    x, y = _batch()
    reducer, reduce = REDUCTIONS[reduction]
    distance = distances.CosineSimilarity() if kind == "cos" else distances.LpDistance()
    margin = 0.2
    loss_fn = losses.TripletMarginLoss(margin, swap, smooth, distance=distance, reducer=reducer)
    expected = reduce(R.triplet_terms(x, y, margin, swap, smooth, kind))
    assert loss_fn(x, y).item() == pytest.approx(expected, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("reducer", [None, ExplicitMean()])
def test_ref_emb(reducer):
    x, y = _batch()
    ref, ref_y = _batch(n=10)
    loss_fn = losses.TripletMarginLoss(margin=0.3, reducer=reducer)
    reduce = R.avg_nonzero if reducer is None else R.mean
    expected = reduce(R.triplet_terms(x, y, 0.3, ref=ref, ref_labels=ref_y))
    assert loss_fn(x, y, ref_emb=ref, ref_labels=ref_y).item() == pytest.approx(expected, rel=1e-9)


def test_swap_with_ref_emb_is_an_error():
    x, y = _batch()
    with pytest.raises(ValueError, match="swap=True"):
        losses.TripletMarginLoss(swap=True)(x, y, ref_emb=x.clone(), ref_labels=y)


def test_indices_tuple_triplets_and_pairs():
    x, y = _batch()
    trips = all_triplets(y.tolist(), y.tolist(), True)[::7]
    t = tuple(torch.tensor(c) for c in zip(*trips, strict=True))
    loss_fn = losses.TripletMarginLoss(margin=0.3)
    expected = R.avg_nonzero(R.triplet_terms(x, y, 0.3, triplets=trips))
    assert loss_fn(x, y, t).item() == pytest.approx(expected, rel=1e-9)
    assert loss_fn(x, indices_tuple=t).item() == pytest.approx(expected, rel=1e-9)
    # pairs sharing an anchor combine into triplets
    pairs = (torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([0]), torch.tensor([3]))
    expected = R.avg_nonzero(R.triplet_terms(x, y, 0.3, triplets=[(0, 1, 3), (0, 2, 3)]))
    assert loss_fn(x, indices_tuple=pairs).item() == pytest.approx(expected, rel=1e-9)


def test_random_triplets_per_anchor_are_valid():
    x, y = _batch(n=20, classes=4)
    loss_fn = losses.TripletMarginLoss(triplets_per_anchor=3, reducer=reducers.DoNothingReducer())
    out = loss_fn(x, y)
    a, p, n = out["loss"]["indices"]
    assert len(a) > 0
    assert torch.all(y[a] == y[p]) and torch.all(y[a] != y[n]) and torch.all(a != p)
    triplets = list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    terms = R.triplet_terms(x, y, 0.05, triplets=triplets)
    torch.testing.assert_close(out["loss"]["losses"], torch.tensor(terms, dtype=torch.float64))


EXPLICIT_REDUCTIONS = {
    "avg_nonzero": (None, lambda t: t.sum() / (t > 0).sum()),
    "mean": (reducers.MeanReducer(), torch.mean),
    "sum": (reducers.SumReducer(), torch.sum),
    "threshold": (reducers.ThresholdReducer(0.05, 0.4), lambda t: t[(t > 0.05) & (t < 0.4)].mean()),
}


@pytest.mark.parametrize("reduction", sorted(EXPLICIT_REDUCTIONS))
@pytest.mark.parametrize("smooth", [False, True])
def test_gradients_match_explicit_autograd(reduction, smooth):
    """The on-the-fly path's backward equals autograd through explicit triplet terms."""
    x, y = _batch(n=16, d=5)
    fast, slow = x.clone().requires_grad_(), x.clone().requires_grad_()
    reducer, reduce = EXPLICIT_REDUCTIONS[reduction]
    losses.TripletMarginLoss(0.3, smooth_loss=smooth, reducer=reducer)(fast, y).backward()
    keep_terms = losses.TripletMarginLoss(
        0.3, smooth_loss=smooth, reducer=reducers.DoNothingReducer()
    )
    reduce(keep_terms(slow, y)["loss"]["losses"]).backward()
    torch.testing.assert_close(fast.grad, slow.grad, rtol=1e-9, atol=1e-12)


def test_gradcheck():
    x, y = _batch(n=8, d=4)
    x.requires_grad_(True)
    for smooth in (False, True):
        loss_fn = losses.TripletMarginLoss(margin=0.3, smooth_loss=smooth)
        assert torch.autograd.gradcheck(lambda e, f=loss_fn: f(e, y), (x,))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes(dtype):
    x, y = _batch(n=32, d=16, classes=4)
    expected = R.avg_nonzero(R.triplet_terms(x, y, 0.2))
    out = losses.TripletMarginLoss(margin=0.2)(x.to(dtype).requires_grad_(), y)
    assert out.dtype == dtype
    out.backward()
    rtol, atol = TOLERANCES[dtype]
    assert out.double().item() == pytest.approx(expected, rel=rtol * 10, abs=atol * 10)


@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3], [5]])
def test_degenerate_batches_give_connected_zero(labels):
    x = torch.randn(len(labels), 3, requires_grad=True)
    out = losses.TripletMarginLoss()(x, torch.tensor(labels))
    assert out.item() == 0 and out.requires_grad
    out.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_collect_stats_through_fast_path():
    x, y = _batch()
    reducer = reducers.ThresholdReducer(low=0.0, high=0.3, collect_stats=True)
    loss_fn = losses.TripletMarginLoss(margin=0.2, reducer=reducer)
    loss_fn(x, y)
    terms = R.triplet_terms(x, y, 0.2)
    r = loss_fn.reducer
    assert int(r.losses_size) == len(terms)
    assert int(r.num_past_filter) == sum(0 < t < 0.3 for t in terms)
    assert int(r.num_above_low) == sum(t > 0 for t in terms)
    assert int(r.num_below_high) == sum(t < 0.3 for t in terms)


def test_bad_triplets_per_anchor():
    with pytest.raises(ValueError, match="triplets_per_anchor"):
        losses.TripletMarginLoss(triplets_per_anchor=0)
    with pytest.raises(ValueError, match="triplets_per_anchor"):
        losses.TripletMarginLoss(triplets_per_anchor="some")
