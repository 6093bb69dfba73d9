"""NCALoss and ProxyNCALoss against the float64 loop reference: values, miner weights, ref_emb,
distances, dtypes, gradients, zero rules, proxies, regularizer, get_logits and errors."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric import distances, reducers, regularizers
from deepmetric.functional.nca import nca_terms
from deepmetric.losses.nca_loss import NCALoss
from deepmetric.losses.proxy_nca_loss import ProxyNCALoss
from reference import lse_pair_losses_ref as R

DISTANCES = {
    "l2sq": None,  # the default, LpDistance(power=2)
    "l2": lambda: distances.LpDistance(),
    "cos": lambda: distances.CosineSimilarity(),
    "dot": lambda: distances.DotProductSimilarity(normalize_embeddings=False),
}


def _batch(n=12, d=6, classes=3, dtype=torch.float64):
    return torch.randn(n, d, dtype=dtype), torch.randint(0, classes, (n,))


def _distance(kind):
    return None if DISTANCES[kind] is None else DISTANCES[kind]()


def _terms(loss_fn, *args, **kwargs):
    loss_fn.reducer = reducers.DoNothingReducer()
    return loss_fn(*args, **kwargs)["loss"]


def _check(sub, expected, rel=1e-9):
    idx, values = zip(*expected, strict=True) if expected else ((), ())
    assert sub["reduction_type"] == "element"
    assert sub["indices"].tolist() == list(idx)
    torch.testing.assert_close(
        sub["losses"].detach(), torch.tensor(values, dtype=torch.float64), rtol=rel, atol=1e-12
    )


def _proxy_loss(num_classes=4, d=6, **kwargs):
    loss_fn = ProxyNCALoss(num_classes, d, **kwargs).double()
    return loss_fn


# ------------------------------------------------------------------ NCALoss
@pytest.mark.parametrize("kind", sorted(DISTANCES))
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_nca_matches_reference(kind, scale):
    x, y = _batch()
    sub = _terms(NCALoss(softmax_scale=scale, distance=_distance(kind)), x, y)
    _check(sub, R.nca(x, y, softmax_scale=scale, kind=kind))


def test_nca_defaults_and_mean():
    loss_fn = NCALoss()
    assert loss_fn.softmax_scale == 1 and loss_fn._record_these == ["softmax_scale"]
    assert isinstance(loss_fn.distance, distances.LpDistance) and loss_fn.distance.power == 2
    assert type(loss_fn.reducer) is reducers.MeanReducer
    x, y = _batch()
    expected = R.mean([v for _, v in R.nca(x, y)])
    assert loss_fn(x, y).item() == pytest.approx(expected, rel=1e-9)


def test_nca_rows_without_a_positive_are_dropped():
    x, _ = _batch(n=6)
    y = torch.tensor([0, 0, 1, 2, 2, 3])  # samples 2 and 5 are alone
    sub = _terms(NCALoss(), x, y)
    assert sub["indices"].tolist() == [0, 1, 3, 4]
    _check(sub, R.nca(x, y))


@pytest.mark.parametrize("kind", ["l2sq", "cos"])
def test_nca_ref_emb(kind):
    x, y = _batch()
    ref, ref_y = _batch(n=9)
    sub = _terms(NCALoss(distance=_distance(kind)), x, y, ref_emb=ref, ref_labels=ref_y)
    _check(sub, R.nca(x, y, kind=kind, ref=ref, ref_labels=ref_y))


def test_nca_ref_emb_needs_ref_labels():
    x, y = _batch()
    with pytest.raises(ValueError, match="`ref_labels` together with `ref_emb`"):
        NCALoss()(x, y, ref_emb=x[:4].clone())


@pytest.mark.parametrize("form", ["triplets", "pairs", "empty"])
def test_nca_miner_tuple_weights(form):
    x, y = _batch()
    if form == "triplets":
        t = (torch.tensor([0, 0, 3]), torch.tensor([1, 2, 4]), torch.tensor([5, 5, 6]))
    elif form == "pairs":
        t = (torch.tensor([0, 1]), torch.tensor([2, 2]), torch.tensor([0]), torch.tensor([7]))
    else:
        t = (torch.tensor([], dtype=torch.long),) * 3
    weights = R.tuple_weights(t, len(x))
    sub = _terms(NCALoss(), x, y, t)
    _check(sub, R.nca(x, y, weights=weights))


def test_nca_miner_weights_with_ref_use_anchors_only():
    x, y = _batch()
    ref, ref_y = _batch(n=15)
    t = (torch.tensor([0, 0, 3]), torch.tensor([14, 2, 4]), torch.tensor([13, 5, 6]))
    weights = R.tuple_weights(t, len(x), anchors_only=True)
    sub = _terms(NCALoss(), x, y, t, ref_emb=ref, ref_labels=ref_y)
    _check(sub, R.nca(x, y, ref=ref, ref_labels=ref_y, weights=weights))


def test_nca_needs_labels_even_with_a_tuple():
    x, _ = _batch()
    t = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    with pytest.raises(ValueError, match="`labels`"):
        NCALoss()(x, indices_tuple=t)


@pytest.mark.parametrize("case", ["single", "singletons"])
def test_nca_zero_cases_are_graph_connected(case):
    n = 1 if case == "single" else 5
    x = torch.randn(n, 4, requires_grad=True)
    out = NCALoss()(x, torch.arange(n))
    out.backward()
    assert out.item() == 0 and out.requires_grad  # PML: 0 for one sample, NaN for singletons
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_nca_one_class_is_zero_but_kept():
    x, _ = _batch(n=5)
    sub = _terms(NCALoss(), x, torch.zeros(5, dtype=torch.long))
    assert sub["indices"].tolist() == list(range(5))
    assert torch.allclose(sub["losses"], torch.zeros(5, dtype=torch.float64), atol=1e-12)


def test_nca_exact_where_softmax_underflows():
    """A positive far outside the softmax's float32 range still gets its exact (large) loss
    (pytorch-metric-learning drops such rows)."""
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.05], [0.99, 0.1], [-0.99, 0.0]])
    y = torch.tensor([0, 0, 1, 1])  # each sample's positive is on the opposite side
    sub = _terms(NCALoss(softmax_scale=100.0), x, y)
    expected = R.nca(x.double(), y, softmax_scale=100.0)
    assert sub["indices"].tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(
        sub["losses"].double(),
        torch.tensor([v for _, v in expected], dtype=torch.float64),
        rtol=1e-5,
        atol=0,
    )
    assert (sub["losses"] > 100).all()


@pytest.mark.parametrize("exclude", [False, True])
def test_gradcheck_nca_kernel(exclude):
    mat = torch.rand(7, 7, dtype=torch.float64, requires_grad=True)
    same = torch.rand(7, 7) < 0.4
    same[3] = False  # a row without positives
    fn = lambda m: nca_terms(
        m, same, softmax_scale=2.0, is_inverted=False, exclude_diagonal=exclude
    )[0]
    assert torch.autograd.gradcheck(fn, (mat,))


def test_gradcheck_nca_kernel_far_positives():
    """Positives ~40 nats below the row maximum take the exact (second) path."""
    mat = (torch.rand(6, 6, dtype=torch.float64) * 0.1).requires_grad_()
    same = torch.zeros(6, 6, dtype=torch.bool)
    same[0, 1] = same[0, 2] = same[3, 4] = True
    with torch.no_grad():
        mat[0, 1] += 1.0
        mat[0, 2] += 1.2
    fn = lambda m: nca_terms(m, same, softmax_scale=40.0, is_inverted=False)[0]
    assert torch.autograd.gradcheck(fn, (mat,))
    assert fn(mat)[0].item() > 35


@pytest.mark.parametrize("with_ref", [False, True])
def test_gradcheck_nca_module(with_ref):
    x, y = _batch(n=8, d=4)
    x.requires_grad_(True)
    loss_fn = NCALoss(softmax_scale=2.0)
    if with_ref:
        ref, ref_y = _batch(n=6, d=4)
        ref.requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda e, r: loss_fn(e, y, ref_emb=r, ref_labels=ref_y), (x, ref)
        )
    else:
        assert torch.autograd.gradcheck(lambda e: loss_fn(e, y), (x,))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("proxy", [False, True])
def test_dtypes(dtype, proxy):
    x, y = _batch(n=24, d=16, classes=4)
    x = x.to(dtype)
    if proxy:
        loss_fn = ProxyNCALoss(4, 16, softmax_scale=3.0)
        p = loss_fn.proxies.detach()
        expected = R.mean(
            [v for _, v in R.nca(x.double(), y, 3.0, ref=p.double(), ref_labels=torch.arange(4))]
        )
    else:
        loss_fn = NCALoss(softmax_scale=3.0)
        expected = R.mean([v for _, v in R.nca(x.double(), y, 3.0)])
    e = x.clone().requires_grad_()
    out = loss_fn(e, y)
    assert out.dtype == dtype
    out.backward()
    assert e.grad.dtype == dtype and torch.isfinite(e.grad.float()).all()
    if proxy:
        assert loss_fn.proxies.dtype == torch.float32 and loss_fn.proxies.grad is not None
    rel = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}
    assert out.double().item() == pytest.approx(expected, rel=rel[dtype], abs=rel[dtype])


# ------------------------------------------------------------------ ProxyNCALoss
@pytest.mark.parametrize("kind", sorted(DISTANCES))
def test_proxy_nca_matches_reference(kind):
    x, y = _batch(classes=4)
    loss_fn = _proxy_loss(softmax_scale=2.0, distance=_distance(kind))
    p = loss_fn.proxies.detach()
    sub = _terms(loss_fn, x, y)
    _check(sub, R.nca(x, y, 2.0, kind=kind, ref=p, ref_labels=torch.arange(4)))


def test_proxy_nca_construction():
    loss_fn = ProxyNCALoss(5, 8)
    assert isinstance(loss_fn.proxies, torch.nn.Parameter)
    assert loss_fn.proxies.shape == (5, 8) and loss_fn.proxies.dtype == torch.float32
    assert torch.equal(loss_fn.proxy_labels, torch.arange(5))
    assert "proxies" in loss_fn.state_dict()
    assert loss_fn.num_classes == 0  # recordable but never stored, as in PML
    assert loss_fn._record_these == ["softmax_scale", "num_classes"]
    assert loss_fn.softmax_scale == 1 and loss_fn.supports_ref_emb is False
    assert isinstance(loss_fn.distance, distances.LpDistance) and loss_fn.distance.power == 2
    seen = []
    ProxyNCALoss(3, 4, weight_init_func=lambda t: seen.append(t.shape) or t.data.fill_(0.5))
    assert seen == [torch.Size([3, 4])]


@pytest.mark.parametrize("bad", [0, -2, 2.5, True])
def test_proxy_nca_bad_sizes(bad):
    with pytest.raises(ValueError, match="`num_classes` to be a positive int"):
        ProxyNCALoss(bad, 4)
    with pytest.raises(ValueError, match="`embedding_size` to be a positive int"):
        ProxyNCALoss(3, bad)


def test_proxy_nca_single_sample_is_not_zero():
    """Like pytorch-metric-learning: the proxies are the reference set, so one sample has a loss."""
    loss_fn = _proxy_loss()
    x = torch.randn(1, 6, dtype=torch.float64)
    expected = R.nca(x, torch.tensor([2]), ref=loss_fn.proxies.detach(), ref_labels=torch.arange(4))
    assert loss_fn(x, torch.tensor([2])).item() == pytest.approx(expected[0][1], rel=1e-9)


def test_proxy_nca_miner_weights_count_anchors_only():
    x, y = _batch(classes=4)
    t = (torch.tensor([0, 0, 3]), torch.tensor([1, 2, 4]), torch.tensor([5, 5, 6]))
    loss_fn = _proxy_loss()
    weights = R.tuple_weights(t, len(x), anchors_only=True)
    sub = _terms(loss_fn, x, y, t)
    p = loss_fn.proxies.detach()
    _check(sub, R.nca(x, y, ref=p, ref_labels=torch.arange(4), weights=weights))


def test_proxy_nca_gradients_reach_the_proxies():
    x, y = _batch(n=8, d=4, classes=3)
    loss_fn = _proxy_loss(3, 4, softmax_scale=2.0)
    x.requires_grad_(True)
    out = loss_fn(x, y)
    out.backward()
    assert loss_fn.proxies.grad is not None and loss_fn.proxies.grad.abs().sum() > 0

    def functional(e, p):  # the same loss with the proxies as an input
        same = y[:, None] == torch.arange(3)[None, :]
        losses, _ = nca_terms(loss_fn.distance(e, p), same, softmax_scale=2.0, is_inverted=False)
        return losses.mean()

    proxies = loss_fn.proxies.detach().clone().requires_grad_(True)
    torch.testing.assert_close(functional(x, proxies), out)
    assert torch.autograd.gradcheck(functional, (x, proxies))


def test_proxy_nca_weight_regularizer():
    x, y = _batch(classes=4)
    reg = regularizers.LpRegularizer()
    loss_fn = _proxy_loss(weight_regularizer=reg, weight_reg_weight=0.5)
    assert isinstance(loss_fn.reducer, reducers.MultipleReducers)
    assert loss_fn.weight_reg_weight == 0.5 and "weight_reg_weight" in loss_fn._record_these
    loss_fn.reducer = reducers.DoNothingReducer()
    out = loss_fn(x, y)
    assert set(out) == {"loss", "weight_reg_loss"}
    expected = regularizers.LpRegularizer()(loss_fn.proxies.detach()) * 0.5
    torch.testing.assert_close(out["weight_reg_loss"]["losses"].detach(), expected)
    assert out["weight_reg_loss"]["reduction_type"] == "already_reduced"
    total = _proxy_loss(weight_regularizer=reg, weight_reg_weight=0.5)
    with torch.no_grad():
        total.proxies.copy_(loss_fn.proxies)
    nca = R.mean(
        [v for _, v in R.nca(x, y, ref=total.proxies.detach(), ref_labels=torch.arange(4))]
    )
    assert total(x, y).item() == pytest.approx(nca + expected.item(), rel=1e-9)


def test_proxy_nca_reducer_is_a_copy_and_wrapped_with_regularizer():
    mean = reducers.MeanReducer()
    plain = ProxyNCALoss(3, 4, reducer=mean)
    assert type(plain.reducer) is reducers.MeanReducer and plain.reducer is not mean
    wrapped = ProxyNCALoss(
        3, 4, reducer=reducers.SumReducer(), weight_regularizer=regularizers.LpRegularizer()
    )
    assert set(wrapped.reducer.reducers) == {"loss", "weight_reg_loss"}
    assert all(type(r) is reducers.SumReducer for r in wrapped.reducer.reducers.values())


def test_proxy_nca_get_logits():
    x, _ = _batch()
    loss_fn = _proxy_loss()
    logits = loss_fn.get_logits(x)
    assert logits.shape == (12, 4)
    expected = R.table(x, loss_fn.proxies.detach(), "l2sq")
    torch.testing.assert_close(logits.detach(), torch.tensor(expected, dtype=torch.float64))
    # the proxies are used in the embeddings' dtype without converting the parameter
    half = ProxyNCALoss(4, 6).get_logits(x.float())
    assert half.dtype == torch.float32


def test_proxy_nca_keeps_parameter_dtype_and_cast_types():
    loss_fn = ProxyNCALoss(4, 6)
    x, y = _batch(classes=4)
    loss_fn(x, y)  # float64 embeddings
    assert loss_fn.proxies.dtype == torch.float32
    loss_fn.cast_types(torch.float64, torch.device("cpu"))
    assert loss_fn.proxies.dtype == torch.float64


@pytest.mark.parametrize("labels", [[0, 1, 4], [-1, 0, 1]])
def test_proxy_nca_labels_out_of_range(labels):
    with pytest.raises(ValueError, match=r"`labels` in \[0, num_classes=4\)"):
        ProxyNCALoss(4, 6)(torch.randn(3, 6), torch.tensor(labels))


def test_proxy_nca_rejects_ref_emb_and_needs_labels():
    x, y = _batch(classes=4)
    with pytest.raises(ValueError, match="ref_emb"):
        ProxyNCALoss(4, 6)(x, y, ref_emb=x.clone(), ref_labels=y)
    with pytest.raises(ValueError, match="`labels`"):
        ProxyNCALoss(4, 6)(x.float())


def test_proxy_nca_copy_and_state_dict():
    loss_fn = ProxyNCALoss(4, 6, softmax_scale=2.0)
    x, y = _batch(classes=4)
    x = x.float()
    clone = copy.deepcopy(loss_fn)
    torch.testing.assert_close(clone(x, y), loss_fn(x, y))
    fresh = ProxyNCALoss(4, 6, softmax_scale=2.0)
    fresh.load_state_dict(loss_fn.state_dict())
    torch.testing.assert_close(fresh(x, y), loss_fn(x, y))
