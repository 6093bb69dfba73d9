"""MultipleLosses, SelfSupervisedLoss and VICRegLoss: values against references, gradcheck,
dtypes, miners and weights, and every error."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric.functional import tuples as T
from deepmetric.functional import vicreg as FV
from deepmetric.losses.contrastive_loss import ContrastiveLoss
from deepmetric.losses.multiple_losses import MultipleLosses
from deepmetric.losses.ntxent_loss import NTXentLoss
from deepmetric.losses.self_supervised_loss import SelfSupervisedLoss
from deepmetric.losses.triplet_margin_loss import TripletMarginLoss
from deepmetric.losses.vicreg_loss import VICRegLoss
from deepmetric.miners.base_miner import BaseMiner
from deepmetric.reducers.do_nothing_reducer import DoNothingReducer
from deepmetric.reducers.sum_reducer import SumReducer
from reference import vicreg as ref_vicreg
from reference.losses import avg_nonzero, contrastive, triplet_terms


class OddAnchorsMiner(BaseMiner):
    """Every triplet whose anchor index is odd; counts its calls."""

    calls = 0

    def mine(self, embeddings, labels, ref_emb, ref_labels):
        self.calls += 1
        a, p, n = T.get_all_triplets_indices(labels)
        keep = a % 2 == 1
        return a[keep], p[keep], n[keep]


def _batch(n=12, d=6, classes=3, dtype=torch.float64):
    return torch.randn(n, d, dtype=dtype), torch.arange(n) % classes


# ====================================================================== MultipleLosses
def test_multiple_losses_list_is_a_weighted_sum():
    x, y = _batch()
    a, b = ContrastiveLoss(), TripletMarginLoss(margin=0.3)
    combined = MultipleLosses([a, b], weights=[0.5, 2.0])
    torch.testing.assert_close(combined(x, y), 0.5 * a(x, y) + 2.0 * b(x, y))
    assert isinstance(combined.losses, torch.nn.ModuleList) and not combined.is_dict
    assert MultipleLosses([a, b]).weights == [1, 1]
    torch.testing.assert_close(MultipleLosses([a, b])(x, y), a(x, y) + b(x, y))


def test_multiple_losses_dict_with_miner_for_one_key():
    x, y = _batch()
    miner = OddAnchorsMiner()
    a, b = ContrastiveLoss(), TripletMarginLoss(margin=0.3)
    combined = MultipleLosses({"c": a, "t": b}, miners={"t": miner}, weights={"c": 1.5, "t": 3})
    assert isinstance(combined.losses, torch.nn.ModuleDict) and combined.is_dict
    expected = 1.5 * a(x, y) + 3 * b(x, y, miner(x, y))
    calls = miner.calls
    torch.testing.assert_close(combined(x, y), expected)
    assert miner.calls == calls + 1  # called once, for "t" only


def test_multiple_losses_list_miners_and_caller_tuple():
    x, y = _batch()
    a, b = ContrastiveLoss(), TripletMarginLoss(margin=0.3)
    miner = OddAnchorsMiner()
    combined = MultipleLosses([a, b], miners=[None, miner])
    torch.testing.assert_close(combined(x, y), a(x, y) + b(x, y, miner(x, y)))
    # without miners a caller's tuple goes to every loss
    t = (torch.tensor([0, 3]), torch.tensor([6, 9]), torch.tensor([1, 2]))
    torch.testing.assert_close(MultipleLosses([a, b])(x, y, t), a(x, y, t) + b(x, y, t))
    # miners given but all None: the caller's tuple is still used
    combined_none = MultipleLosses([a, b], miners=[None, None])
    torch.testing.assert_close(combined_none(x, y, t), a(x, y, t) + b(x, y, t))


def test_multiple_losses_backprop_and_state():
    x, y = _batch()
    x.requires_grad_()
    combined = MultipleLosses({"c": ContrastiveLoss(), "t": TripletMarginLoss()})
    combined(x, y).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    modules = dict(combined.named_modules())
    assert {"losses.c", "losses.t", "losses.c.reducer"} <= set(modules)
    clone = pickle.loads(pickle.dumps(combined))
    torch.testing.assert_close(clone(x.detach(), y), combined(x.detach(), y))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"losses": ContrastiveLoss()}, TypeError, "`losses` as a list or a dict"),
        ({"losses": []}, ValueError, "at least one loss"),
        ({"losses": [ContrastiveLoss(), "x"]}, TypeError, r"losses\[1\] to be a loss module"),
        (
            {"losses": [ContrastiveLoss()], "miners": {"a": None}},
            TypeError,
            "`miners` as a list",
        ),
        (
            {"losses": [ContrastiveLoss(), ContrastiveLoss()], "miners": [None]},
            ValueError,
            "`miners` of length 2",
        ),
        (
            {"losses": {"a": ContrastiveLoss()}, "miners": [None]},
            TypeError,
            "`miners` as a dict",
        ),
        (
            {"losses": {"a": ContrastiveLoss()}, "miners": {"b": OddAnchorsMiner()}},
            ValueError,
            r"`miners` keys among the loss keys \['a'\], got unknown \['b'\]",
        ),
        (
            {"losses": [ContrastiveLoss()], "miners": [lambda x, y: x]},
            TypeError,
            r"miners\[0\] to be a miner module",
        ),
        (
            {"losses": {"a": ContrastiveLoss(), "b": ContrastiveLoss()}, "weights": {"a": 1}},
            ValueError,
            r"`weights` for every loss key \['a', 'b'\], got missing \['b'\]",
        ),
        (
            {"losses": {"a": ContrastiveLoss()}, "weights": {"a": 1, "z": 2}},
            ValueError,
            "`weights` keys among the loss keys",
        ),
        (
            {"losses": [ContrastiveLoss()], "weights": [1, 2]},
            ValueError,
            "`weights` of length 1",
        ),
        ({"losses": [ContrastiveLoss()], "weights": ["1"]}, TypeError, "weights.*to be a number"),
        ({"losses": [ContrastiveLoss()], "weights": [True]}, TypeError, "to be a number"),
    ],
)
def test_multiple_losses_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=f"MultipleLosses: expected .*{match}"):
        MultipleLosses(**kwargs)


def test_multiple_losses_tensor_weights_accepted():
    x, y = _batch()
    combined = MultipleLosses([ContrastiveLoss()], weights=[torch.tensor(0.5)])
    torch.testing.assert_close(combined(x, y), 0.5 * ContrastiveLoss()(x, y))


def test_multiple_losses_tuple_with_miners_is_refused():
    x, y = _batch()
    combined = MultipleLosses([ContrastiveLoss()], miners=[OddAnchorsMiner()])
    t = (torch.tensor([0]), torch.tensor([3]), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"no `indices_tuple` when losses have miners.*\[0\]"):
        combined(x, y, t)


# ====================================================================== SelfSupervisedLoss
def test_self_supervised_symmetric_against_loop_reference():
    emb, ref = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    loss = SelfSupervisedLoss(ContrastiveLoss(pos_margin=0.1, neg_margin=0.8))
    both = torch.cat([emb, ref])
    labels = torch.arange(5).repeat(2)
    expected = contrastive(both, labels, pos_margin=0.1, neg_margin=0.8)
    assert loss(emb, ref).item() == pytest.approx(expected, rel=1e-9)


def test_self_supervised_asymmetric_against_loop_reference():
    emb, ref = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    loss = SelfSupervisedLoss(TripletMarginLoss(margin=0.4), symmetric=False)
    labels = torch.arange(5)
    # ref_labels is a copy: emb[i] and ref[i] form a positive pair
    triplets = [(i, i, j) for i in range(5) for j in range(5) if j != i]
    expected = avg_nonzero(
        triplet_terms(emb, labels, margin=0.4, ref=ref, ref_labels=labels, triplets=triplets)
    )
    assert loss(emb, ref).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("symmetric", [True, False])
def test_self_supervised_matches_direct_calls_and_backprops(symmetric):
    emb = torch.randn(6, 8, requires_grad=True)
    ref = torch.randn(6, 8, requires_grad=True)
    inner = NTXentLoss(temperature=0.2)
    out = SelfSupervisedLoss(inner, symmetric=symmetric)(emb, ref)
    labels = torch.arange(6)
    if symmetric:
        expected = inner(torch.cat([emb, ref]), torch.cat([labels, labels]))
    else:
        expected = inner(emb, labels, ref_emb=ref, ref_labels=labels.clone())
    torch.testing.assert_close(out, expected)
    out.backward()
    assert emb.grad.abs().sum() > 0 and ref.grad.abs().sum() > 0


class NoRefContrastive(ContrastiveLoss):
    supports_ref_emb = False


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (
            lambda: SelfSupervisedLoss(VICRegLoss()),
            TypeError,
            "missing capability: supports_labels",
        ),
        (
            lambda: SelfSupervisedLoss(NoRefContrastive(), symmetric=False),
            TypeError,
            "missing capability: supports_ref_emb",
        ),
        (lambda: SelfSupervisedLoss(ContrastiveLoss(), symmetric=1), TypeError, "`symmetric`"),
        (lambda: SelfSupervisedLoss(print), TypeError, "expected `loss` to be a loss module"),
    ],
)
def test_self_supervised_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_self_supervised_symmetric_accepts_a_loss_without_ref_support():
    SelfSupervisedLoss(NoRefContrastive())  # symmetric: only labels are needed


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((torch.randn(4, 3), torch.randn(5, 3)), ValueError, r"same shape \(N, D\), got"),
        ((torch.randn(4), torch.randn(4)), ValueError, "same shape"),
        ((torch.randn(4, 3), [1.0]), TypeError, "`ref_emb` to be a torch.Tensor"),
    ],
)
def test_self_supervised_forward_errors(args, exc, match):
    with pytest.raises(exc, match=f"SelfSupervisedLoss: expected .*{match}"):
        SelfSupervisedLoss(ContrastiveLoss())(*args)


def test_self_supervised_supported_losses_come_from_flags():
    names = SelfSupervisedLoss.supported_losses()
    assert {"ContrastiveLoss", "TripletMarginLoss", "NTXentLoss"} <= set(names)
    assert "VICRegLoss" not in names


# ====================================================================== VICRegLoss
@pytest.mark.parametrize(
    "params",
    [{}, {"invariance_lambda": 3.0, "variance_mu": 0.5, "covariance_v": 7.0, "eps": 0.3}],
)
@pytest.mark.parametrize("shape", [(7, 5), (3, 8)])  # D x D covariance / N x N Gram form
def test_vicreg_against_loop_reference(params, shape):
    z1 = torch.randn(*shape, dtype=torch.float64) * 0.6
    z2 = z1 + 0.3 * torch.randn(*shape, dtype=torch.float64)
    expected = ref_vicreg.vicreg(z1, z2, **{k: float(v) for k, v in params.items()})
    assert VICRegLoss(**params)(z1, ref_emb=z2).item() == pytest.approx(expected, rel=1e-10)


def test_vicreg_hinge_inactive_for_wide_embeddings():
    """With std > 1 in every dimension the variance terms vanish (the hinge is inactive)."""
    z1 = torch.randn(50, 3, dtype=torch.float64) * 10
    z2 = torch.randn(50, 3, dtype=torch.float64) * 10
    terms = VICRegLoss(reducer=DoNothingReducer())(z1, ref_emb=z2)
    assert set(terms) == {"invariance_loss", "variance_loss1", "variance_loss2", "covariance_loss"}
    assert terms["variance_loss1"]["losses"].abs().sum() == 0
    assert terms["invariance_loss"]["reduction_type"] == "element"
    assert terms["covariance_loss"]["reduction_type"] == "already_reduced"
    assert terms["variance_loss2"]["indices"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("shape", [(6, 4), (3, 7)])  # D x D covariance / N x N Gram form
def test_vicreg_functional_gradcheck(shape):
    z1 = (torch.randn(*shape, dtype=torch.float64) * 0.5).requires_grad_()
    z2 = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(FV.invariance_terms, (z1, z2))
    assert torch.autograd.gradcheck(lambda z: FV.variance_terms(z, eps=1e-4), (z1,))
    assert torch.autograd.gradcheck(FV.covariance_term, (z1,))


def _covariance_direct(z):
    """The D x D definition in float64 (no cancellation)."""
    c = z.double() - z.double().mean(0)
    cov = c.T @ c / (len(z) - 1)
    return (cov.square().sum() - cov.diagonal().square().sum()) / z.shape[1]


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e5])
def test_vicreg_gram_form_exact_for_skewed_variances(scale):
    """One dimension's std ``scale`` times the others': the N x N form subtracts two large sums,
    so it runs in float64; float32 input still gets float32-accurate values and gradients."""
    z = torch.randn(16, 64, dtype=torch.float64)
    z[:, 0] *= scale
    z = z.float().double()  # the float32 input, exactly
    expected = _covariance_direct(z)
    x = z.float().requires_grad_()
    out = FV.covariance_term(x)
    assert out.dtype == torch.float32
    assert out.double().item() == pytest.approx(expected.item(), rel=1e-5)
    out.backward()
    zd = z.clone().requires_grad_()
    _covariance_direct(zd).backward()
    torch.testing.assert_close(x.grad.double(), zd.grad, rtol=1e-4, atol=1e-6 * zd.grad.abs().max())


@pytest.mark.parametrize("reducer", [None, SumReducer()])
def test_vicreg_module_gradcheck(reducer):
    z1 = (torch.randn(6, 4, dtype=torch.float64) * 0.5).requires_grad_()
    z2 = (torch.randn(6, 4, dtype=torch.float64) * 0.5).requires_grad_()
    loss = VICRegLoss(invariance_lambda=2.0, variance_mu=3.0, covariance_v=0.5, reducer=reducer)
    assert torch.autograd.gradcheck(lambda a, b: loss(a, ref_emb=b), (z1, z2))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_vicreg_dtypes(dtype):
    z1 = torch.randn(32, 16) * 0.8
    z2 = z1 + 0.1 * torch.randn(32, 16)
    expected = VICRegLoss()(z1.double(), ref_emb=z2.double())
    a = z1.to(dtype).requires_grad_()
    b = z2.to(dtype).requires_grad_()
    out = VICRegLoss()(a, ref_emb=b)
    assert out.dtype == dtype
    out.backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 5e-2}
    assert out.double().item() == pytest.approx(expected.item(), rel=tol[dtype])


def test_vicreg_half_precision_large_dimension_does_not_overflow():
    """The D x D covariance sum exceeds float16's range if accumulated in float16."""
    z = (torch.randn(64, 512) * 4).half()
    out = VICRegLoss()(z, ref_emb=z.flip(0))
    expected = VICRegLoss()(z.double(), ref_emb=z.flip(0).double())
    assert torch.isfinite(out)
    assert out.double().item() == pytest.approx(expected.item(), rel=2e-2)


def test_vicreg_copy_and_repr():
    loss = VICRegLoss(invariance_lambda=2)
    text = repr(loss)
    assert "invariance_lambda=2" in text and "eps=0.0001" in text
    z1, z2 = torch.randn(5, 3), torch.randn(5, 3)
    torch.testing.assert_close(copy.deepcopy(loss)(z1, ref_emb=z2), loss(z1, ref_emb=z2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"distance": None}, "no `distance`"),
        ({"embedding_regularizer": None}, "no `embedding_regularizer`"),
        ({"eps": -1.0}, "`eps` to be a number >= 0"),
    ],
)
def test_vicreg_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=f"VICRegLoss: expected {match}"):
        VICRegLoss(**kwargs)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda f, z: f(z), "`ref_emb`, the second view, got none"),
        (lambda f, z: f(z, ref_emb=z), "`ref_emb`, the second view"),
        (lambda f, z: f(z, ref_emb=z[:4]), r"of the embeddings' shape \(5, 3\), got \(4, 3\)"),
        (lambda f, z: f(z[:1], ref_emb=z[1:2]), "a batch of at least 2"),
        (lambda f, z: f(z, torch.arange(5), ref_emb=z.clone()), "labels"),
        (
            lambda f, z: f(z, None, (torch.tensor([0]),) * 3, ref_emb=z.clone()),
            "indices_tuple",
        ),
    ],
)
def test_vicreg_call_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(VICRegLoss(), torch.randn(5, 3))


# ====================================================================== trainable parameters
class ContrastiveWithWeights(ContrastiveLoss):
    """Stands in for a loss with class vectors (ArcFace's W, proxies)."""

    def __init__(self):
        super().__init__()
        self.W = torch.nn.Parameter(torch.ones(3, 2))


def test_wrappers_report_trainable_parameters_of_wrapped_losses():
    combined = MultipleLosses({"a": ContrastiveLoss(), "b": ContrastiveWithWeights()})
    assert combined.has_trainable_parameters()
    assert [name for name, _ in combined.trainable_parameters()] == ["losses.b.W"]
    assert not MultipleLosses([ContrastiveLoss()]).has_trainable_parameters()
    wrapped = SelfSupervisedLoss(ContrastiveWithWeights())
    assert [name for name, _ in wrapped.trainable_parameters()] == ["loss.W"]
    wrapped.loss.W.requires_grad_(False)
    assert not wrapped.has_trainable_parameters()
