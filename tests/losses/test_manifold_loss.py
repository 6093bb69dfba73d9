"""ManifoldLoss: loop reference, proxy assignment, learnable proxies, lambdaC modes, errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric import distances, reducers
from deepmetric._registry import LOSSES
from deepmetric.functional import manifold_loss as MF
from deepmetric.losses.manifold_loss import ManifoldLoss
from reference import ranking_losses_ref as R


def _setup(n=9, dim=5, K=3, seed=0, **kwargs):
    g = torch.Generator().manual_seed(seed)
    loss_fn = ManifoldLoss(dim, K=K, generator=g, **kwargs)
    x = torch.randn(n, dim, dtype=torch.float64)
    assignment = torch.arange(n) % K
    return loss_fn, x, assignment


def test_registered_records_and_parameters():
    assert "ManifoldLoss" in LOSSES
    loss_fn = ManifoldLoss(8, K=4)
    assert loss_fn._record_these == ["K", "l", "lambdaC", "alpha", "margin"]
    assert (loss_fn.K, loss_fn.l, loss_fn.lambdaC, loss_fn.alpha, loss_fn.margin) == (
        4,
        8,
        1.0,
        0.8,
        5e-4,
    )
    assert isinstance(loss_fn.proxies, torch.nn.Parameter) and loss_fn.proxies.shape == (4, 8)
    assert "proxies" in loss_fn.state_dict()
    assert isinstance(loss_fn.distance, distances.CosineSimilarity)
    assert isinstance(loss_fn.reducer, reducers.MeanReducer)
    assert "lambdaC=1.0" in repr(loss_fn)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"lambdaC": 0.0}, {"lambdaC": 2.5, "alpha": 0.5, "margin": 0.05}, {"lambdaC": math.inf}],
)
def test_matches_reference(kwargs):
    loss_fn, x, assignment = _setup(**kwargs)
    expected = R.manifold(x, loss_fn.proxies.detach(), assignment, **kwargs)
    out = loss_fn(x, indices_tuple=assignment)
    assert out.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_terms_and_loss_dict():
    loss_fn, x, assignment = _setup(reducer=reducers.DoNothingReducer())
    out = loss_fn(x, indices_tuple=assignment)["loss"]
    assert out["reduction_type"] == "already_reduced" and out["indices"] is None
    nodes = torch.cat([x, loss_fn.proxies.detach().double()])
    sim = distances.CosineSimilarity()(nodes)
    l_int, l_ctx = MF.manifold_terms(sim, assignment, alpha=0.8, margin=5e-4)
    assert l_int.shape == (9,) and l_ctx.shape == (9,)
    assert out["losses"].item() == pytest.approx((l_int.mean() + l_ctx.mean()).item(), rel=1e-12)
    only_ctx = MF.manifold_terms(sim, assignment, alpha=0.8, margin=5e-4, intrinsic=False)
    assert only_ctx[0] is None
    torch.testing.assert_close(only_ctx[1], l_ctx)


def test_gradients_reach_embeddings_and_proxies():
    loss_fn, x, assignment = _setup()
    e = x.clone().requires_grad_()
    loss_fn(e, indices_tuple=assignment).backward()
    assert e.grad.abs().sum() > 0
    assert loss_fn.proxies.grad is not None and loss_fn.proxies.grad.abs().sum() > 0


def test_gradcheck():
    loss_fn, x, assignment = _setup(n=6, dim=3, K=2, margin=0.2)
    loss_fn.proxies.data = loss_fn.proxies.data.double()
    assert torch.autograd.gradcheck(
        lambda e: loss_fn(e, indices_tuple=assignment), (x.requires_grad_(),)
    )
    sim = distances.CosineSimilarity()(torch.randn(8, 3, dtype=torch.float64)).requires_grad_()
    own = torch.tensor([0, 1, 2, 0, 1])

    def terms(s):
        return MF.manifold_terms(s, own, alpha=0.6, margin=0.1)

    assert torch.autograd.gradcheck(lambda s: terms(s)[0], (sim,))
    assert torch.autograd.gradcheck(lambda s: terms(s)[1], (sim,))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes(dtype):
    loss_fn, x, assignment = _setup(n=12)
    expected = loss_fn(x.to(dtype).double(), indices_tuple=assignment).item()
    e = x.to(dtype).requires_grad_()
    out = loss_fn(e, indices_tuple=assignment)
    assert out.dtype == dtype
    out.backward()
    assert e.grad.dtype == dtype and torch.isfinite(e.grad.float()).all()
    tol = {torch.float64: 1e-12, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 1e-1}
    assert out.double().item() == pytest.approx(expected, rel=tol[dtype], abs=tol[dtype])


def test_random_assignment_uses_every_proxy_and_is_seeded():
    loss_fn, x, _ = _setup(n=20, K=6)
    assignment = loss_fn.random_assignment(20, x.device)
    assert assignment.shape == (20,) and set(assignment.tolist()) == set(range(6))
    twin = copy.deepcopy(loss_fn)
    torch.testing.assert_close(twin(x), loss_fn(x))
    a, b = _setup(n=20, K=6, seed=3)[0], _setup(n=20, K=6, seed=3)[0]
    torch.testing.assert_close(a(x), b(x))
    # an explicit assignment gives the reference value whatever the generator did
    own = torch.arange(20) % 6
    expected = R.manifold(x, a.proxies.detach(), own)
    assert a(x, indices_tuple=own).item() == pytest.approx(expected, rel=1e-9)


def test_assignment_accepts_other_integer_dtypes():
    loss_fn, x, assignment = _setup()
    torch.testing.assert_close(
        loss_fn(x, indices_tuple=assignment.int()), loss_fn(x, indices_tuple=assignment)
    )


def test_errors():
    loss_fn, x, assignment = _setup()
    with pytest.raises(ValueError, match="lambdaC"):
        ManifoldLoss(5, lambdaC=-1)
    with pytest.raises(ValueError, match="lambdaC"):
        ManifoldLoss(5, lambdaC=float("nan"))
    with pytest.raises(ValueError, match="alpha"):
        ManifoldLoss(5, alpha=1.0)
    with pytest.raises(ValueError, match="`l`"):
        ManifoldLoss(0)
    with pytest.raises(ValueError, match="`K`"):
        ManifoldLoss(5, K=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="generator"):
        ManifoldLoss(5, generator=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels"):
        loss_fn(x, torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match="ref_emb"):
        loss_fn(x, ref_emb=x.clone())
    with pytest.raises(ValueError, match="l=5"):
        loss_fn(torch.randn(9, 4, dtype=torch.float64), indices_tuple=assignment)
    with pytest.raises(ValueError, match=r"indices_tuple.*Miner tuples"):
        loss_fn(x, indices_tuple=(torch.tensor([0]), torch.tensor([1]), torch.tensor([2])))
    with pytest.raises(ValueError, match=r"shape \(9,\)"):
        loss_fn(x, indices_tuple=assignment[:5])
    with pytest.raises(TypeError, match="proxy assignment"):
        loss_fn(x, indices_tuple=assignment.double())
    with pytest.raises(TypeError, match="proxy assignment"):
        loss_fn(x, indices_tuple=[0] * 9)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[0, K\) with K=3"):
        loss_fn(x, indices_tuple=assignment + 1)
    with pytest.raises(ValueError, match="at least K=3"):
        loss_fn(x[:2])


def test_single_sample_with_assignment_is_finite():
    loss_fn, x, _ = _setup()
    e = x[:1].clone().requires_grad_()
    out = loss_fn(e, indices_tuple=torch.tensor([1]))
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(e.grad).all()
