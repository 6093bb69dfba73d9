"""ProxyAnchorLoss and SoftTripleLoss: loop references, divisors, miner weights, parameters,
get_logits, gradients, half precision, bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric import distances, reducers, regularizers
from deepmetric.functional import proxy_losses as F
from deepmetric.losses.proxy_anchor_loss import ProxyAnchorLoss
from deepmetric.losses.soft_triple_loss import SoftTripleLoss
from reference import classification_losses_ref as R

C, D = 6, 5


def _batch(n=16, d=D, classes=C, dtype=torch.float64):
    return torch.randn(n, d, dtype=dtype), torch.randint(0, classes, (n,))


def _tuple():
    return (torch.tensor([0, 1, 1, 3]), torch.tensor([2, 2, 5, 4]), torch.tensor([6, 7, 8, 9]))


# ------------------------------------------------------------------ ProxyAnchor
@pytest.mark.parametrize("kind", ["cos", "l2"])
@pytest.mark.parametrize("mined", [False, True])
@pytest.mark.parametrize(("margin", "alpha"), [(0.1, 32), (0.3, 4.0)])
def test_proxy_anchor_matches_reference(kind, mined, margin, alpha):
    x, y = _batch()
    distance = None if kind == "cos" else distances.LpDistance()
    loss_fn = ProxyAnchorLoss(C, D, margin=margin, alpha=alpha, distance=distance).double()
    t = _tuple() if mined else None
    expected = R.proxy_anchor_loss(
        x, y, loss_fn.proxies, margin=margin, alpha=alpha, indices_tuple=t, kind=kind
    )
    assert loss_fn(x, y, t).item() == pytest.approx(expected, rel=1e-9)


def test_proxy_anchor_loss_dict_and_divisors():
    x = torch.randn(8, D, dtype=torch.float64)
    y = torch.tensor([0, 0, 2, 2, 2, 4, 4, 0])  # proxies 1, 3, 5 have no positive
    loss_fn = ProxyAnchorLoss(C, D, reducer=reducers.DoNothingReducer()).double()
    out = loss_fn(x, y)
    assert set(out) == {"pos_loss", "neg_loss"}
    assert out["pos_loss"]["divisor"] == 3 and out["neg_loss"]["divisor"] == C
    assert out["pos_loss"]["reduction_type"] == "element"
    assert torch.equal(out["pos_loss"]["indices"], torch.arange(C))
    pos, neg = R.proxy_anchor_terms(x, y, loss_fn.proxies, margin=0.1, alpha=32)
    torch.testing.assert_close(out["pos_loss"]["losses"], torch.tensor(pos, dtype=torch.float64))
    torch.testing.assert_close(out["neg_loss"]["losses"], torch.tensor(neg, dtype=torch.float64))
    assert all(out["pos_loss"]["losses"][[1, 3, 5]] == 0)


def test_proxy_anchor_defaults_and_parameters():
    loss_fn = ProxyAnchorLoss(C, D)
    assert (loss_fn.num_classes, loss_fn.margin, loss_fn.alpha) == (C, 0.1, 32)
    assert dict(loss_fn.named_parameters()).keys() == {"proxies"}
    assert loss_fn.proxies.shape == (C, D) and loss_fn.proxies.dtype == torch.float32
    assert isinstance(loss_fn.distance, distances.CosineSimilarity)
    assert isinstance(loss_fn.reducer, reducers.MultipleReducers)
    assert all(isinstance(r, reducers.DivisorReducer) for r in loss_fn.reducer.reducers.values())
    torch.manual_seed(5)
    proxies = ProxyAnchorLoss(C, D).proxies.detach()
    torch.manual_seed(5)
    expected = torch.nn.init.kaiming_normal_(torch.empty(C, D), mode="fan_out")
    assert torch.equal(proxies, expected)


def test_proxy_anchor_mean_reducer_ignores_divisors():
    x, y = _batch()
    loss_fn = ProxyAnchorLoss(C, D, reducer=reducers.MeanReducer()).double()
    pos, neg = R.proxy_anchor_terms(x, y, loss_fn.proxies, margin=0.1, alpha=32)
    assert loss_fn(x, y).item() == pytest.approx(sum(pos) / C + sum(neg) / C, rel=1e-9)


def test_proxy_anchor_empty_mining_result_is_all_ones():
    x, y = _batch()
    loss_fn = ProxyAnchorLoss(C, D).double()
    empty = tuple(torch.empty(0, dtype=torch.long) for _ in range(4))
    assert loss_fn(x, y, empty).item() == pytest.approx(loss_fn(x, y).item(), rel=1e-12)


def test_proxy_anchor_weight_regularizer_gets_proxies():
    x, y = _batch()
    reg = regularizers.LpRegularizer()
    loss_fn = ProxyAnchorLoss(C, D, weight_regularizer=reg, weight_reg_weight=0.5).double()
    plain = ProxyAnchorLoss(C, D).double()
    plain.proxies.data.copy_(loss_fn.proxies.data)
    expected = plain(x, y).item() + 0.5 * loss_fn.proxies.norm(dim=1).mean().item()
    assert loss_fn(x, y).item() == pytest.approx(expected, rel=1e-9)
    assert set(loss_fn.reducer.reducers) == {"pos_loss", "neg_loss", "weight_reg_loss"}


def test_proxy_anchor_get_logits():
    x, _ = _batch()
    loss_fn = ProxyAnchorLoss(C, D).double()
    expected = (
        torch.nn.functional.normalize(x, dim=1)
        @ torch.nn.functional.normalize(loss_fn.proxies.detach(), dim=1).t()
    )
    torch.testing.assert_close(loss_fn.get_logits(x), expected)
    assert ProxyAnchorLoss(C, D).get_logits(x.half()).dtype == torch.float16


def _naive_terms(sim, labels, margin, alpha, sign, lw):
    """Autograd through explicit masks (the textbook formula) for gradient comparisons."""
    onehot = torch.nn.functional.one_hot(labels, sim.shape[1]).bool()
    pos_e = alpha * sign * (margin - sim) + lw[:, None]
    neg_e = alpha * sign * (sim + margin) + lw[:, None]
    zero = torch.zeros(1, sim.shape[1], dtype=sim.dtype)
    big = torch.finfo(sim.dtype).min
    pos = torch.logsumexp(torch.cat([pos_e.masked_fill(~onehot, big), zero]), dim=0)
    neg = torch.logsumexp(torch.cat([neg_e.masked_fill(onehot, big), zero]), dim=0)
    return pos, neg


@pytest.mark.parametrize("is_inverted", [True, False])
def test_proxy_anchor_kernel_gradcheck_and_naive_gradients(is_inverted):
    sim = (torch.rand(7, 4, dtype=torch.float64) * 2 - 1).requires_grad_()
    labels = torch.tensor([0, 0, 1, 3, 3, 3, 1])  # class 2 has no positive
    lw = torch.tensor([0.0, -1.0, -0.5, 0.0, 0.0, -1.0, -0.25], dtype=torch.float64)

    def kernel(s):
        return F.proxy_anchor_terms(
            s, labels, margin=0.2, alpha=3.0, is_inverted=is_inverted, log_weights=lw
        )

    assert torch.autograd.gradcheck(kernel, (sim,))
    sign = 1.0 if is_inverted else -1.0
    gp, gn = torch.rand(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    fused = kernel(sim)
    g1 = torch.autograd.grad((fused[0] * gp).sum() + (fused[1] * gn).sum(), sim)[0]
    naive = _naive_terms(sim, labels, 0.2, 3.0, sign, lw)
    for a, b in zip(fused, naive, strict=True):
        torch.testing.assert_close(a, b)
    g2 = torch.autograd.grad((naive[0] * gp).sum() + (naive[1] * gn).sum(), sim)[0]
    torch.testing.assert_close(g1, g2)


def test_proxy_anchor_kernel_single_class_batch():
    """Every sample in one class: that proxy has no negative (term 0, no NaN in the gradient)."""
    sim = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    pos, neg = F.proxy_anchor_terms(sim, torch.zeros(5, dtype=torch.long), margin=0.1, alpha=32)
    assert neg[0] == 0 and pos[1] == 0 and pos[2] == 0
    (pos.sum() + neg.sum()).backward()
    assert torch.isfinite(sim.grad).all()


def test_proxy_anchor_gradcheck_module():
    loss_fn = ProxyAnchorLoss(C, D, alpha=4.0).double()
    x, y = _batch(n=10)
    x.requires_grad_()
    p = loss_fn.proxies.detach().clone().requires_grad_()
    for t in (None, _tuple()):

        def run(e, proxies, t=t):
            return torch.func.functional_call(loss_fn, {"proxies": proxies}, (e, y, t))

        assert torch.autograd.gradcheck(run, (x, p))


# ------------------------------------------------------------------ SoftTriple
@pytest.mark.parametrize("mined", [False, True])
@pytest.mark.parametrize(
    "kwargs", [{}, {"centers_per_class": 3, "la": 5.0, "gamma": 0.5, "margin": 0.2}]
)
def test_soft_triple_matches_reference(mined, kwargs):
    x, y = _batch()
    loss_fn = SoftTripleLoss(C, D, **kwargs).double()
    t = _tuple() if mined else None
    params = {"centers_per_class": 10, "la": 20, "gamma": 0.1, "margin": 0.01, **kwargs}
    expected = R.soft_triple_loss(x, y, loss_fn.fc, indices_tuple=t, **params)
    assert loss_fn(x, y, t).item() == pytest.approx(expected, rel=1e-9)


def test_soft_triple_parameters_and_units():
    loss_fn = SoftTripleLoss(C, D)
    assert loss_fn.gamma == pytest.approx(10.0)  # stored as 1 / gamma
    assert (loss_fn.la, loss_fn.margin, loss_fn.centers_per_class) == (20, 0.01, 10)
    assert (loss_fn.num_classes, loss_fn.embedding_size) == (C, D)
    assert loss_fn.fc.shape == (D, C * 10) and loss_fn.fc.dtype == torch.float32
    assert dict(loss_fn.named_parameters()).keys() == {"fc"}
    torch.manual_seed(2)
    fc = SoftTripleLoss(C, D, centers_per_class=3).fc.detach()
    torch.manual_seed(2)
    expected = torch.nn.init.kaiming_uniform_(torch.empty(D, C * 3), a=math.sqrt(5))
    assert torch.equal(fc, expected)


def test_soft_triple_get_logits():
    x, _ = _batch()
    loss_fn = SoftTripleLoss(C, D, centers_per_class=3, gamma=0.5).double()
    expected = R.soft_triple_class_sim(x, loss_fn.fc, centers_per_class=3, gamma=0.5)
    torch.testing.assert_close(loss_fn.get_logits(x), torch.tensor(expected, dtype=torch.float64))


def test_soft_triple_with_sparse_centers_regularizer():
    x, y = _batch()
    reg = regularizers.SparseCentersRegularizer(C, 3)
    loss_fn = SoftTripleLoss(C, D, centers_per_class=3, weight_regularizer=reg).double()
    plain = SoftTripleLoss(C, D, centers_per_class=3).double()
    plain.fc.data.copy_(loss_fn.fc.data)
    expected = plain(x, y).item() + copy.deepcopy(reg).double()(loss_fn.fc.t()).item()
    assert loss_fn(x, y).item() == pytest.approx(expected, rel=1e-9)


def test_soft_triple_dot_product_distance_allowed_lp_rejected():
    SoftTripleLoss(C, D, distance=distances.DotProductSimilarity())
    with pytest.raises(ValueError, match="inverted `distance`"):
        SoftTripleLoss(C, D, distance=distances.LpDistance())


def test_soft_triple_gradcheck():
    loss_fn = SoftTripleLoss(C, D, centers_per_class=2, la=3.0).double()
    x, y = _batch(n=10)
    x.requires_grad_()
    fc = loss_fn.fc.detach().clone().requires_grad_()

    def run(e, centers):
        return torch.func.functional_call(loss_fn, {"fc": centers}, (e, y, _tuple()))

    assert torch.autograd.gradcheck(run, (x, fc))
    sim = torch.rand(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s: F.soft_triple_class_similarity(s, centers_per_class=3, inverse_gamma=4.0), (sim,)
    )


# ------------------------------------------------------------------ both: numerics, errors
MAKERS = {
    "proxy_anchor": lambda: ProxyAnchorLoss(C, D),
    "soft_triple": lambda: SoftTripleLoss(C, D),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes_finite_and_close_to_float64(name, dtype):
    loss_fn = MAKERS[name]()
    x, y = _batch(n=40)
    reference = copy.deepcopy(loss_fn).double()(x, y).item()
    e = x.to(dtype).requires_grad_()
    out = loss_fn(e, y)
    assert out.dtype == dtype
    out.backward()
    assert torch.isfinite(e.grad).all()
    assert all(p.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in loss_fn.parameters())  # fmt: skip
    rel = {torch.float16: 5e-3, torch.bfloat16: 3e-2}.get(dtype, 1e-5)
    assert out.double().item() == pytest.approx(reference, rel=rel)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_proxy_anchor_half_large_alpha_no_overflow(dtype):
    """exp(alpha * 1.1) overflows float16 at alpha=32; the kernel works in float32."""
    loss_fn = ProxyAnchorLoss(C, D, alpha=64)
    x = loss_fn.proxies.detach()[torch.arange(C).repeat(4)].to(dtype).requires_grad_()
    y = (torch.arange(C).repeat(4) + 1) % C  # every sample sits on a wrong proxy
    out = loss_fn(x, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_bad_input(name):
    loss_fn = MAKERS[name]()
    x, y = _batch(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"expected `labels` in \[0, 6\) \(num_classes=6\)"):
        loss_fn(x, torch.cat([y[:-1], torch.tensor([6])]))
    with pytest.raises(ValueError, match=r"`embeddings` of shape \(N, 5\) \(embedding_size=5\)"):
        loss_fn(torch.randn(16, 4), y)
    with pytest.raises(ValueError, match=r"shape \(N, 5\)"):
        loss_fn.get_logits(torch.randn(2, 3))
    with pytest.raises(ValueError, match="ref_emb"):
        loss_fn(x, y, ref_emb=x.clone(), ref_labels=y)
    with pytest.raises(ValueError, match="labels"):
        loss_fn(x, indices_tuple=_tuple())


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: ProxyAnchorLoss(0, D), ValueError, "`num_classes` >= 1"),
        (lambda: ProxyAnchorLoss(C, "5"), TypeError, "`embedding_size` to be a positive int"),
        (lambda: SoftTripleLoss(C, D, centers_per_class=0), ValueError, "`centers_per_class`"),
        (lambda: SoftTripleLoss(C, D, gamma=0), ValueError, "non-zero `gamma`"),
    ],
)
def test_bad_constructor_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_trainable_parameters():
    assert [n for n, _ in ProxyAnchorLoss(C, D).trainable_parameters()] == ["proxies"]
    assert [n for n, _ in SoftTripleLoss(C, D).trainable_parameters()] == ["fc"]


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_int32_labels(name):
    loss_fn = MAKERS[name]()
    x, y = _batch(dtype=torch.float32)
    torch.testing.assert_close(loss_fn(x, y.int(), _tuple()), loss_fn(x, y, _tuple()))
