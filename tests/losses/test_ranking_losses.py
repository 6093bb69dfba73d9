"""FastAPLoss, HistogramLoss, PNPLoss, RankedListLoss: loop references, kernels, zero rules,
dtypes, gradcheck and errors."""

from __future__ import annotations

import warnings

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric import distances, reducers
from deepmetric._registry import LOSSES
from deepmetric.functional import histogram_loss as HF
from deepmetric.functional import ranking_losses as RF
from deepmetric.functional import tuples as T
from deepmetric.losses.fast_ap_loss import FastAPLoss
from deepmetric.losses.histogram_loss import HistogramLoss
from deepmetric.losses.pnp_loss import PNPLoss
from deepmetric.losses.ranked_list_loss import RankedListLoss
from reference import ranking_losses_ref as R


def _batch(n=16, d=6, classes=4, dtype=torch.float64):
    return torch.randn(n, d, dtype=dtype), torch.randint(0, classes, (n,))


def _mean(values):
    return sum(values) / len(values)


def _approx(value, rel=1e-9, abs=1e-12):
    return pytest.approx(value, rel=rel, abs=abs)


# ============================================================================ registry, records
def test_registered_with_records():
    for name in ("FastAPLoss", "HistogramLoss", "PNPLoss", "RankedListLoss"):
        assert name in LOSSES
    fast_ap = FastAPLoss(num_bins=7)
    assert fast_ap._record_these == ["num_bins"] and fast_ap.num_edges == 8
    assert HistogramLoss()._record_these == ["delta"]
    assert PNPLoss()._record_these == []
    rll = RankedListLoss(margin=0.4, Tn=1)
    assert rll._record_these == ["imbalance", "alpha", "margin", "Tp", "Tn"]
    assert "variant='Ds'" in repr(PNPLoss(variant="Ds"))
    assert "margin=0.4" in repr(rll)


def test_default_distances_and_reducers():
    fast_ap = FastAPLoss()
    assert isinstance(fast_ap.distance, distances.LpDistance) and fast_ap.distance.power == 2
    assert isinstance(fast_ap.reducer, reducers.MeanReducer)
    assert isinstance(HistogramLoss().distance, distances.CosineSimilarity)
    assert isinstance(PNPLoss().distance, distances.CosineSimilarity)
    rll = RankedListLoss(0.4, 1)
    assert isinstance(rll.distance, distances.LpDistance) and rll.distance.power == 1
    assert isinstance(rll.reducer, reducers.MeanReducer)


# ============================================================================ FastAP
@pytest.mark.parametrize(("num_bins", "power"), [(10, 2), (5, 2), (8, 1)])
def test_fast_ap_matches_reference(num_bins, power):
    x, y = _batch()
    loss_fn = FastAPLoss(num_bins=num_bins, distance=distances.LpDistance(power=power))
    expected = _mean(R.fast_ap_terms(x, y, num_bins, power))
    assert loss_fn(x, y).item() == _approx(expected)


def _occurrence_weights(tuple_, n):
    counts = [0] * n
    for t in tuple_:
        for i in t.tolist():
            counts[i] += 1
    top = max(counts)
    return [c / top for c in counts]


@pytest.mark.parametrize("form", ["triplets", "pairs"])
def test_fast_ap_miner_weights(form):
    x, y = _batch()
    if form == "triplets":
        tuple_ = (
            torch.tensor([0, 1, 1, 5]),
            torch.tensor([2, 3, 4, 6]),
            torch.tensor([7, 7, 8, 9]),
        )
    else:
        tuple_ = (
            torch.tensor([0, 1]),
            torch.tensor([2, 3]),
            torch.tensor([1, 5]),
            torch.tensor([9, 9]),
        )
    weights = _occurrence_weights(tuple_, len(y))
    terms = R.fast_ap_terms(x, y, weights=weights)
    out = FastAPLoss(reducer=reducers.SumReducer())(x, y, tuple_)
    assert out.item() == _approx(sum(terms))


def test_fast_ap_loss_dict():
    y = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    x = torch.randn(len(y), 4, dtype=torch.float64)
    out = FastAPLoss(reducer=reducers.DoNothingReducer())(x, y)["loss"]
    assert out["reduction_type"] == "element"
    assert out["indices"].tolist() == [0, 1, 3, 4, 5]
    torch.testing.assert_close(out["losses"], torch.tensor(R.fast_ap_terms(x, y), dtype=x.dtype))


def test_fast_ap_kernel_out_of_range_distances():
    """Distances beyond the last node keep a partial (then no) kernel weight, like the pulses."""
    mat = torch.tensor([[0.0, 4.2, 1.3, 5.5], [4.2, 0.0, -0.1, 0.5]], dtype=torch.float64)
    pos = torch.tensor([[False, True, False, False], [True, False, False, True]])
    neg = torch.tensor([[False, False, True, True], [False, False, True, False]])
    ap = RF.fast_ap(mat, pos, neg, num_bins=4, max_value=4.0)
    width, nodes = 1.0, [0.0, 1.0, 2.0, 3.0, 4.0]

    def pulse(d):
        return [max(0.0, 1 - abs(d - c) / width) for c in nodes]

    for i in range(2):
        pos_pulses = [pulse(mat[i, j].item()) for j in range(4) if pos[i, j]]
        neg_pulses = [pulse(mat[i, j].item()) for j in range(4) if neg[i, j]]
        h_pos = [sum(p[z] for p in pos_pulses) for z in range(5)]
        h_neg = [sum(p[z] for p in neg_pulses) for z in range(5)]
        total = cum_p = cum_a = 0.0
        for hp, hn in zip(h_pos, h_neg, strict=True):
            cum_p, cum_a = cum_p + hp, cum_a + hp + hn
            total += hp * cum_p / cum_a if hp * cum_p > 0 and cum_a > 0 else 0.0
        assert ap[i].item() == _approx(total / int(pos[i].sum()))


def test_fast_ap_errors():
    x, y = _batch()
    with pytest.raises(ValueError, match="labels"):
        FastAPLoss()(x)
    with pytest.raises(ValueError, match="labels"):
        FastAPLoss()(x, indices_tuple=(torch.tensor([0]), torch.tensor([1]), torch.tensor([2])))
    with pytest.raises(ValueError, match="ref_emb"):
        FastAPLoss()(x, y, ref_emb=x.clone(), ref_labels=y)
    with pytest.raises(ValueError, match="LpDistance with normalize_embeddings=True and p=2"):
        FastAPLoss(distance=distances.CosineSimilarity())
    with pytest.raises(ValueError, match="normalize_embeddings=False"):
        FastAPLoss(distance=distances.LpDistance(normalize_embeddings=False))
    with pytest.raises(ValueError, match="p=1"):
        FastAPLoss(distance=distances.LpDistance(p=1))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_bins"):
            FastAPLoss(num_bins=bad)


# ============================================================================ Histogram
@pytest.mark.parametrize(("n_bins", "delta"), [(None, None), (10, None), (None, 0.3), (25, 0.08)])
def test_histogram_matches_reference(n_bins, delta):
    x, y = _batch(n=14)
    loss_fn = HistogramLoss(n_bins=n_bins, delta=delta)
    step = delta if delta is not None else 2 / (n_bins or 100)
    assert loss_fn.delta == pytest.approx(step)
    assert loss_fn(x, y).item() == _approx(R.histogram(x, y, step))


def test_histogram_with_tuples_and_without_labels():
    x, y = _batch(n=14)
    triplets = (
        torch.tensor([0, 0, 3, 3, 5]),
        torch.tensor([1, 2, 4, 0, 0]),
        torch.tensor([6, 7, 6, 6, 9]),
    )
    expected = R.histogram(
        x, delta=0.1, triplets=list(zip(*[t.tolist() for t in triplets], strict=True))
    )
    loss_fn = HistogramLoss(n_bins=20)
    assert loss_fn(x, y, triplets).item() == _approx(expected)
    assert loss_fn(x, indices_tuple=triplets).item() == _approx(expected)
    pairs = (
        torch.tensor([0, 0, 3, 8]),
        torch.tensor([1, 2, 4, 9]),
        torch.tensor([0, 3, 3, 5]),
        torch.tensor([6, 6, 7, 11]),
    )
    expected = R.histogram(
        x, delta=0.1, triplets=R.pair_tuple_to_triplets(*[t.tolist() for t in pairs])
    )
    assert loss_fn(x, indices_tuple=pairs).item() == _approx(expected)


def test_histogram_pair_masks_equal_triplet_dedup():
    """The O(N^2) masks give the same unordered pairs as deduplicating all triplets."""
    for labels in ([0, 0, 1, 1, 1, 2, 3, 3, 0], [0, 0, 0], [0, 1, 2], [4, 4, 7, 4, 7, 9, 9, 9]):
        y = torch.tensor(labels)
        n = len(labels)
        a, p, m = T.get_all_triplets_indices(y)
        ap, an, any_triplet = HF.triplet_pair_masks(n, y)
        assert any_triplet == (len(a) > 0)
        expected_p = {(min(i, j), max(i, j)) for i, j in zip(a.tolist(), p.tolist(), strict=True)}
        expected_n = {(min(i, j), max(i, j)) for i, j in zip(a.tolist(), m.tolist(), strict=True)}
        got_p = {tuple(v) for v in HF.unordered_pairs(ap).nonzero().tolist()}
        got_n = {tuple(v) for v in HF.unordered_pairs(an).nonzero().tolist()}
        assert got_p == expected_p and got_n == expected_n


def test_histogram_pair_tuple_without_shared_anchor_is_zero():
    x = torch.randn(6, 4, requires_grad=True)
    pairs = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]), torch.tensor([3]))
    out = HistogramLoss()(x, indices_tuple=pairs)
    assert out.item() == 0
    out.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_histogram_tolerates_similarity_one():
    """Duplicated embeddings give cos = 1 (or a hair above); PML fails with an index error."""
    x, y = _batch(n=8, classes=2)
    x[1] = x[0] * 3
    y[1] = y[0]
    out = HistogramLoss()(x.requires_grad_(), y)
    assert torch.isfinite(out)
    out.backward()
    assert torch.isfinite(x.grad).all()


def test_soft_histogram_edges():
    density = HF.soft_histogram(torch.tensor([-1.0, 1.0, 0.05], dtype=torch.float64), delta=0.5)
    expected = torch.tensor([1, 0, 0.9, 0.1, 1], dtype=torch.float64) / 3
    torch.testing.assert_close(density, expected)


def test_histogram_errors():
    x, y = _batch()
    with pytest.raises(ValueError, match="`labels` or `indices_tuple`"):
        HistogramLoss()(x)
    with pytest.raises(ValueError, match="ref_emb"):
        HistogramLoss()(x, y, ref_emb=x.clone(), ref_labels=y)
    with pytest.raises(ValueError, match=r"delta == 2 / n_bins"):
        HistogramLoss(n_bins=10, delta=0.3)
    with pytest.raises(ValueError, match="n_bins"):
        HistogramLoss(n_bins=0)
    with pytest.raises(ValueError, match="delta"):
        HistogramLoss(delta=3.0)
    with pytest.raises(ValueError, match="similarity"):
        HistogramLoss(distance=distances.LpDistance())
    with pytest.raises(ValueError, match="labels"):
        HF.triplet_pair_masks(4)


# ============================================================================ PNP
@pytest.mark.parametrize("variant", ["O", "Ds", "Dq", "Iu", "Ib"])
def test_pnp_matches_reference(variant):
    x, y = _batch(n=14, classes=3)
    kwargs = {"b": 1.5, "alpha": 0.7, "anneal": 0.05}
    expected = R.pnp(x, y, variant=variant, **kwargs)
    assert PNPLoss(variant=variant, **kwargs)(x, y).item() == _approx(expected)


def test_pnp_default_and_loss_dict():
    x, y = _batch(n=12, classes=3)
    y[0] = 7  # a query without another positive is left out
    out = PNPLoss(reducer=reducers.DoNothingReducer())(x, y)["loss"]
    assert out["reduction_type"] == "already_reduced"
    assert 0 not in out["indices"].tolist() and len(out["indices"]) == 11
    assert out["losses"].item() == _approx(R.pnp(x, y))


@pytest.mark.parametrize("variant", ["O", "Dq", "Ib"])
def test_pnp_blocks_do_not_change_the_result(variant):
    sim = torch.randn(9, 11, dtype=torch.float64).tanh().requires_grad_()
    pos = torch.rand(9, 11) < 0.3
    neg = ~pos & (torch.rand(9, 11) < 0.8)
    g = torch.randn(9, dtype=torch.float64)
    outs = []
    for block in (1, 11, 40, 1 << 20):
        sim.grad = None
        out = RF.pnp_query_losses(
            sim, pos, neg, variant=variant, anneal=0.2, max_block_elements=block
        )
        (out * g).sum().backward()
        outs.append((out.detach(), sim.grad.clone()))
    for out, grad in outs[1:]:
        torch.testing.assert_close(out, outs[0][0])
        torch.testing.assert_close(grad, outs[0][1])


def test_pnp_errors():
    x, y = _batch()
    with pytest.raises(ValueError, match=r"one of \['Ds', 'Dq', 'Iu', 'Ib', 'O'\]"):
        PNPLoss(variant="X")
    with pytest.raises(ValueError, match="one of"):
        RF.pnp_query_losses(x @ x.T, y[:, None] == y, y[:, None] != y, variant="X")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="anneal"):
        PNPLoss(anneal=0)
    with pytest.raises(ValueError, match="`b`"):
        PNPLoss(variant="Ib", b=0)
    with pytest.raises(ValueError, match="CosineSimilarity"):
        PNPLoss(distance=distances.LpDistance())
    with pytest.raises(ValueError, match="labels"):
        PNPLoss()(x)
    with pytest.raises(ValueError, match="indices_tuple"):
        PNPLoss()(x, y, (torch.tensor([0]), torch.tensor([1]), torch.tensor([2])))
    with pytest.raises(ValueError, match="ref_emb"):
        PNPLoss()(x, y, ref_emb=x.clone(), ref_labels=y)


# ============================================================================ Ranked List
@pytest.mark.parametrize(
    "kwargs",
    [
        {"margin": 0.4, "Tn": 1.0},
        {"margin": 0.2, "Tn": 3.0, "Tp": 1.5, "imbalance": 0.2},
        {"margin": 0.5, "Tn": 0.0, "alpha": 1.1, "imbalance": 1.0},
    ],
)
def test_ranked_list_matches_reference(kwargs):
    x, y = _batch()
    loss_fn = RankedListLoss(reducer=reducers.DoNothingReducer(), **kwargs)
    out = loss_fn(x, y)["loss"]
    assert out["reduction_type"] == "element"
    assert out["indices"].tolist() == list(range(len(y)))
    expected = torch.tensor(R.ranked_list_terms(x, y, **kwargs), dtype=x.dtype)
    torch.testing.assert_close(out["losses"], expected, rtol=1e-9, atol=1e-12)
    assert RankedListLoss(**kwargs).alpha == kwargs.get("alpha", 1 + kwargs["margin"] / 2)


def test_ranked_list_errors_and_warning():
    x, y = _batch()
    with pytest.raises(TypeError, match="Tn"):
        RankedListLoss(margin=0.4)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="margin"):
        RankedListLoss()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="imbalance"):
        RankedListLoss(0.4, 1, imbalance=1.5)
    with pytest.warns(UserWarning, match="above 5"):
        RankedListLoss(0.4, Tn=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RankedListLoss(0.4, Tn=5, Tp=5)
    loss_fn = RankedListLoss(0.4, 1)
    with pytest.raises(ValueError, match="labels"):
        loss_fn(x)
    with pytest.raises(ValueError, match="indices_tuple"):
        loss_fn(x, y, (torch.tensor([0]), torch.tensor([1]), torch.tensor([2])))
    with pytest.raises(ValueError, match="ref_emb"):
        loss_fn(x, y, ref_emb=x.clone(), ref_labels=y)


# ============================================================================ shared properties
def _losses():
    return {
        "fast_ap": FastAPLoss,
        "histogram": HistogramLoss,
        "pnp": lambda: PNPLoss(anneal=0.1),
        "pnp_ds": lambda: PNPLoss(variant="Ds", anneal=0.1),
        "ranked_list": lambda: RankedListLoss(margin=0.4, Tn=1.0, Tp=0.5),
    }


@pytest.mark.parametrize("name", sorted(_losses()))
@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3], [5]])
def test_degenerate_batches(name, labels):
    """All singletons or one sample: connected zero with a zero gradient (PML's rules). One
    class: FastAP/PNP are 0 (nothing ranks above a positive); Histogram has no triplet.
    Ranked List has no zero rule: every anchor gives a term (0 only for a single sample)."""
    x = torch.randn(len(labels), 5, dtype=torch.float64, requires_grad=True)
    out = _losses()[name]()(x, torch.tensor(labels))
    assert out.requires_grad
    if name == "ranked_list" and len(labels) > 1:  # RLL has no zero rule
        expected = _mean(R.ranked_list_terms(x.detach(), torch.tensor(labels), 0.4, 1.0, Tp=0.5))
        assert out.item() == _approx(expected)
        return
    assert out.item() == pytest.approx(0, abs=1e-12)
    out.backward()
    torch.testing.assert_close(x.grad, torch.zeros_like(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(_losses()))
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes(name, dtype):
    x, y = _batch(n=24, d=8, classes=4)
    expected = _losses()[name]()(x.to(dtype).double(), y).item()
    e = x.to(dtype).requires_grad_()
    out = _losses()[name]()(e, y)
    assert out.dtype == dtype
    out.backward()
    assert e.grad is not None and e.grad.dtype == dtype and torch.isfinite(e.grad.float()).all()
    tol = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 3e-2, torch.bfloat16: 1e-1}[
        dtype
    ]
    assert out.double().item() == pytest.approx(expected, rel=tol, abs=tol)


@pytest.mark.parametrize("name", sorted(_losses()))
def test_gradcheck_module(name):
    x, y = _batch(n=10, d=4, classes=3)
    loss_fn = _losses()[name]()
    assert torch.autograd.gradcheck(lambda e: loss_fn(e, y), (x.requires_grad_(),))


def _masks(n, m, classes=3):
    y, ry = torch.randint(0, classes, (n,)), torch.randint(0, classes, (m,))
    pos = y[:, None] == ry[None, :]
    return pos, ~pos


def test_gradcheck_kernels():
    pos, neg = _masks(6, 7)
    dist = (torch.rand(6, 7, dtype=torch.float64) * 3.6 + 0.2).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda d: RF.fast_ap(d, pos, neg, num_bins=7, max_value=4.0), (dist,)
    )
    sim = (torch.rand(6, 7, dtype=torch.float64) * 2 - 1).requires_grad_()
    for variant in RF.PNP_VARIANTS:
        assert torch.autograd.gradcheck(
            lambda s, v=variant: RF.pnp_query_losses(
                s, pos, neg, variant=v, anneal=0.3, max_block_elements=10
            ),
            (sim,),
        )
    dist2 = (torch.rand(6, 7, dtype=torch.float64) * 1.8 + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda d: RF.ranked_list_terms(
            d, pos, neg, margin=0.4, alpha=1.2, imbalance=0.3, Tp=0.7, Tn=2.0
        ),
        (dist2,),
    )
    pv = (torch.rand(9, dtype=torch.float64) * 1.9 - 0.95).requires_grad_()
    nv = (torch.rand(13, dtype=torch.float64) * 1.9 - 0.95).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: HF.histogram_loss(a, b, delta=0.25), (pv, nv))


def test_kernels_without_grad_keep_nothing():
    pos, neg = _masks(5, 5)
    sim = torch.rand(5, 5, dtype=torch.float64)
    out = RF.pnp_query_losses(sim, pos, neg)
    assert not out.requires_grad
    out = RF.ranked_list_terms(sim, pos, neg, margin=0.4, alpha=1.2, imbalance=0.5, Tp=0, Tn=1)
    assert not out.requires_grad
