"""MarginLoss: loop reference for each reducer path (closed form, interval kernel, explicit),
learnable and per-class beta, miner tuples, ref_emb, dtypes, zero rules and errors."""

from __future__ import annotations

import pytest
import torch

from conftest import ALL_DTYPES, TOLERANCES
from deepmetric import distances, reducers
from deepmetric._types import PairMasks
from deepmetric.functional import margin_losses as FM
from deepmetric.functional import tuples as T
from deepmetric.losses.margin_loss import MarginLoss
from reference import more_pair_losses_ref as R
from reference.pairs import all_pairs, all_triplets


def _batch(n=12, d=6, classes=3, dtype=torch.float64):
    return torch.randn(n, d, dtype=dtype), torch.randint(0, classes, (n,))


class ExplicitMean(reducers.MeanReducer):
    """A MeanReducer that declines the on-the-fly path, forcing explicit triplets."""

    def interval_form(self):
        return None


PARAMS = {
    "default": ({}, 1.2),
    "custom": ({"margin": 0.35, "beta": 0.8}, 0.8),
    "learn": ({"learn_beta": True, "nu": 0.2, "beta": 1.0}, 1.0),
    "per_class": ({"learn_beta": True, "nu": 0.2, "num_classes": 3}, [1.0, 1.1, 0.9]),
    "per_class_fixed": ({"num_classes": 3, "beta": 1.1}, [1.1, 1.1, 1.1]),
}


def _make(name, **extra):
    kwargs, beta = PARAMS[name]
    loss_fn = MarginLoss(**kwargs, **extra)
    if isinstance(beta, list) and loss_fn.learn_beta:
        with torch.no_grad():
            loss_fn.beta.copy_(torch.tensor(beta))
    ref_kwargs = {k: v for k, v in kwargs.items() if k in ("margin", "nu", "learn_beta")}
    return loss_fn, dict(ref_kwargs, beta=_f32(beta))


def _f32(beta):
    """beta as the module stores it (float32, like PML), in Python floats."""
    return torch.tensor(beta, dtype=torch.float32).tolist()


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize("kind", ["l2", "cos"])
def test_all_triplets_divisor_path_matches_reference(name, kind):
    x, y = _batch()
    distance = distances.CosineSimilarity() if kind == "cos" else None
    loss_fn, ref_kwargs = _make(name, distance=distance)
    expected = R.margin_loss(x, y, kind=kind, **ref_kwargs)
    assert loss_fn(x, y).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name", ["default", "learn", "per_class", "per_class_fixed"])
def test_reducer_paths_agree(name):
    """Closed form (Divisor), interval kernel (Mean/Sum/AvgNonZero/Threshold) and explicit
    triplets give the same values and gradients (beta included)."""
    x, y = _batch(n=14, d=5)
    results = {}
    for label, reducer in {
        "divisor": None,
        "mean": reducers.MeanReducer(),
        "explicit": ExplicitMean(),
        "sum": reducers.SumReducer(),
        "avg_nonzero": reducers.AvgNonZeroReducer(),
        "threshold": reducers.ThresholdReducer(low=0.05, high=0.4),
    }.items():
        loss_fn, _ = _make(name, reducer=reducer)
        e = x.clone().requires_grad_()
        out = loss_fn(e, y)
        out.backward()
        beta_grad = loss_fn.beta.grad if loss_fn.learn_beta else None
        results[label] = (out.detach(), e.grad, beta_grad)
    # DoNothingReducer gives the explicit terms: reduce them by hand for each reducer
    loss_fn, _ = _make(name, reducer=reducers.DoNothingReducer())
    d = loss_fn(x, y)
    terms, divisor = d["margin_loss"]["losses"].detach(), d["margin_loss"]["divisor"]
    reg = d["beta_reg_loss"]["losses"]
    reg = None if isinstance(reg, int) else reg.detach()
    by_hand = {
        "divisor": lambda t: t.sum() / divisor,
        "mean": torch.mean,
        "explicit": torch.mean,
        "sum": torch.sum,
        "avg_nonzero": lambda t: t[t > 0].mean() if (t > 0).any() else t.sum() * 0,
        "threshold": lambda t: t[(t > 0.05) & (t < 0.4)].mean(),
    }
    for label, reduce in by_hand.items():
        expected = reduce(terms)
        if reg is not None:  # one beta: already reduced; per class: one term per triplet
            expected = expected + (reg.reshape(()) if reg.numel() == 1 else reduce(reg))
        torch.testing.assert_close(results[label][0], expected, msg=label)
    # the interval kernel and explicit triplets: same gradients (embeddings and beta)
    for label in ("mean", "divisor"):
        ours, explicit = results[label], results["explicit" if label == "mean" else "divisor"]
        torch.testing.assert_close(ours[1], explicit[1], rtol=1e-9, atol=1e-12)
    loss_fn, _ = _make(name, reducer=ExplicitDivisor())
    e = x.clone().requires_grad_()
    loss_fn(e, y).backward()
    torch.testing.assert_close(results["divisor"][1], e.grad, rtol=1e-9, atol=1e-12)
    if loss_fn.learn_beta:
        torch.testing.assert_close(results["divisor"][2], loss_fn.beta.grad)
        torch.testing.assert_close(results["mean"][2], results["explicit"][2])


class ExplicitDivisor(reducers.DivisorReducer):
    """A DivisorReducer subclass: not the exact type, so the loss builds explicit triplets."""


def test_divisor_closed_form_equals_explicit_triplets():
    x, y = _batch(n=16, classes=4)
    ref, ref_y = _batch(n=11, classes=4)
    pos, neg = T.get_matches_and_diffs(y, ref_y)
    mat = torch.cdist(x, ref)
    beta = torch.rand(16, 1, dtype=torch.float64) + 0.5
    per_anchor, divisor, counts = FM.margin_all_triplets_sums(
        mat, pos, neg, beta, margin=0.2, is_inverted=False
    )
    a, p, n = T.triplets_from_masks(pos, neg)
    pos_t, neg_t = FM.margin_triplet_terms(
        mat[a, p], mat[a, n], beta[a, 0], margin=0.2, is_inverted=False
    )
    torch.testing.assert_close(per_anchor.sum(), (pos_t + neg_t).sum())
    assert int(divisor) == int((pos_t > 0).sum() + (neg_t > 0).sum())
    assert int(counts.sum()) == len(a)


@pytest.mark.parametrize("name", ["default", "learn", "per_class"])
def test_gradcheck(name):
    x, y = _batch(n=8, d=4)
    x.requires_grad_(True)
    for reducer in (None, reducers.MeanReducer(), ExplicitMean()):
        loss_fn, _ = _make(name, reducer=reducer, margin=0.6)
        assert torch.autograd.gradcheck(lambda e, f=loss_fn: f(e, y), (x,))
    if name != "default":  # w.r.t. a float64 beta as well
        for reducer in (None, reducers.MeanReducer(), ExplicitMean()):
            loss_fn, _ = _make(name, margin=0.6, reducer=reducer)
            beta = loss_fn.beta.detach().double().requires_grad_()

            def with_beta(e, b, f=loss_fn):
                return torch.func.functional_call(f, {"beta": b}, (e, y))

            assert torch.autograd.gradcheck(with_beta, (x, beta))


def test_learnable_beta_is_a_parameter_and_fixed_beta_a_buffer():
    learn = MarginLoss(learn_beta=True, num_classes=5)
    assert isinstance(learn.beta, torch.nn.Parameter) and learn.beta.shape == (5,)
    assert [n for n, _ in learn.named_parameters()] == ["beta"]
    assert "beta" in learn.state_dict()
    fixed = MarginLoss()
    assert not isinstance(fixed.beta, torch.nn.Parameter) and fixed.beta.shape == (1,)
    assert "beta" not in fixed.state_dict()  # as in PML
    assert fixed.double().beta.dtype == torch.float64  # but it moves with the module
    assert MarginLoss(num_classes=0).beta.shape == (1,)


@pytest.mark.parametrize("name", ["default", "per_class"])
def test_miner_tuples_and_labels_free(name):
    x, y = _batch()
    trips = all_triplets(y.tolist(), y.tolist(), True)[::4]
    t = tuple(torch.tensor(c) for c in zip(*trips, strict=True))
    loss_fn, ref_kwargs = _make(name)
    expected = R.margin_loss(x, y, triplets=trips, **ref_kwargs)
    assert loss_fn(x, y, t).item() == pytest.approx(expected, rel=1e-10)
    if name == "default":
        assert loss_fn(x, indices_tuple=t).item() == pytest.approx(expected, rel=1e-10)
    # a pair tuple becomes every (positive pair, negative pair) combination per anchor
    pos, neg = all_pairs(y.tolist(), y.tolist(), True)
    pos, neg = pos[::3], neg[::3]
    pairs = tuple(torch.tensor(c) for c in (*zip(*pos, strict=True), *zip(*neg, strict=True)))
    combos = [(a, p, n) for a, p in pos for a2, n in neg if a2 == a]
    expected = R.margin_loss(x, y, triplets=combos, **ref_kwargs)
    assert loss_fn(x, y, pairs).item() == pytest.approx(expected, rel=1e-10)


def test_random_triplets_per_anchor():
    x, y = _batch(n=20, classes=4)
    loss_fn = MarginLoss(triplets_per_anchor=3, reducer=reducers.DoNothingReducer())
    out = loss_fn(x, y)["margin_loss"]
    a, p, n = out["indices"]
    assert len(a) > 0 and torch.all(y[a] == y[p]) and torch.all(y[a] != y[n])
    trips = list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    value = (out["losses"].sum() / out["divisor"]).item()
    assert value == pytest.approx(R.margin_loss(x, y, beta=_f32(1.2), triplets=trips), rel=1e-10)


@pytest.mark.parametrize("reducer", [None, reducers.MeanReducer(), ExplicitMean()])
def test_ref_emb_and_pair_masks(reducer):
    x, y = _batch()
    ref, ref_y = _batch(n=9)
    loss_fn = MarginLoss(reducer=reducer)
    reduce_mean = reducer is not None
    if reduce_mean:  # mean over all triplets
        trips = all_triplets(y.tolist(), ref_y.tolist(), False)
        d = R._table(x, ref, "l2")
        b = _f32(1.2)
        terms = [max(d[a][p] - b + 0.2, 0) + max(b - d[a][n] + 0.2, 0) for a, p, n in trips]
        expected = R.mean(terms)
    else:
        expected = R.margin_loss(x, y, beta=_f32(1.2), ref=ref, ref_labels=ref_y)
    out = loss_fn(x, y, ref_emb=ref, ref_labels=ref_y)
    assert out.item() == pytest.approx(expected, rel=1e-10)
    masks = PairMasks(*T.get_matches_and_diffs(y, ref_y))
    torch.testing.assert_close(loss_fn(x, y, masks, ref_emb=ref, ref_labels=ref_y), out)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("reducer", [None, reducers.MeanReducer()])
def test_dtypes(dtype, reducer):
    x, y = _batch(n=32, d=16, classes=4)
    loss_fn = MarginLoss(learn_beta=True, nu=0.1, reducer=reducer)
    e = x.to(dtype).requires_grad_()
    out = loss_fn(e, y)
    assert out.dtype == dtype
    out.backward()
    assert torch.isfinite(e.grad).all() and torch.isfinite(loss_fn.beta.grad).all()
    if reducer is None:
        expected = R.margin_loss(x, y, nu=0.1, learn_beta=True, beta=_f32(1.2))
        rtol, atol = TOLERANCES[dtype]
        assert out.double().item() == pytest.approx(expected, rel=rtol * 30, abs=atol * 30)


@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2], [2]])
@pytest.mark.parametrize("name", ["default", "learn", "per_class"])
def test_degenerate_batches_give_connected_zero(labels, name):
    loss_fn, _ = _make(name)
    x = torch.randn(len(labels), 3, requires_grad=True)
    out = loss_fn(x, torch.tensor(labels))
    assert out.item() == 0 and out.requires_grad
    out.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    if loss_fn.learn_beta:
        assert loss_fn.beta.grad is None or torch.equal(loss_fn.beta.grad, torch.zeros(1))


def test_zero_divisor_gives_zero():
    """Every term inactive (a huge margin band the other way): the divisor is 0 -> zero."""
    x, y = _batch()
    loss_fn = MarginLoss(margin=-5.0)
    e = x.clone().requires_grad_()
    out = loss_fn(e, y)
    assert out.item() == 0
    out.backward()
    assert torch.equal(e.grad, torch.zeros_like(e))


def test_errors():
    x, y = _batch()
    with pytest.raises(ValueError, match="triplets_per_anchor"):
        MarginLoss(triplets_per_anchor=0)
    with pytest.raises(ValueError, match="triplets_per_anchor"):
        MarginLoss(triplets_per_anchor="most")
    with pytest.raises(ValueError, match="num_classes"):
        MarginLoss(num_classes=-1)
    with pytest.raises(ValueError, match="`labels` or `indices_tuple`"):
        MarginLoss()(x)
    t = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    with pytest.raises(ValueError, match="per-class beta"):
        MarginLoss(num_classes=3)(x, indices_tuple=t)
    with pytest.raises(ValueError, match=r"labels in \[0, num_classes=3\)"):
        MarginLoss(num_classes=3)(x, y + 1)
    with pytest.raises(ValueError, match="`ref_labels` together with a separate `ref_emb`"):
        MarginLoss()(x, y, ref_emb=torch.randn(5, 6, dtype=torch.float64))
    with pytest.raises(NotImplementedError):  # PML's PerAnchorReducer has no triplet reduction
        MarginLoss(reducer=reducers.PerAnchorReducer())(x, y)
