"""AngularLoss, IntraPairVarianceLoss, SignalToNoiseRatioContrastiveLoss, NPairsLoss, InstanceLoss
and ThresholdConsistentMarginLoss: loop references, gradients, dtypes, zero rules, tuples, ref_emb,
distances and errors. (MarginLoss and DynamicSoftMarginLoss have their own files.)"""

from __future__ import annotations

import math

import pytest
import torch

from conftest import ALL_DTYPES, TOLERANCES
from deepmetric import distances, reducers
from deepmetric._types import PairMasks
from deepmetric.functional import angular_losses as FA
from deepmetric.functional import tuples as T
from deepmetric.losses.angular_loss import AngularLoss
from deepmetric.losses.instance_loss import InstanceLoss
from deepmetric.losses.intra_pair_variance_loss import IntraPairVarianceLoss
from deepmetric.losses.n_pairs_loss import NPairsLoss
from deepmetric.losses.signal_to_noise_ratio_losses import SignalToNoiseRatioContrastiveLoss
from deepmetric.losses.tcm_loss import ThresholdConsistentMarginLoss
from reference import more_pair_losses_ref as R
from reference.pairs import all_pairs, all_triplets


def _batch(n=12, d=6, classes=3, dtype=torch.float64, scale=1.0):
    return torch.randn(n, d, dtype=dtype) * scale, torch.randint(0, classes, (n,))


def _tensors(rows):
    return tuple(torch.tensor(c, dtype=torch.long) for c in zip(*rows, strict=True))


def _triplet_tuple(y, step=5):
    trips = all_triplets(y.tolist(), y.tolist(), True)[::step]
    return trips, _tensors(trips)


def _pair_tuple(y, step=3):
    pos, neg = all_pairs(y.tolist(), y.tolist(), True)
    pos, neg = pos[::step], neg[::step]
    return (pos, neg), (*_tensors(pos), *_tensors(neg))


# -------------------------------------------------------------------------------- AngularLoss
@pytest.mark.parametrize("alpha", [40, 20, 55])
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_angular_matches_reference(alpha, scale):
    x, y = _batch(scale=scale)
    expected = R.mean(R.angular_terms(x, y, alpha))
    assert AngularLoss(alpha)(x, y).item() == pytest.approx(expected, rel=1e-10)
    assert AngularLoss(alpha).alpha.item() == pytest.approx(math.radians(alpha))


def test_angular_terms_per_pair_and_blocks():
    x, y = _batch(n=16)
    out = AngularLoss(reducer=reducers.DoNothingReducer())(x, y)["loss"]
    a1, p = out["indices"]
    pos, _ = all_pairs(y.tolist(), y.tolist(), True)
    assert list(zip(a1.tolist(), p.tolist(), strict=True)) == pos
    assert out["reduction_type"] == "pos_pair" and out["losses"].shape == (len(pos),)
    expected = torch.tensor(R.angular_terms(x, y), dtype=torch.float64)
    torch.testing.assert_close(out["losses"], expected, rtol=1e-10, atol=1e-12)
    # tiny blocks give the same terms
    xn = torch.nn.functional.normalize(x)
    for budget in (5, 10_000):
        terms = FA.angular_pair_terms(
            xn, xn, x, a1, p, y, y, alpha=math.radians(40), max_block_elements=budget
        )
        torch.testing.assert_close(terms, expected, rtol=1e-10, atol=1e-12)


def test_angular_gradcheck():
    x, y = _batch(n=8, d=4)
    ref, ref_y = _batch(n=7, d=4)
    x.requires_grad_(True)
    ref.requires_grad_(True)
    loss_fn = AngularLoss(alpha=35)
    assert torch.autograd.gradcheck(lambda e: loss_fn(e, y), (x,))
    assert torch.autograd.gradcheck(
        lambda e, r: loss_fn(e, y, ref_emb=r, ref_labels=ref_y), (x, ref)
    )
    # the kernel alone, in blocks of 2 pairs, w.r.t. all three inputs
    a, p = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([1, 0, 3, 2, 4])
    u = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda e, q, r: FA.angular_pair_terms(
            e, q, r, a, p, y, ref_y, alpha=0.6, max_block_elements=14
        ),
        (x, u, ref),
    )


def test_angular_ref_emb_and_negatives_from_labels():
    x, y = _batch()
    ref, ref_y = _batch(n=9, scale=2.0)
    expected = R.mean(R.angular_terms(x, y, ref=ref, ref_labels=ref_y))
    out = AngularLoss()(x, y, ref_emb=ref, ref_labels=ref_y)
    assert out.item() == pytest.approx(expected, rel=1e-10)
    # a tuple's positives are used; its negatives are not (all label negatives are)
    trips, t = _triplet_tuple(y)
    pos_pairs = [(a, p) for a, p, _ in trips]
    expected = R.mean(R.angular_terms(x, y, pos_pairs=pos_pairs))
    assert AngularLoss()(x, y, t).item() == pytest.approx(expected, rel=1e-10)
    (pos, _), pairs = _pair_tuple(y)
    expected = R.mean(R.angular_terms(x, y, pos_pairs=pos))
    assert AngularLoss()(x, y, pairs).item() == pytest.approx(expected, rel=1e-10)


def test_angular_pair_masks_equal_all_pairs():
    x, y = _batch()
    masks = PairMasks(*T.get_matches_and_diffs(y))
    torch.testing.assert_close(AngularLoss()(x, y, masks), AngularLoss()(x, y))


def test_angular_average_angle_stat():
    x, y = _batch()
    loss_fn = AngularLoss(collect_stats=True)
    loss_fn(x, y)
    assert float(loss_fn.average_angle) == pytest.approx(R.angular_average_angle(x, y), rel=1e-9)
    assert getattr(AngularLoss(collect_stats=False), "average_angle", None) is None


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_angular_dtypes(dtype):
    x, y = _batch(n=24, d=8, classes=4)
    expected = R.mean(R.angular_terms(x, y))
    e = x.to(dtype).requires_grad_()
    out = AngularLoss()(e, y)
    assert out.dtype == dtype
    out.backward()
    assert e.grad.dtype == dtype and torch.isfinite(e.grad).all()
    rtol, atol = TOLERANCES[dtype]
    assert out.double().item() == pytest.approx(expected, rel=rtol * 10, abs=atol * 10)


def test_angular_zero_rules():
    # one class (no negative) / all singletons (no positive) / a pair tuple without negatives
    for labels in ([0, 0, 0, 0], [0, 1, 2, 3], [4]):
        x = torch.randn(len(labels), 3, requires_grad=True)
        out = AngularLoss()(x, torch.tensor(labels))
        assert out.item() == 0 and out.requires_grad
        out.backward()
        assert torch.equal(x.grad, torch.zeros_like(x))
    x, y = _batch()
    empty = torch.tensor([], dtype=torch.long)
    t = (torch.tensor([0]), torch.tensor([1]), empty, empty)
    assert AngularLoss()(x, y, t).item() == 0


def test_angular_errors():
    x, y = _batch()
    for bad in (
        distances.CosineSimilarity(),
        distances.LpDistance(power=2),
        distances.LpDistance(normalize_embeddings=False),
        distances.LpDistance(p=1),
        distances.SNRDistance(),
    ):
        with pytest.raises(ValueError, match=r"LpDistance\(p=2, power=1"):
            AngularLoss(distance=bad)
    with pytest.raises(ValueError, match="`labels`"):
        AngularLoss()(x, indices_tuple=_triplet_tuple(y)[1])
    with pytest.raises(ValueError, match="`ref_labels` together with a separate `ref_emb`"):
        AngularLoss()(x, y, ref_emb=torch.randn(12, 6, dtype=torch.float64))


# ---------------------------------------------------------------------- IntraPairVarianceLoss
IPV_KINDS = {
    "cos": None,
    "l2": distances.LpDistance(),
    "dot": distances.DotProductSimilarity(normalize_embeddings=False),
}


@pytest.mark.parametrize("kind", sorted(IPV_KINDS))
@pytest.mark.parametrize("eps", [(0.01, 0.01), (0.2, 0.05)])
def test_intra_pair_variance_matches_reference(kind, eps):
    x, y = _batch()
    loss_fn = IntraPairVarianceLoss(*eps, distance=IPV_KINDS[kind])
    expected = R.intra_pair_variance(x, y, *eps, kind=kind)
    assert loss_fn(x, y).item() == pytest.approx(expected, rel=1e-10)


def test_intra_pair_variance_default_distance_is_cosine():
    assert isinstance(IntraPairVarianceLoss().distance, distances.CosineSimilarity)


def test_intra_pair_variance_tuples_and_ref():
    x, y = _batch()
    trips, t = _triplet_tuple(y)
    pairs = ([(a, p) for a, p, _ in trips], [(a, n) for a, _, n in trips])
    expected = R.intra_pair_variance(x, y, pairs=pairs)
    assert IntraPairVarianceLoss()(x, y, t).item() == pytest.approx(expected, rel=1e-10)
    assert IntraPairVarianceLoss()(x, indices_tuple=t).item() == pytest.approx(expected, rel=1e-10)
    pairs, t = _pair_tuple(y)
    expected = R.intra_pair_variance(x, y, pairs=pairs)
    assert IntraPairVarianceLoss()(x, indices_tuple=t).item() == pytest.approx(expected, rel=1e-10)
    ref, ref_y = _batch(n=9)
    expected = R.intra_pair_variance(x, y, ref=ref, ref_labels=ref_y)
    out = IntraPairVarianceLoss()(x, y, ref_emb=ref, ref_labels=ref_y)
    assert out.item() == pytest.approx(expected, rel=1e-10)


def test_intra_pair_variance_gradcheck_and_zero():
    x, y = _batch(n=8, d=4)
    x.requires_grad_(True)
    for kind in ("cos", "l2"):
        loss_fn = IntraPairVarianceLoss(0.05, 0.05, distance=IPV_KINDS[kind])
        assert torch.autograd.gradcheck(lambda e, f=loss_fn: f(e, y), (x,))
    x = torch.randn(2, 3, requires_grad=True)  # one positive pair, one negative side: zero
    out = IntraPairVarianceLoss()(x, torch.tensor([0, 0]))
    assert out.item() == 0
    out.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    with pytest.raises(ValueError, match="`labels` or `indices_tuple`"):
        IntraPairVarianceLoss()(x)


# ---------------------------------------------------------------------------- SNR contrastive
@pytest.mark.parametrize("margins", [(0.0, 1.0), (0.3, 0.7)])
def test_snr_contrastive_matches_reference(margins):
    x, y = _batch()
    loss_fn = SignalToNoiseRatioContrastiveLoss(*margins)
    assert isinstance(loss_fn.distance, distances.SNRDistance)
    assert loss_fn(x, y).item() == pytest.approx(R.snr_contrastive(x, y, *margins), rel=1e-8)
    pairs, t = _pair_tuple(y)
    expected = R.snr_contrastive(x, y, *margins, pairs=pairs)
    assert loss_fn(x, indices_tuple=t).item() == pytest.approx(expected, rel=1e-8)
    ref, ref_y = _batch(n=9)
    expected = R.snr_contrastive(x, y, *margins, ref=ref, ref_labels=ref_y)
    out = loss_fn(x, y, ref_emb=ref, ref_labels=ref_y)
    assert out.item() == pytest.approx(expected, rel=1e-8)


def test_snr_contrastive_distance_and_gradcheck():
    with pytest.raises(ValueError, match="SNRDistance"):
        SignalToNoiseRatioContrastiveLoss(distance=distances.LpDistance())
    loss_fn = SignalToNoiseRatioContrastiveLoss(distance=distances.SNRDistance(power=2))
    x, y = _batch(n=8, d=5)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: loss_fn(e, y), (x,))


# ---------------------------------------------------------------------------------- NPairsLoss
@pytest.mark.parametrize("kind", ["dot_unit", "l2"])
def test_npairs_matches_reference(kind):
    x, y = _batch(n=20, classes=5)
    distance = None if kind == "dot_unit" else distances.LpDistance()
    loss_fn = NPairsLoss(distance=distance)
    assert loss_fn(x, y).item() == pytest.approx(R.npairs(x, y, kind), rel=1e-10)
    assert loss_fn.num_pairs == len({v for v in y.tolist() if y.tolist().count(v) > 1})


def test_npairs_tuple_gradcheck_zero_and_errors():
    x, y = _batch(n=10, d=4, classes=3)
    trips, t = _triplet_tuple(y, step=3)
    expected = R.npairs(x, y, pos_pairs=[(a, p) for a, p, _ in trips])
    assert NPairsLoss()(x, y, t).item() == pytest.approx(expected, rel=1e-10)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: NPairsLoss()(e, y), (x,))
    x1 = torch.randn(4, 3, requires_grad=True)
    loss_fn = NPairsLoss()
    out = loss_fn(x1, torch.arange(4))  # no positive pair
    assert out.item() == 0 and loss_fn.num_pairs == 0
    out.backward()
    assert torch.equal(x1.grad, torch.zeros_like(x1))
    with pytest.raises(ValueError, match="`labels`"):
        NPairsLoss()(x, indices_tuple=t)
    with pytest.raises(ValueError, match="ref_emb"):
        NPairsLoss()(x, y, ref_emb=x.detach().clone(), ref_labels=y)


# -------------------------------------------------------------------------------- InstanceLoss
@pytest.mark.parametrize("gamma", [64, 5])
def test_instance_matches_reference(gamma):
    x, y = _batch(n=10, classes=4)
    y = y * 3 + 1  # targets are label ranks, not values
    assert InstanceLoss(gamma)(x, y).item() == pytest.approx(R.instance(x, y, gamma), rel=1e-9)


def test_instance_gradcheck_and_errors():
    x, y = _batch(n=8, d=4)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: InstanceLoss(gamma=4)(e, y), (x,))
    with pytest.raises(ValueError, match="CosineSimilarity"):
        InstanceLoss(distance=distances.DotProductSimilarity())
    with pytest.raises(ValueError, match="`labels`"):
        InstanceLoss()(x)
    with pytest.raises(ValueError, match="indices_tuple"):
        InstanceLoss()(x, y, _triplet_tuple(y)[1])
    with pytest.raises(ValueError, match="ref_emb"):
        InstanceLoss()(x, y, ref_emb=x.detach().clone(), ref_labels=y)


# ----------------------------------------------------------------- ThresholdConsistentMargin
TCM_PARAMS = [
    {},
    {"lambda_plus": 0.5, "lambda_minus": 2.0, "margin_plus": 0.3, "margin_minus": 0.0},
]


@pytest.mark.parametrize("params", TCM_PARAMS)
def test_tcm_matches_reference(params):
    x, y = _batch()
    loss_fn = ThresholdConsistentMarginLoss(**params)
    assert loss_fn(x, y).item() == pytest.approx(R.tcm(x, y, **params), rel=1e-10)
    pairs, t = _pair_tuple(y)
    expected = R.tcm(x, y, pairs=pairs, **params)
    assert loss_fn(x, indices_tuple=t).item() == pytest.approx(expected, rel=1e-10)
    ref, ref_y = _batch(n=9)
    expected = R.tcm(x, y, ref=ref, ref_labels=ref_y, **params)
    out = loss_fn(x, y, ref_emb=ref, ref_labels=ref_y)
    assert out.item() == pytest.approx(expected, rel=1e-10)
    assert "margin_plus=" in repr(loss_fn)


def test_tcm_one_side_zero_and_gradcheck():
    x, y = _batch(n=8, d=4)
    # nothing violates on either side: the connected zero
    e = x.clone().requires_grad_()
    out = ThresholdConsistentMarginLoss(margin_plus=-2.0, margin_minus=2.0)(e, y)
    assert out.item() == 0
    out.backward()
    assert torch.equal(e.grad, torch.zeros_like(e))
    # only the negative side violates
    loss_fn = ThresholdConsistentMarginLoss(margin_plus=-2.0, margin_minus=-0.5)
    expected = R.tcm(x, y, margin_plus=-2.0, margin_minus=-0.5)
    assert loss_fn(x, y).item() == pytest.approx(expected, rel=1e-10)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: ThresholdConsistentMarginLoss(0.7)(v, y), (x,))


def test_tcm_errors():
    with pytest.raises(ValueError, match="CosineSimilarity"):
        ThresholdConsistentMarginLoss(distance=distances.LpDistance())
    with pytest.raises(ValueError, match="`labels` or `indices_tuple`"):
        ThresholdConsistentMarginLoss()(torch.randn(4, 3))


# ---------------------------------------------------------------------- shared dtype / zero
SIMPLE = {
    "IntraPairVarianceLoss": (IntraPairVarianceLoss, lambda x, y: R.intra_pair_variance(x, y)),
    "SNR": (SignalToNoiseRatioContrastiveLoss, lambda x, y: R.snr_contrastive(x, y)),
    "NPairsLoss": (NPairsLoss, lambda x, y: R.npairs(x, y)),
    "InstanceLoss": (lambda: InstanceLoss(gamma=8), lambda x, y: R.instance(x, y, 8)),
    "TCM": (ThresholdConsistentMarginLoss, lambda x, y: R.tcm(x, y)),
}


@pytest.mark.parametrize("name", sorted(SIMPLE))
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes(name, dtype):
    make, reference = SIMPLE[name]
    x, y = _batch(n=24, d=8, classes=4)
    e = x.to(dtype).requires_grad_()
    out = make()(e, y)
    assert out.dtype == dtype
    out.backward()
    assert torch.isfinite(e.grad).all()
    rtol, atol = TOLERANCES[dtype]
    # half inputs are rounded before the loss: compare with loose, dtype-scaled bounds
    assert out.double().item() == pytest.approx(reference(x, y), rel=rtol * 30, abs=atol * 30)


@pytest.mark.parametrize("name", sorted(SIMPLE))
@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3], [7]])
def test_degenerate_batches(name, labels):
    """One class, all singletons, a single sample: the value of the formula, and where there is
    nothing to sum, PML's connected zero (no NaN from empty means)."""
    make, reference = SIMPLE[name]
    x = torch.randn(len(labels), 5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(labels)
    out = make()(x, y)
    out.backward()
    expected = reference(x.detach(), y)
    assert out.item() == pytest.approx(expected, rel=1e-8, abs=1e-12)
    assert torch.isfinite(x.grad).all()
    if expected == 0 and name != "InstanceLoss":
        assert out.requires_grad and torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("loss_cls", [IntraPairVarianceLoss, SignalToNoiseRatioContrastiveLoss])
def test_generic_pair_zero_rule(loss_cls):
    """A tuple with at most one pair on each side gives zero (GenericPairLoss's rule), although
    the formula alone would not: here the negative similarity is < 0 (so [s - 1.01 s]_+ > 0) and
    the positive SNR distance is > 0."""
    x, _ = _batch()
    x[2] = -x[0]
    one_each = (torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), torch.tensor([2]))
    two_neg = (torch.tensor([0]), torch.tensor([1]), torch.tensor([0, 0]), torch.tensor([2, 2]))
    distance = (
        distances.DotProductSimilarity(normalize_embeddings=False)
        if loss_cls is IntraPairVarianceLoss
        else None
    )
    loss_fn = loss_cls(distance=distance)
    assert loss_fn(x, indices_tuple=one_each).item() == 0
    assert loss_fn(x, indices_tuple=two_neg).item() > 0
