"""Margin-softmax losses (LargeMarginSoftmax, SphereFace, ArcFace, SubCenterArcFace, CosFace),
NormalizedSoftmax and P2SGrad: loop references, parameters, get_logits, numerics, bad input."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric import distances, reducers, regularizers
from deepmetric.functional import margin_softmax as F
from deepmetric.losses.arcface_loss import ArcFaceLoss
from deepmetric.losses.cosface_loss import CosFaceLoss
from deepmetric.losses.large_margin_softmax_loss import LargeMarginSoftmaxLoss
from deepmetric.losses.normalized_softmax_loss import NormalizedSoftmaxLoss
from deepmetric.losses.p2s_grad_loss import P2SGradLoss
from deepmetric.losses.sphereface_loss import SphereFaceLoss
from deepmetric.losses.subcenter_arcface_loss import SubCenterArcFaceLoss
from deepmetric.losses.triplet_margin_loss import TripletMarginLoss
from reference import classification_losses_ref as R

C, D = 5, 6


def _batch(n=14, d=D, classes=C, dtype=torch.float64):
    return torch.randn(n, d, dtype=dtype), torch.randint(0, classes, (n,))


def _tuple():
    return (torch.tensor([0, 1, 1, 3]), torch.tensor([2, 2, 5, 4]), torch.tensor([6, 7, 8, 9]))


def _float64(loss_fn):
    return loss_fn.double()


# ------------------------------------------------------------------ values vs loop references
MARGIN_CASES = [
    ("lsoftmax", LargeMarginSoftmaxLoss, {}),
    ("lsoftmax", LargeMarginSoftmaxLoss, {"margin": 1, "scale": 2.0}),
    ("lsoftmax", LargeMarginSoftmaxLoss, {"margin": 3.9, "scale": 0.5}),
    ("lsoftmax", LargeMarginSoftmaxLoss, {"margin": 7}),
    ("sphereface", SphereFaceLoss, {}),
    ("sphereface", SphereFaceLoss, {"margin": 2, "scale": 3.0}),
    ("arcface", ArcFaceLoss, {}),
    ("arcface", ArcFaceLoss, {"margin": 60.0, "scale": 10.0}),
    ("arcface", ArcFaceLoss, {"margin": 150.0, "scale": 5.0}),
    ("arcface", ArcFaceLoss, {"margin": 200.0, "scale": 5.0}),
    ("cosface", CosFaceLoss, {}),
    ("cosface", CosFaceLoss, {"margin": 0.1, "scale": 8.0}),
]


@pytest.mark.parametrize(("kind", "cls", "kwargs"), MARGIN_CASES)
@pytest.mark.parametrize("mined", [False, True])
def test_margin_losses_match_reference(kind, cls, kwargs, mined):
    x, y = _batch()
    loss_fn = _float64(cls(C, D, **kwargs))
    t = _tuple() if mined else None
    expected = R.margin_softmax_loss(
        x, y, loss_fn.W, kind=kind, margin=loss_fn.margin, scale=loss_fn.scale, indices_tuple=t
    )
    assert loss_fn(x, y, t).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("sub_centers", [1, 3])
def test_sub_center_arcface_matches_reference(sub_centers):
    x, y = _batch()
    loss_fn = _float64(SubCenterArcFaceLoss(C, D, sub_centers=sub_centers, margin=20, scale=16))
    for t in (None, _tuple()):
        expected = R.margin_softmax_loss(
            x,
            y,
            loss_fn.W,
            kind="arcface",
            margin=math.radians(20),
            scale=16,
            indices_tuple=t,
            sub_centers=sub_centers,
        )
        assert loss_fn(x, y, t).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("distance", [None, distances.LpDistance()])
@pytest.mark.parametrize("mined", [False, True])
def test_normalized_softmax_matches_reference(distance, mined):
    x, y = _batch()
    loss_fn = _float64(NormalizedSoftmaxLoss(C, D, temperature=0.3, distance=distance))
    t = _tuple() if mined else None
    kind = "cos" if distance is None else "l2"
    expected = R.normalized_softmax_loss(
        x, y, loss_fn.W, temperature=0.3, indices_tuple=t, kind=kind
    )
    assert loss_fn(x, y, t).item() == pytest.approx(expected, rel=1e-9)


def test_p2sgrad_matches_reference_and_renormalises():
    x, y = _batch()
    loss_fn = _float64(P2SGradLoss(D, C))
    ones = torch.ones(C, dtype=torch.float64)
    torch.testing.assert_close(loss_fn.weight.norm(dim=0), ones, rtol=0, atol=1e-6)
    with torch.no_grad():
        loss_fn.weight.mul_(3.0)  # e.g. after an optimizer step
    value = loss_fn(x, y).item()
    torch.testing.assert_close(loss_fn.weight.norm(dim=0), ones, rtol=0, atol=1e-6)
    assert value == pytest.approx(R.p2sgrad_loss(x, y, loss_fn.weight), rel=1e-9)


def test_empty_mining_result_weights_everything():
    x, y = _batch()
    empty = tuple(torch.empty(0, dtype=torch.long) for _ in range(3))
    for loss_fn in (ArcFaceLoss(C, D), NormalizedSoftmaxLoss(C, D), LargeMarginSoftmaxLoss(C, D)):
        loss_fn = _float64(loss_fn)
        assert loss_fn(x, y, empty).item() == pytest.approx(loss_fn(x, y).item(), rel=1e-12)


def test_pair_tuple_weights():
    x, y = _batch()
    pairs = (torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([0]), torch.tensor([3]))
    loss_fn = _float64(CosFaceLoss(C, D))
    expected = R.margin_softmax_loss(
        x, y, loss_fn.W, kind="cosface", margin=0.35, scale=64, indices_tuple=pairs
    )
    assert loss_fn(x, y, pairs).item() == pytest.approx(expected, rel=1e-9)


# ------------------------------------------------------------------ parameters and units
@pytest.mark.parametrize(
    ("cls", "defaults"),
    [
        (LargeMarginSoftmaxLoss, {"margin": 4, "scale": 1}),
        (SphereFaceLoss, {"margin": 4, "scale": 1}),
        (ArcFaceLoss, {"margin": math.radians(28.6), "scale": 64}),
        (CosFaceLoss, {"margin": 0.35, "scale": 64}),
        (SubCenterArcFaceLoss, {"margin": math.radians(28.6), "scale": 64, "sub_centers": 3}),
    ],
)
def test_defaults_units_and_weight_shape(cls, defaults):
    loss_fn = cls(C, D)
    for name, value in defaults.items():
        assert getattr(loss_fn, name) == pytest.approx(value)
    k = defaults.get("sub_centers", 1)
    assert loss_fn.num_classes == C
    assert dict(loss_fn.named_parameters()).keys() == {"W"}
    assert loss_fn.W.shape == (D, C * k) and loss_fn.W.dtype == torch.float32
    assert isinstance(loss_fn.distance, distances.CosineSimilarity)
    assert isinstance(loss_fn.reducer, reducers.MeanReducer)


def test_large_margin_truncates_margin_to_int():
    assert LargeMarginSoftmaxLoss(C, D, margin=3.7).margin == 3


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: ArcFaceLoss(C, D), "W"),
        (lambda: NormalizedSoftmaxLoss(C, D), "W"),
        (lambda: SubCenterArcFaceLoss(C, D, sub_centers=2), "W"),
    ],
)
def test_default_init_is_standard_normal_in_call_order(make, name):
    torch.manual_seed(3)
    param = getattr(make(), name)
    torch.manual_seed(3)
    expected = torch.empty(param.shape).normal_()
    assert torch.equal(param.detach(), expected)


def test_p2sgrad_init_is_uniform_then_unit_columns():
    torch.manual_seed(3)
    loss_fn = P2SGradLoss(D, C)
    torch.manual_seed(3)
    raw = torch.empty(D, C).uniform_(-1, 1)
    torch.testing.assert_close(loss_fn.weight.detach(), raw / raw.norm(dim=0))
    assert (loss_fn.in_dim, loss_fn.out_dim) == (D, C)


def test_weight_init_func_is_used():
    loss_fn = ArcFaceLoss(C, D, weight_init_func=lambda w: w.fill_(0.5))
    assert torch.all(loss_fn.W == 0.5)


def test_normalized_softmax_stores_sizes():
    loss_fn = NormalizedSoftmaxLoss(C, D, temperature=0.1)
    assert (loss_fn.num_classes, loss_fn.embedding_size, loss_fn.temperature) == (C, D, 0.1)
    assert isinstance(loss_fn.distance, distances.DotProductSimilarity)


def test_cosface_margin_and_scale_are_keyword_only():
    with pytest.raises(TypeError):
        CosFaceLoss(C, D, 0.2)  # type: ignore[misc]
    assert CosFaceLoss(num_classes=C, embedding_size=D, margin=0.2).margin == 0.2


def test_sub_center_accepts_positional_and_honours_kwargs():
    reg = regularizers.RegularFaceRegularizer()
    loss_fn = SubCenterArcFaceLoss(
        C,
        D,
        sub_centers=2,
        reducer=reducers.SumReducer(),
        weight_regularizer=reg,
        weight_init_func=lambda w: w.fill_(1.0),
        collect_stats=True,
    )
    assert isinstance(loss_fn.reducer, reducers.MultipleReducers)
    assert isinstance(loss_fn.reducer.reducers["loss"], reducers.SumReducer)
    assert loss_fn.weight_regularizer is reg and loss_fn.collect_stats
    assert torch.all(loss_fn.W == 1.0)
    assert SubCenterArcFaceLoss(num_classes=C, embedding_size=D).W.shape == (D, 3 * C)


def test_stats_avg_angle_in_degrees():
    x, y = _batch()
    for cls in (ArcFaceLoss, CosFaceLoss, LargeMarginSoftmaxLoss):
        loss_fn = _float64(cls(C, D, collect_stats=True))
        loss_fn(x, y)
        w = torch.nn.functional.normalize(loss_fn.W.detach(), dim=0)
        cos = torch.nn.functional.normalize(x, dim=1) @ w
        expected = torch.rad2deg(torch.acos(cos[torch.arange(len(y)), y])).mean()
        assert float(loss_fn.avg_angle) == pytest.approx(float(expected), rel=1e-9)
    assert getattr(ArcFaceLoss(C, D, collect_stats=False), "avg_angle", None) is None


# ------------------------------------------------------------------ get_logits
def test_get_logits_values_and_shapes():
    x, _ = _batch()
    xn = torch.nn.functional.normalize(x, dim=1)
    for cls, kwargs in [(ArcFaceLoss, {}), (CosFaceLoss, {"scale": 3.0})]:
        loss_fn = _float64(cls(C, D, **kwargs))
        cos = xn @ torch.nn.functional.normalize(loss_fn.W, dim=0)
        torch.testing.assert_close(loss_fn.get_logits(x), cos * loss_fn.scale)
    lm = _float64(LargeMarginSoftmaxLoss(C, D, scale=2.0))
    expected = (x @ lm.W) * 2.0  # cos * ||w|| * ||x|| * scale
    torch.testing.assert_close(lm.get_logits(x), expected)
    sf = _float64(SphereFaceLoss(C, D, scale=2.0))
    expected = xn @ torch.nn.functional.normalize(sf.W, dim=0) * x.norm(dim=1, keepdim=True) * 2
    torch.testing.assert_close(sf.get_logits(x), expected)
    sc = _float64(SubCenterArcFaceLoss(C, D, sub_centers=2))
    cos = (xn @ torch.nn.functional.normalize(sc.W, dim=0)).view(len(x), C, 2).amax(2)
    torch.testing.assert_close(sc.get_logits(x), cos * 64)
    ns = _float64(NormalizedSoftmaxLoss(C, D, temperature=0.5))
    cos = xn @ torch.nn.functional.normalize(ns.W, dim=0)
    torch.testing.assert_close(ns.get_logits(x), cos / 0.5)
    p2 = _float64(P2SGradLoss(D, C))
    torch.testing.assert_close(p2.get_logits(x), (xn @ p2.weight).clamp(-1, 1))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_get_logits_keeps_dtype(dtype):
    x, _ = _batch(dtype=dtype)
    for loss_fn in (ArcFaceLoss(C, D), NormalizedSoftmaxLoss(C, D), P2SGradLoss(D, C)):
        out = loss_fn.get_logits(x)
        assert out.shape == (len(x), C) and out.dtype == dtype
        assert all(p.dtype == torch.float32 for p in loss_fn.parameters())


# ------------------------------------------------------------------ weight regularizer
def test_regular_face_weight_regularizer_on_arcface():
    x, y = _batch()
    plain = _float64(ArcFaceLoss(C, D))
    with_reg = _float64(
        ArcFaceLoss(
            C, D, weight_regularizer=regularizers.RegularFaceRegularizer(), weight_reg_weight=0.3
        )
    )
    with_reg.W.data.copy_(plain.W.data)
    assert isinstance(with_reg.reducer, reducers.MultipleReducers)
    assert set(with_reg.reducer.reducers) == {"loss", "weight_reg_loss"}
    assert "weight_reg_weight" in with_reg._record_these
    expected = plain(x, y).item() + 0.3 * R.regular_face(plain.W.t())
    assert with_reg(x, y).item() == pytest.approx(expected, rel=1e-9)
    raw = copy.deepcopy(with_reg)
    raw.set_reducer(reducers.DoNothingReducer())
    out = raw(x, y)
    assert set(out) == {"loss", "weight_reg_loss"}
    assert out["weight_reg_loss"]["reduction_type"] == "already_reduced"
    # the regularizer's gradient reaches W
    with_reg(x, y).backward()
    assert with_reg.W.grad is not None and torch.isfinite(with_reg.W.grad).all()


def test_weight_regularizer_receives_one_row_per_class():
    seen = []

    class Spy(regularizers.LpRegularizer):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return super().forward(x)

    x, y = _batch()
    for loss_fn in (
        ArcFaceLoss(C, D, weight_regularizer=Spy()),
        NormalizedSoftmaxLoss(C, D, weight_regularizer=Spy()),
    ):
        loss_fn(x.float(), y)
    assert seen == [(C, D), (C, D)]


# ------------------------------------------------------------------ trainable parameters
def test_trainable_parameters():
    loss_fn = ArcFaceLoss(C, D)
    assert loss_fn.has_trainable_parameters()
    assert [(n, p is loss_fn.W) for n, p in loss_fn.trainable_parameters()] == [("W", True)]
    assert not TripletMarginLoss().has_trainable_parameters()
    assert TripletMarginLoss().trainable_parameters() == []
    loss_fn.W.requires_grad_(False)
    assert not loss_fn.has_trainable_parameters() and loss_fn.trainable_parameters() == []


def test_trainable_parameters_include_regularizer_parameters():
    class Learned(regularizers.LpRegularizer):
        def __init__(self):
            super().__init__()
            self.gain = torch.nn.Parameter(torch.ones(()))

    loss_fn = P2SGradLoss(D, C, embedding_regularizer=Learned())
    names = [n for n, _ in loss_fn.trainable_parameters()]
    assert names == ["weight", "embedding_regularizer.gain"]
    triplet = TripletMarginLoss(embedding_regularizer=Learned())
    assert triplet.has_trainable_parameters()


def test_forgotten_optimizer_is_detectable():
    """What a trainer does: the loss has parameters that no optimizer holds."""
    model = torch.nn.Linear(D, D)
    loss_fn = ArcFaceLoss(C, D)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    held = {id(p) for group in opt.param_groups for p in group["params"]}
    missing = [n for n, p in loss_fn.trainable_parameters() if id(p) not in held]
    assert missing == ["W"]


# ------------------------------------------------------------------ gradients
def test_gradcheck_kernels():
    c = torch.tensor([-0.99, -0.9, -0.3, 0.0, 0.4, 0.95], dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: F.arcface_target(t, margin=0.5), (c,))
    assert torch.autograd.gradcheck(lambda t: F.arcface_target(t, margin=2.0), (c,))
    for m in (1, 2, 3, 4):
        assert torch.autograd.gradcheck(lambda t, m=m: F.large_margin_target(t, margin=m), (c,))
    assert torch.autograd.gradcheck(lambda t: F.cos_multiple_angle(t, 5), (c,))
    cos = (torch.rand(5, 4, dtype=torch.float64) * 2 - 1).requires_grad_()
    target = (torch.rand(5, dtype=torch.float64) * 2 - 1).requires_grad_()
    labels = torch.tensor([0, 3, 1, 1, 2])
    w = torch.rand(5, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: F.margin_cross_entropy(a, labels, b, scale=7.0, weights=w), (cos, target)
    )
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.nn.functional.normalize(torch.randn(3, 4, dtype=torch.float64), dim=0)
    assert torch.autograd.gradcheck(lambda e: F.p2sgrad_terms(e, weight, labels), (x,))


@pytest.mark.parametrize("scale", [30.0, 0.0, -3.0])
def test_fused_cross_entropy_equals_general_path(scale):
    cos = torch.rand(7, 5, dtype=torch.float64) * 2 - 1
    labels = torch.tensor([0, 4, 2, 2, 1, 3, 0])
    target = torch.rand(7, dtype=torch.float64) - 0.5
    w = torch.rand(7, dtype=torch.float64)
    a = (cos.clone().requires_grad_(), target.clone().requires_grad_())
    b = (cos.clone().requires_grad_(), target.clone().requires_grad_())
    fused = F.margin_cross_entropy(*a[:1], labels, a[1], scale=scale, weights=w)
    logits = F.replace_target_logits(b[0], labels, b[1]) * scale
    general = F.weighted_cross_entropy(logits, labels, w)
    torch.testing.assert_close(fused, general)
    fused.sum().backward()
    general.sum().backward()
    torch.testing.assert_close(a[0].grad, b[0].grad)
    torch.testing.assert_close(a[1].grad, b[1].grad)


def test_subclass_overriding_scale_logits_takes_general_path():
    class HalfScale(ArcFaceLoss):
        def scale_logits(self, logits, *_):
            return logits * self.scale / 2

    x, y = _batch()
    base = _float64(ArcFaceLoss(C, D, scale=32))
    custom = _float64(HalfScale(C, D, scale=64))
    custom.W.data.copy_(base.W.data)
    assert custom(x, y).item() == pytest.approx(base(x, y).item(), rel=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LargeMarginSoftmaxLoss(C, 4, margin=3, scale=2),
        lambda: SphereFaceLoss(C, 4),
        lambda: ArcFaceLoss(C, 4, scale=4),
        lambda: CosFaceLoss(C, 4, scale=4),
        lambda: SubCenterArcFaceLoss(C, 4, sub_centers=2, scale=4),
        lambda: NormalizedSoftmaxLoss(C, 4, temperature=0.5),
        lambda: P2SGradLoss(4, C),
    ],
)
def test_gradcheck_modules(make):
    loss_fn = _float64(make())
    x = torch.randn(10, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, C, (10,))
    ((name, param),) = loss_fn.named_parameters()
    if isinstance(loss_fn, P2SGradLoss):  # forward renormalises in place: embeddings only
        assert torch.autograd.gradcheck(lambda e: loss_fn(e, y), (x,))
        return
    w = param.detach().clone().requires_grad_()
    for t in (None, _tuple()):

        def run(e, weight, t=t):
            return torch.func.functional_call(loss_fn, {name: weight}, (e, y, t))

        assert torch.autograd.gradcheck(run, (x, w))


# ------------------------------------------------------------------ half precision
HALF_MAKERS = {
    "lsoftmax": lambda: LargeMarginSoftmaxLoss(C, D),
    "sphereface": lambda: SphereFaceLoss(C, D),
    "arcface": lambda: ArcFaceLoss(C, D),
    "subcenter": lambda: SubCenterArcFaceLoss(C, D),
    "cosface": lambda: CosFaceLoss(C, D),
    "normalized": lambda: NormalizedSoftmaxLoss(C, D),
    "p2sgrad": lambda: P2SGradLoss(D, C),
}


@pytest.mark.parametrize("name", sorted(HALF_MAKERS))
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes_finite_and_close_to_float64(name, dtype):
    loss_fn = HALF_MAKERS[name]()
    x, y = _batch(n=32)
    reference = copy.deepcopy(loss_fn).double()(x, y).item()
    e = x.to(dtype).requires_grad_()
    out = loss_fn(e, y)
    assert out.dtype == dtype
    out.backward()
    assert torch.isfinite(e.grad).all()
    params = [p for p in loss_fn.parameters()]
    assert all(p.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in params)
    rel = {torch.float16: 5e-3, torch.bfloat16: 3e-2}.get(dtype, 1e-5)
    assert out.double().item() == pytest.approx(reference, rel=rel, abs=rel)


@pytest.mark.parametrize(
    "cls", [ArcFaceLoss, SubCenterArcFaceLoss, CosFaceLoss, LargeMarginSoftmaxLoss, SphereFaceLoss]
)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_finite_at_cosine_plus_minus_one(cls, dtype):
    """Embeddings exactly on (and opposite to) their class vector: PML's ArcFace gives NaN."""
    loss_fn = cls(C, D)
    if dtype == torch.float64:
        loss_fn = loss_fn.double()
    w = loss_fn.W.detach()[:, :: getattr(loss_fn, "sub_centers", 1)].t()  # one vector per class
    x = torch.cat([w, -w, w * 3]).to(dtype).requires_grad_()
    y = torch.arange(C).repeat(3)
    out = loss_fn(x, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    assert torch.isfinite(loss_fn.W.grad).all()


def test_arcface_target_at_the_poles():
    c = torch.tensor([-1.0, 1.0, 1.0 + 1e-7, -1.0 - 1e-7], requires_grad=True)
    out = F.arcface_target(c, margin=0.5)
    out.sum().backward()
    assert torch.isfinite(c.grad).all()
    expected = torch.tensor([-1 - 0.5 * math.sin(0.5), math.cos(0.5)])
    torch.testing.assert_close(out[:2].detach(), expected, atol=1e-3, rtol=0)


# ------------------------------------------------------------------ SubCenter outliers
def test_get_outliers_matches_reference():
    torch.manual_seed(1)
    loss_fn = _float64(SubCenterArcFaceLoss(4, 3, sub_centers=3))
    x = torch.randn(60, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (60,))  # class 3 absent
    for threshold in (40, 60, 75, 120):
        outliers, centers = loss_fn.get_outliers(x, y, threshold=threshold)
        expected, dominant = R.sub_center_outliers(
            x, y, loss_fn.W, sub_centers=3, threshold_deg=threshold
        )
        assert outliers.tolist() == expected and outliers.dtype == torch.long
        assert centers.shape == (3, 4) and not centers.requires_grad
        for c, k in dominant.items():
            torch.testing.assert_close(centers[:, c], loss_fn.W.detach()[:, c * 3 + k])
        assert torch.all(centers[:, 3] == 0)
    pair = loss_fn.get_outliers(x, y, return_dominant_centers=False)
    assert isinstance(pair, tuple) and len(pair) == 2
    none, _ = loss_fn.get_outliers(x, y, threshold=180)
    assert none.numel() == 0 and none.dtype == torch.long


def test_get_outliers_ties_pick_lowest_sub_center():
    loss_fn = _float64(SubCenterArcFaceLoss(1, 2, sub_centers=2))
    loss_fn.W.data = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 0.1], [0.1, 1.0]], dtype=torch.float64)  # one vote each
    outliers, centers = loss_fn.get_outliers(x, torch.tensor([0, 0]), threshold=30)
    assert outliers.tolist() == [1]
    torch.testing.assert_close(centers[:, 0], torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_get_outliers_bad_input():
    loss_fn = SubCenterArcFaceLoss(C, D)
    with pytest.raises(ValueError, match=r"labels. in \[0, 5\)"):
        loss_fn.get_outliers(torch.randn(3, D), torch.tensor([0, 1, 5]))
    with pytest.raises(ValueError, match=r"shape \(N,\) with N=3"):
        loss_fn.get_outliers(torch.randn(3, D), torch.tensor([0, 1]))


# ------------------------------------------------------------------ misc behaviour
def test_copy_pickle_state_dict_roundtrip():
    x, y = _batch(dtype=torch.float32)
    makers = [
        lambda: ArcFaceLoss(C, D),
        lambda: SubCenterArcFaceLoss(C, D),
        lambda: P2SGradLoss(D, C),
        lambda: NormalizedSoftmaxLoss(C, D, weight_regularizer=regularizers.LpRegularizer()),
    ]
    for make in makers:
        loss_fn = make()
        expected = loss_fn(x, y)
        for clone in (copy.deepcopy(loss_fn), pickle.loads(pickle.dumps(loss_fn))):
            torch.testing.assert_close(clone(x, y), expected)
        fresh = make()
        fresh.load_state_dict(loss_fn.state_dict())
        torch.testing.assert_close(fresh(x, y), expected)


def test_repr_shows_hyperparameters():
    text = repr(SubCenterArcFaceLoss(C, D, sub_centers=2))
    assert "num_classes=5" in text and "sub_centers=2" in text and "scale=64" in text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.needs_cuda
def test_parameters_follow_the_embeddings_device():
    loss_fn = ArcFaceLoss(C, D)
    x, y = _batch(dtype=torch.float16)
    out = loss_fn(x.cuda(), y)
    assert loss_fn.W.device.type == "cuda" and loss_fn.W.dtype == torch.float32
    out.backward()
    assert loss_fn.W.grad.device.type == "cuda"


# ------------------------------------------------------------------ bad input
ALL_MAKERS = dict(HALF_MAKERS)


@pytest.mark.parametrize("name", sorted(ALL_MAKERS))
def test_bad_labels_and_sizes(name):
    loss_fn = ALL_MAKERS[name]()
    x, y = _batch(dtype=torch.float32)
    with pytest.raises(
        ValueError,
        match=r"expected `labels` in \[0, 5\) \(num_classes=5\), got "
        r"labels in \[0, 5\]",
    ):
        loss_fn(x, torch.cat([y[:-1], torch.tensor([5])]))
    with pytest.raises(ValueError, match=r"labels in \[-1, "):
        loss_fn(x, torch.cat([y[:-1], torch.tensor([-1])]))
    size = "descriptors_dim" if name == "p2sgrad" else "embedding_size"
    with pytest.raises(ValueError, match=rf"shape \(N, 6\) \({size}=6\), got shape \(14, 7\)"):
        loss_fn(torch.randn(14, 7), y)
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        loss_fn.get_logits(torch.randn(3, 4))
    with pytest.raises(ValueError, match="ref_emb"):
        loss_fn(x, y, ref_emb=x.clone(), ref_labels=y)
    with pytest.raises(ValueError, match="labels"):
        loss_fn(x)


def test_indices_tuple_rejected_by_p2sgrad():
    x, y = _batch(dtype=torch.float32)
    with pytest.raises(ValueError, match="indices_tuple"):
        P2SGradLoss(D, C)(x, y, _tuple())


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (
            lambda: ArcFaceLoss(C, D, distance=distances.DotProductSimilarity()),
            ValueError,
            "expected `distance` to be a CosineSimilarity, got DotProductSimilarity",
        ),
        (
            lambda: SubCenterArcFaceLoss(C, D, distance=distances.LpDistance()),
            ValueError,
            "CosineSimilarity",
        ),
        (
            lambda: LargeMarginSoftmaxLoss(C, D, margin=0.5),
            ValueError,
            r"`margin` to be an integer >= 1, got 0.5",
        ),
        (lambda: ArcFaceLoss(0, D), ValueError, "`num_classes` >= 1, got 0"),
        (lambda: ArcFaceLoss(C, 2.5), TypeError, "`embedding_size` to be a positive int"),
        (lambda: ArcFaceLoss(True, D), TypeError, "`num_classes` to be a positive int"),
        (lambda: SubCenterArcFaceLoss(C, D, sub_centers=0), ValueError, "`sub_centers` >= 1"),
        (lambda: NormalizedSoftmaxLoss(C, D, temperature=0), ValueError, "temperature"),
        (lambda: P2SGradLoss(0, C), ValueError, "`descriptors_dim` >= 1"),
        (lambda: ArcFaceLoss(C, D, reducer="mean"), TypeError, "BaseReducer"),
    ],
)
def test_bad_constructor_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_numpy_integer_sizes_are_accepted():
    np = pytest.importorskip("numpy")
    loss_fn = ArcFaceLoss(np.int64(C), np.int64(D))
    assert loss_fn.W.shape == (D, C) and isinstance(loss_fn.num_classes, int)


@pytest.mark.parametrize("name", sorted(ALL_MAKERS))
def test_int32_labels(name):
    loss_fn = ALL_MAKERS[name]()
    x, y = _batch(dtype=torch.float32)
    torch.testing.assert_close(loss_fn(x, y.int()), loss_fn(x, y))
    if name == "subcenter":
        assert (
            loss_fn.get_outliers(x, y.int())[0].tolist() == loss_fn.get_outliers(x, y)[0].tolist()
        )


def test_cos_multiple_angle():
    theta = torch.linspace(0, math.pi, 9, dtype=torch.float64)
    for m in range(6):
        torch.testing.assert_close(F.cos_multiple_angle(torch.cos(theta), m), torch.cos(m * theta))
    with pytest.raises(ValueError, match="expected m >= 0, got -1"):
        F.cos_multiple_angle(torch.cos(theta), -1)
