"""ContrastiveLoss against the loop reference, gradients, dtypes and zero rules."""

from __future__ import annotations

import pytest
import torch

from conftest import ALL_DTYPES, TOLERANCES
from deepmetric import distances, losses, reducers
from reference import losses as R


def _batch(n=12, d=6, classes=3, dtype=torch.float64):
    x = torch.randn(n, d, dtype=dtype)
    y = torch.randint(0, classes, (n,))
    return x, y


@pytest.mark.parametrize("kind", ["l2", "cos"])
@pytest.mark.parametrize(("pos_margin", "neg_margin"), [(0.0, 1.0), (0.2, 0.9), (0.6, 0.3)])
def test_matches_reference(kind, pos_margin, neg_margin):
    x, y = _batch()
    distance = distances.CosineSimilarity() if kind == "cos" else distances.LpDistance()
    loss_fn = losses.ContrastiveLoss(pos_margin, neg_margin, distance=distance)
    expected = R.contrastive(x, y, pos_margin, neg_margin, kind)
    assert loss_fn(x, y).item() == pytest.approx(expected, rel=1e-9)


def test_ref_emb_and_pairs_tuple():
    x, y = _batch()
    ref, ref_y = _batch(n=9)
    loss_fn = losses.ContrastiveLoss(neg_margin=1.2)
    expected = R.contrastive(x, y, 0.0, 1.2, ref=ref, ref_labels=ref_y)
    assert loss_fn(x, y, ref_emb=ref, ref_labels=ref_y).item() == pytest.approx(expected, rel=1e-9)
    pos = [(0, 1), (2, 3), (4, 4)]
    neg = [(0, 5), (1, 6)]
    t = tuple(
        torch.tensor(v)
        for v in (
            [i for i, _ in pos],
            [j for _, j in pos],
            [i for i, _ in neg],
            [j for _, j in neg],
        )
    )
    expected = R.contrastive(x, y, 0.0, 1.2, pairs=(pos, neg))
    # labels are unused when a tuple is given: same value without them
    assert loss_fn(x, y, t).item() == pytest.approx(expected, rel=1e-9)
    assert loss_fn(x, indices_tuple=t).item() == pytest.approx(expected, rel=1e-9)


def test_triplets_tuple_becomes_pairs():
    x, y = _batch()
    trip = (torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    loss_fn = losses.ContrastiveLoss()
    expected = R.contrastive(x, y, pairs=([(0, 2), (1, 3)], [(0, 4), (1, 5)]))
    assert loss_fn(x, y, trip).item() == pytest.approx(expected, rel=1e-9)


def test_mean_reducer_and_sub_loss_reducers():
    x, y = _batch()
    loss_fn = losses.ContrastiveLoss(reducer=reducers.MeanReducer())
    assert isinstance(loss_fn.reducer, reducers.MultipleReducers)
    assert set(loss_fn.reducer.reducers) == {"pos_loss", "neg_loss"}
    expected = R.contrastive(x, y, reduce=R.mean)
    assert loss_fn(x, y).item() == pytest.approx(expected, rel=1e-9)


def test_gradcheck():
    x, y = _batch(n=8, d=4)
    x.requires_grad_(True)
    loss_fn = losses.ContrastiveLoss(pos_margin=0.1, neg_margin=1.5)
    assert torch.autograd.gradcheck(lambda e: loss_fn(e, y), (x,))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes(dtype):
    x, y = _batch(n=32, d=16, classes=4)
    expected = R.contrastive(x, y)
    out = losses.ContrastiveLoss()(x.to(dtype).requires_grad_(), y)
    assert out.dtype == dtype
    rtol, atol = TOLERANCES[dtype]
    assert out.double().item() == pytest.approx(expected, rel=rtol * 10, abs=atol * 10)


def test_zero_rules_are_graph_connected():
    loss_fn = losses.ContrastiveLoss()
    x = torch.randn(2, 5, requires_grad=True)
    out = loss_fn(x, torch.tensor([0, 1]))  # only one pair of each kind -> zero
    assert out.item() == 0 and out.requires_grad
    out.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    single = torch.randn(1, 5, requires_grad=True)
    assert loss_fn(single, torch.tensor([3])).item() == 0


def test_one_class_has_only_positive_term():
    x, _ = _batch()
    y = torch.zeros(len(x), dtype=torch.long)
    expected = R.contrastive(x, y)
    assert losses.ContrastiveLoss()(x, y).item() == pytest.approx(expected, rel=1e-9)
