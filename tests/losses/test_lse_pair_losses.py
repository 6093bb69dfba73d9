"""Circle, MultiSimilarity, SupCon, NTXent, (Generalized)LiftedStructure and TupletMargin losses
against the float64 loop references: terms, reductions, tuples, ref_emb, distances, dtypes,
gradients, zero rules and errors."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric import distances, reducers
from deepmetric.functional import lse_pair_losses as F
from deepmetric.functional.tuples import get_all_pairs_indices
from deepmetric.losses.circle_loss import CircleLoss
from deepmetric.losses.generalized_lifted_structure_loss import GeneralizedLiftedStructureLoss
from deepmetric.losses.lifted_structure_loss import LiftedStructureLoss
from deepmetric.losses.multi_similarity_loss import MultiSimilarityLoss
from deepmetric.losses.ntxent_loss import NTXentLoss
from deepmetric.losses.supcon_loss import SupConLoss
from deepmetric.losses.tuplet_margin_loss import TupletMarginLoss
from reference import lse_pair_losses_ref as R

DISTANCES = {
    "l2": lambda: distances.LpDistance(),
    "l2sq": lambda: distances.LpDistance(power=2),
    "l2raw": lambda: distances.LpDistance(normalize_embeddings=False),
    "cos": lambda: distances.CosineSimilarity(),
    "dot": lambda: distances.DotProductSimilarity(normalize_embeddings=False),
}

# name -> (class, reference, default distance kind, allowed kinds, per-anchor?, default reduce)
LOSSES = {
    "circle": (CircleLoss, R.circle, "cos", ["cos"], True, R.avg_nonzero),
    "ms": (
        MultiSimilarityLoss,
        R.multi_similarity,
        "cos",
        ["cos", "dot", "l2", "l2sq"],
        True,
        R.mean,
    ),
    "supcon": (SupConLoss, R.supcon, "cos", ["cos", "dot", "l2"], True, R.avg_nonzero),
    "genlifted": (
        GeneralizedLiftedStructureLoss,
        R.generalized_lifted,
        "l2",
        ["l2", "l2sq", "cos"],
        True,
        R.mean,
    ),
    "ntxent": (NTXentLoss, R.ntxent, "cos", ["cos", "dot", "l2"], False, R.mean),
    "lifted": (LiftedStructureLoss, R.lifted, "l2", ["l2", "l2raw", "cos"], False, R.mean),
    "tuplet": (TupletMarginLoss, R.tuplet, "cos", ["cos"], False, R.mean),
}

# non-default hyperparameters: (module kwargs, reference kwargs)
PARAMS = {
    "circle": ({"m": 0.25, "gamma": 32}, {"m": 0.25, "gamma": 32}),
    "ms": ({"alpha": 1.5, "beta": 20, "base": 0.3}, {"alpha": 1.5, "beta": 20, "base": 0.3}),
    "supcon": ({"temperature": 0.5}, {"temperature": 0.5}),
    "genlifted": ({"neg_margin": 0.8, "pos_margin": 0.1}, {"neg_margin": 0.8, "pos_margin": 0.1}),
    "ntxent": ({"temperature": 0.3}, {"temperature": 0.3}),
    "lifted": ({"neg_margin": 0.7, "pos_margin": 0.2}, {"neg_margin": 0.7, "pos_margin": 0.2}),
    "tuplet": ({"margin": 10.0, "scale": 16}, {"margin_deg": 10.0, "scale": 16}),
}
NAMES = sorted(LOSSES)
PAIR_BASED = ["ntxent", "lifted", "tuplet"]


def _batch(n=12, d=6, classes=3, dtype=torch.float64):
    return torch.randn(n, d, dtype=dtype), torch.randint(0, classes, (n,))


def _make(name, kind=None, **kwargs):
    cls, _, default_kind, *_ = LOSSES[name]
    if kind is not None and kind != default_kind:
        kwargs["distance"] = DISTANCES[kind]()
    return cls(**kwargs)


def _ref(name, *args, kind=None, **kwargs):
    ref_fn, default_kind = LOSSES[name][1], LOSSES[name][2]
    if name != "tuplet":
        kwargs["kind"] = kind or default_kind
    return ref_fn(*args, **kwargs)


def _terms(loss_fn, *args, **kwargs):
    """The unreduced loss dict entry of a loss (through DoNothingReducer)."""
    loss_fn.reducer = reducers.DoNothingReducer()
    return loss_fn(*args, **kwargs)["loss"]


def _tuple(rows):
    return tuple(torch.tensor(list(c), dtype=torch.long) for c in zip(*rows, strict=True))


def _close(actual, expected, rel=1e-9, abs_=1e-12):
    assert len(actual) == len(expected)
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=torch.float64),
        torch.tensor(expected, dtype=torch.float64),
        rtol=rel,
        atol=abs_,
    )


# ------------------------------------------------------------------ values
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("params", ["default", "custom"])
def test_terms_match_reference(name, params):
    x, y = _batch()
    kwargs, ref_kwargs = PARAMS[name] if params == "custom" else ({}, {})
    sub = _terms(_make(name, **kwargs), x, y)
    expected = _ref(name, x, y, **ref_kwargs)
    _close(sub["losses"].detach(), expected)
    if LOSSES[name][4]:
        assert sub["reduction_type"] == "element"
        assert torch.equal(sub["indices"], torch.arange(len(x)))
    else:
        assert sub["reduction_type"] == "pos_pair"
        a1, p = sub["indices"]
        pos = [(i, j) for i in range(len(y)) for j in range(len(y)) if i != j and y[i] == y[j]]
        assert list(zip(a1.tolist(), p.tolist(), strict=True)) == pos


@pytest.mark.parametrize("name", NAMES)
def test_default_reducer_value(name):
    x, y = _batch(n=16, classes=4)
    reduce = LOSSES[name][5]
    expected = reduce(_ref(name, x, y))
    assert _make(name)(x, y).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("name", "kind"), [(n, k) for n in NAMES for k in LOSSES[n][3] if k != LOSSES[n][2]]
)
def test_each_allowed_distance(name, kind):
    x, y = _batch()
    sub = _terms(_make(name, kind), x, y)
    _close(sub["losses"].detach(), _ref(name, x, y, kind=kind))


@pytest.mark.parametrize("name", ["circle", "tuplet"])
@pytest.mark.parametrize("kind", ["l2", "dot"])
def test_rejected_distance(name, kind):
    with pytest.raises(ValueError, match="expected `distance` to be a CosineSimilarity"):
        _make(name, kind)


def test_recordable_attributes_and_units():
    c = CircleLoss(m=0.25, gamma=256)
    assert (c.m, c.gamma, c.op, c.on, c.delta_p, c.delta_n) == (0.25, 256, 1.25, -0.25, 0.75, 0.25)
    assert isinstance(c.soft_plus, torch.nn.Softplus)
    assert c._record_these == ["m", "gamma", "op", "on", "delta_p", "delta_n"]
    t = TupletMarginLoss()
    assert t.margin == pytest.approx(math.radians(5.73)) and t.scale == 64
    assert MultiSimilarityLoss()._record_these == ["alpha", "beta", "base"]
    assert (NTXentLoss().temperature, SupConLoss().temperature) == (0.07, 0.1)
    for cls in (LiftedStructureLoss, GeneralizedLiftedStructureLoss):
        loss_fn = cls()
        assert (loss_fn.neg_margin, loss_fn.pos_margin) == (1, 0)
        assert loss_fn._record_these == ["pos_margin", "neg_margin"]
    for name in NAMES:
        expected = (
            reducers.AvgNonZeroReducer if name in ("circle", "supcon") else reducers.MeanReducer
        )
        assert type(_make(name).reducer) is expected


# ------------------------------------------------------------------ tuples and references
@pytest.mark.parametrize("name", NAMES)
def test_pair_tuple_with_and_without_labels(name):
    x, y = _batch()
    pos = [(0, 1), (2, 3), (0, 4), (5, 5), (2, 3)]
    neg = [(0, 6), (0, 7), (2, 8), (1, 9), (0, 6)]  # (0, 6) twice: counts twice per pair
    t = _tuple(pos) + _tuple(neg)
    expected = LOSSES[name][5](_ref(name, x, y, pairs=(pos, neg)))
    loss_fn = _make(name)
    assert loss_fn(x, y, t).item() == pytest.approx(expected, rel=1e-9)
    assert loss_fn(x, indices_tuple=t).item() == pytest.approx(expected, rel=1e-9)
    if name in PAIR_BASED:  # one term per listed positive pair, in order
        a1, p = _terms(_make(name), x, indices_tuple=t)["indices"]
        assert list(zip(a1.tolist(), p.tolist(), strict=True)) == pos


@pytest.mark.parametrize("name", NAMES)
def test_triplet_tuple_becomes_pairs(name):
    x, y = _batch()
    trips = [(0, 1, 2), (0, 1, 3), (4, 5, 6), (7, 8, 9)]
    pos = [(a, p) for a, p, _ in trips]
    neg = [(a, n) for a, _, n in trips]
    expected = LOSSES[name][5](_ref(name, x, y, pairs=(pos, neg)))
    assert _make(name)(x, indices_tuple=_tuple(trips)).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_ref_emb(name):
    x, y = _batch()
    ref, ref_y = _batch(n=9)
    sub = _terms(_make(name), x, y, ref_emb=ref, ref_labels=ref_y)
    _close(sub["losses"].detach(), _ref(name, x, y, ref=ref, ref_labels=ref_y))


@pytest.mark.parametrize("name", NAMES)
def test_ref_emb_with_tuple_needs_no_ref_labels(name):
    x, y = _batch()
    ref, _ = _batch(n=9)
    pos, neg = [(0, 1), (1, 1), (3, 8)], [(0, 2), (1, 3), (3, 0)]
    expected = LOSSES[name][5](_ref(name, x, y, ref=ref, ref_labels=y[:9], pairs=(pos, neg)))
    out = _make(name)(x, indices_tuple=_tuple(pos) + _tuple(neg), ref_emb=ref)
    assert out.item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_ref_emb_without_ref_labels_is_an_error(name):
    x, y = _batch()
    with pytest.raises(ValueError, match="`ref_labels` together with `ref_emb`"):
        _make(name)(x, y, ref_emb=x[:5].clone())


@pytest.mark.parametrize("name", ["circle", "ms", "supcon", "genlifted"])
def test_mask_based_refuses_a_pair_that_is_positive_and_negative(name):
    x, _ = _batch()
    t = (torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([0, 4]), torch.tensor([2, 5]))
    with pytest.raises(ValueError, match=r"either positive or negative, got \(0, 2\) in both"):
        _make(name)(x, indices_tuple=t)


@pytest.mark.parametrize("name", NAMES)
def test_generic_pair_loss_hook(name):
    """``loss_method(mat, pairs)`` (GenericPairLoss's hook) gives the same terms as forward."""
    x, y = _batch()
    loss_fn = _make(name)
    pairs = get_all_pairs_indices(y)
    via_hook = loss_fn.loss_method(loss_fn.distance(x), pairs)["loss"]["losses"]
    _close(via_hook, _terms(_make(name), x, y)["losses"].tolist(), rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_needs_labels_or_tuple(name):
    x, _ = _batch()
    with pytest.raises(ValueError, match="`labels` or `indices_tuple`"):
        _make(name)(x)


# ------------------------------------------------------------------ zero rules
@pytest.mark.parametrize("name", NAMES)
def test_one_positive_and_one_negative_pair_is_zero(name):
    """GenericPairLoss: zero when each of a1, p, a2, n holds at most one element."""
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    t = (torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), torch.tensor([2]))
    for tup in (t, (t[0], t[1], t[3])):  # a pair tuple and a single triplet
        out = _make(name)(x, indices_tuple=tup)
        assert out.item() == 0 and out.requires_grad
    # a single query against a reference with one positive and one negative
    ref, ref_y = torch.randn(2, 4, dtype=torch.float64), torch.tensor([0, 1])
    out = _make(name)(x[:1], torch.tensor([0]), ref_emb=ref, ref_labels=ref_y)
    out.backward()
    assert out.item() == 0 and torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", ["one_class", "singletons", "single"])
def test_degenerate_batches(name, case):
    n = 1 if case == "single" else 8
    x = torch.randn(n, 5, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(n, dtype=torch.long) if case == "one_class" else torch.arange(n)
    out = _make(name)(x, y)
    out.backward()
    assert torch.isfinite(x.grad).all()
    # PML: pair losses need a positive and a negative pair; SupCon needs both in the batch;
    # Circle zeroes anchors without both; MS and the generalized lifted loss keep one side.
    one_sided = name in ("ms", "genlifted") and case != "single"
    if one_sided:
        expected = LOSSES[name][5](_ref(name, x.detach(), y))
        assert out.item() == pytest.approx(expected, rel=1e-9) and out.item() > 0
    else:
        assert out.item() == 0 and out.requires_grad
        assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("name", PAIR_BASED)
def test_positive_pair_whose_anchor_has_no_negative(name):
    """Such a pair is a term of its own (0 for NT-Xent and tuplet, the positive term for lifted)."""
    x, _ = _batch()
    pos, neg = [(0, 1), (2, 3)], [(0, 4), (0, 5)]
    sub = _terms(_make(name), x, indices_tuple=_tuple(pos) + _tuple(neg))
    expected = _ref(name, x, None, ref=x, ref_labels=torch.zeros(12), pairs=(pos, neg))
    _close(sub["losses"].detach(), expected)
    if name != "lifted":
        assert sub["losses"][1].item() == 0


# ------------------------------------------------------------------ gradients and dtypes
def _circle_autograd_reference(mat, pos, neg, m, gamma):
    """Circle loss per row with torch autograd, looping over rows; the weights a_p, a_n are
    constants (detached), as in the paper's gradient analysis, so gradcheck does not apply."""
    out = []
    for i in range(mat.shape[0]):
        s = mat[i]
        if not pos[i].any() or not neg[i].any():
            out.append(s.sum() * 0)
            continue
        sp, sn = s[pos[i]], s[neg[i]]
        lp = -gamma * torch.relu(1 + m - sp.detach()) * (sp - (1 - m))
        ln = gamma * torch.relu(sn.detach() + m) * (sn - m)
        out.append(torch.nn.functional.softplus(torch.logsumexp(lp, 0) + torch.logsumexp(ln, 0)))
    return torch.stack(out)


def test_circle_gradient_treats_weights_as_constants():
    mat = (torch.rand(7, 9, dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    pos, neg = _random_masks(7, 9)
    upstream = torch.rand(7, dtype=torch.float64)
    (F.circle_loss_terms(mat, pos, neg, m=0.3, gamma=3.0) * upstream).sum().backward()
    ours = mat.grad.clone()
    mat.grad = None
    expected = _circle_autograd_reference(mat, pos, neg, 0.3, 3.0)
    torch.testing.assert_close(
        F.circle_loss_terms(mat, pos, neg, m=0.3, gamma=3.0), expected.detach()
    )
    (expected * upstream).sum().backward()
    torch.testing.assert_close(ours, mat.grad)
    assert torch.equal(ours[2], torch.zeros(9, dtype=torch.float64))


def test_circle_module_gradient():
    x, y = _batch(n=10, d=4, classes=3)
    e = x.clone().requires_grad_()
    CircleLoss(m=0.25, gamma=8)(e, y).backward()
    e2 = x.clone().requires_grad_()
    mat = distances.CosineSimilarity()(e2)
    pos = (y[:, None] == y[None, :]) & ~torch.eye(10, dtype=torch.bool)
    terms = _circle_autograd_reference(mat, pos, y[:, None] != y[None, :], 0.25, 8)
    terms[terms > 0].mean().backward()
    torch.testing.assert_close(e.grad, e2.grad)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "circle"])
@pytest.mark.parametrize("with_ref", [False, True])
def test_gradcheck_module(name, with_ref):
    x, y = _batch(n=8, d=4, classes=3)
    kwargs = PARAMS[name][0]
    if name == "tuplet":
        kwargs = {"margin": 10.0, "scale": 4}
    loss_fn = _make(name, **kwargs)
    x.requires_grad_(True)
    if with_ref:
        ref, ref_y = _batch(n=6, d=4, classes=3)
        ref.requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda e, r: loss_fn(e, y, ref_emb=r, ref_labels=ref_y), (x, ref)
        )
    else:
        assert torch.autograd.gradcheck(lambda e: loss_fn(e, y), (x,))


def _random_masks(n, m, with_empty_rows=True):
    pos = torch.rand(n, m) < 0.3
    neg = (torch.rand(n, m) < 0.5) & ~pos
    if with_empty_rows:
        pos[0] = False  # no positives
        neg[1] = False  # no negatives
        pos[2] = neg[2] = False  # nothing at all
    return pos, neg


ROW_KERNELS = {
    "ms": lambda mat, pos, neg: F.multi_similarity_terms(
        mat, pos, neg, alpha=2.0, beta=5.0, base=0.4, is_inverted=False
    ),
    "supcon": lambda mat, pos, neg: F.supcon_terms(
        mat, pos, neg, temperature=0.5, is_inverted=True
    ),
    "genlifted": lambda mat, pos, neg: F.generalized_lifted_structure_terms(
        mat, pos, neg, pos_margin=0.1, neg_margin=0.9, is_inverted=False
    ),
}
PAIR_KERNELS = {
    "ntxent": lambda mat, a1, p, w: F.ntxent_terms(
        mat, a1, p, w, temperature=0.5, is_inverted=False
    ),
    "lifted": lambda mat, a1, p, w: F.lifted_structure_terms(
        mat, a1, p, w, pos_margin=0.1, neg_margin=0.9, is_inverted=True
    ),
    "tuplet": lambda mat, a1, p, w: F.tuplet_margin_terms(mat, a1, p, w, margin=0.1, scale=3.0),
}


@pytest.mark.parametrize("name", sorted(ROW_KERNELS))
def test_gradcheck_row_kernels_with_empty_rows(name):
    mat = (torch.rand(7, 9, dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    pos, neg = _random_masks(7, 9)
    fn = ROW_KERNELS[name]
    assert torch.autograd.gradcheck(lambda m: fn(m, pos, neg), (mat,))
    fn(mat, pos, neg).sum().backward()
    assert torch.isfinite(mat.grad).all()
    assert torch.equal(mat.grad[2], torch.zeros(9, dtype=torch.float64))  # fully masked row


@pytest.mark.parametrize("name", sorted(PAIR_KERNELS))
@pytest.mark.parametrize("weights", ["mask", "counts"])
def test_gradcheck_pair_kernels(name, weights):
    mat = (torch.rand(7, 9, dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    pos, neg = _random_masks(7, 9)
    a1, p = torch.where(pos)
    a1, p = torch.cat([a1, a1[:2]]), torch.cat([p, p[:2]])  # repeated positive pairs
    w = neg if weights == "mask" else neg.double() * torch.randint(1, 3, (7, 9))
    fn = PAIR_KERNELS[name]
    assert torch.autograd.gradcheck(lambda m: fn(m, a1, p, w), (mat,))


@pytest.mark.parametrize("name", sorted(ROW_KERNELS) + sorted(PAIR_KERNELS) + ["circle"])
def test_no_grad_path_gives_the_same_values(name):
    mat = torch.rand(6, 8, dtype=torch.float64) * 1.8 - 0.9
    pos, neg = _random_masks(6, 8)
    if name in ROW_KERNELS or name == "circle":
        fn = ROW_KERNELS.get(name) or (
            lambda m, p, n: F.circle_loss_terms(m, p, n, m=0.3, gamma=3.0)
        )
        with_grad = fn(mat.clone().requires_grad_(), pos, neg)
        without = fn(mat, pos, neg)
    else:
        a1, p = torch.where(pos)
        fn = PAIR_KERNELS[name]
        with_grad = fn(mat.clone().requires_grad_(), a1, p, neg)
        without = fn(mat, a1, p, neg)
    assert not without.requires_grad
    torch.testing.assert_close(with_grad.detach(), without)


@pytest.mark.parametrize("exclude_diagonal", [False, True])
def test_supcon_complement_negatives(exclude_diagonal):
    """neg_mask=None: every non-positive pair is a negative (minus (i, i) if asked)."""
    mat = (torch.rand(6, 6, dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    pos = torch.rand(6, 6) < 0.3
    pos.fill_diagonal_(False)
    pos[4] = False
    neg = ~pos
    if exclude_diagonal:
        neg.fill_diagonal_(False)
    kwargs = {"temperature": 0.3, "is_inverted": True}
    implicit = lambda m: F.supcon_terms(m, pos, None, exclude_diagonal=exclude_diagonal, **kwargs)
    torch.testing.assert_close(implicit(mat), F.supcon_terms(mat, pos, neg, **kwargs))
    assert torch.autograd.gradcheck(implicit, (mat,))


def test_tuplet_duplicate_samples_give_finite_gradients():
    x = torch.randn(6, 4, dtype=torch.float64)
    x[1] = x[0] * 2  # cosine exactly 1 (or a hair above) for the positive pair (0, 1)
    x.requires_grad_(True)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    out = TupletMarginLoss()(x, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    expected = R.mean(R.tuplet(x.detach(), y))
    assert out.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes(name, dtype):
    x, y = _batch(n=24, d=16, classes=4)
    x = x.to(dtype)
    expected = LOSSES[name][5](_ref(name, x.double(), y))
    e = x.clone().requires_grad_()
    out = _make(name)(e, y)
    assert out.dtype == dtype
    out.backward()
    assert e.grad.dtype == dtype and torch.isfinite(e.grad.float()).all()
    rel = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}
    assert out.double().item() == pytest.approx(expected, rel=rel[dtype], abs=rel[dtype])


@pytest.mark.parametrize("name", NAMES)
def test_half_precision_large_logits_do_not_overflow(name):
    """Scales that overflow float16 inside exp are computed in float32."""
    x, y = _batch(n=16, d=8, classes=4)
    e = x.half().requires_grad_()
    kwargs = {"gamma": 512} if name == "circle" else {}
    if name in ("supcon", "ntxent"):
        kwargs = {"temperature": 0.01}
    out = _make(name, **kwargs)(e, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(e.grad.float()).all()


# ------------------------------------------------------------------ stats and memory
def test_tuplet_stats():
    x, y = _batch()
    off = TupletMarginLoss()
    off(x, y)
    assert getattr(off, "avg_pos_angle", None) is None
    on = TupletMarginLoss(collect_stats=True)
    on(x, y)
    table = R.table(x, x, "cos")
    pos = [(i, j) for i in range(12) for j in range(12) if i != j and y[i] == y[j]]
    neg = [(i, j) for i in range(12) for j in range(12) if y[i] != y[j]]
    angle = lambda pairs: R.mean([math.degrees(math.acos(table[i][j])) for i, j in pairs])
    assert float(on.avg_pos_angle) == pytest.approx(angle(pos), rel=1e-9)
    assert float(on.avg_neg_angle) == pytest.approx(angle(neg), rel=1e-9)


@pytest.mark.parametrize("name", PAIR_BASED)
def test_pair_losses_never_build_positive_by_negative_matrices(name):
    """SimCLR-style batch: 2048 positive pairs x ~4.2M negative pairs (an 8.6e9-entry matrix)."""
    n = 2048
    x = torch.randn(n, 16, requires_grad=True)
    y = torch.arange(n) // 2
    out = _make(name)(x, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
