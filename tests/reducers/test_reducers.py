"""Reducers against plain-Python float64 references written from their definitions.

Covers every reduction type, the graph-connected zero, stats, the interval form and every raise.
"""

from __future__ import annotations

import pytest
import torch

from conftest import ALL_DTYPES, TOLERANCES
from deepmetric import config, reducers
from deepmetric.functional.reductions import IntervalMean, interval_reduce

KINDS = ["element", "pos_pair", "neg_pair", "triplet", "already_reduced"]
N = 9  # embeddings in the batch
T = 23  # loss terms
NUM_CLASSES = 4
WEIGHTS = [0.5, 2.0, 1.0, 3.0]
DIVISOR = 7


# ---------------------------------------------------------------------------- references
def ref_mean(v: list[float]) -> float:
    return sum(v) / len(v)


def ref_threshold(v: list[float], low: float | None, high: float | None) -> float:
    kept = [x for x in v if (low is None or x > low) and (high is None or x < high)]
    return sum(kept) / len(kept) if kept else 0.0


def ref_per_anchor(v, anchors, others, n, inner=ref_mean) -> float:
    """Mean of each anchor's pair losses (0 for anchors without pairs), then ``inner``."""
    rows = [[x for x, a in zip(v, anchors, strict=True) if a == i] for i in range(n)]
    return inner([sum(r) / len(r) if r else 0.0 for r in rows])


def _ref_class_weighted(v, anchors, labels):
    return ref_mean([x * WEIGHTS[labels[a]] for x, a in zip(v, anchors, strict=True)])


# name -> (factory, reference(values, anchors, others, labels))
CASES = {
    "mean": (reducers.MeanReducer, lambda v, a, o, y: ref_mean(v)),
    "sum": (reducers.SumReducer, lambda v, a, o, y: sum(v)),
    "threshold_low": (
        lambda: reducers.ThresholdReducer(low=0.1),
        lambda v, a, o, y: ref_threshold(v, 0.1, None),
    ),
    "threshold_high": (
        lambda: reducers.ThresholdReducer(high=0.5),
        lambda v, a, o, y: ref_threshold(v, None, 0.5),
    ),
    "threshold_both": (
        lambda: reducers.ThresholdReducer(low=-0.5, high=0.8),
        lambda v, a, o, y: ref_threshold(v, -0.5, 0.8),
    ),
    "avg_non_zero": (reducers.AvgNonZeroReducer, lambda v, a, o, y: ref_threshold(v, 0, None)),
    "avg_non_zero_high": (
        lambda: reducers.AvgNonZeroReducer(high=1.0),
        lambda v, a, o, y: ref_threshold(v, 0, 1.0),
    ),
    "divisor": (reducers.DivisorReducer, lambda v, a, o, y: sum(v) / DIVISOR),
    "class_weighted": (
        lambda: reducers.ClassWeightedReducer(torch.tensor(WEIGHTS, dtype=torch.float64)),
        lambda v, a, o, y: _ref_class_weighted(v, a, y),
    ),
    "per_anchor": (
        reducers.PerAnchorReducer,
        lambda v, a, o, y: ref_per_anchor(v, a, o, N) if o is not None else ref_mean(v),
    ),
    "per_anchor_sum": (
        lambda: reducers.PerAnchorReducer(reducers.SumReducer()),
        lambda v, a, o, y: ref_per_anchor(v, a, o, N, sum) if o is not None else sum(v),
    ),
}


# ---------------------------------------------------------------------------- helpers
def _values(dtype, t=T, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(t, generator=g, dtype=torch.float64)
    v[::4] = 0  # exact zeros, as hinge losses produce
    return v.to(dtype)


def _indices(kind, t=T, n=N, seed=1):
    g = torch.Generator().manual_seed(seed)
    if kind == "element":
        return torch.randint(0, n, (t,), generator=g)
    if kind in ("pos_pair", "neg_pair"):
        flat = torch.randperm(n * n, generator=g)[:t]  # distinct (anchor, other) pairs
        return flat // n, flat % n
    return tuple(torch.randint(0, n, (t,), generator=g) for _ in range(3))


def _sub_loss(kind, losses, **extra):
    indices = None if kind == "already_reduced" else _indices(kind, len(losses))
    if kind == "already_reduced":
        losses = losses.sum()
    return {"losses": losses, "indices": indices, "reduction_type": kind, **extra}


def _emb(dtype=torch.float64, n=N):
    return torch.randn(n, 3, dtype=dtype, requires_grad=True)


def _labels(n=N):
    return torch.arange(n) % NUM_CLASSES


def _close(actual, expected, dtype, scale=1.0):
    rtol, atol = TOLERANCES[dtype]
    assert float(actual) == pytest.approx(expected, rel=rtol * scale, abs=atol * scale)


# ---------------------------------------------------------------------------- references
# PerAnchorReducer rejects triplets (tested below)
REFERENCE_CASES = [
    (case, kind)
    for case in sorted(CASES)
    for kind in KINDS
    if not (case.startswith("per_anchor") and kind == "triplet")
]


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize(("case", "kind"), REFERENCE_CASES)
def test_matches_reference(case, kind, dtype):
    factory, reference = CASES[case]
    losses = _values(dtype)
    sub = _sub_loss(kind, losses, divisor=DIVISOR)
    labels = _labels()
    out = factory()({"loss": sub}, _emb(dtype), labels)

    assert out.ndim == 0 and out.dtype == dtype
    values = losses.double().tolist()
    if kind == "already_reduced":
        expected = float(sub["losses"])
    else:
        idx = sub["indices"]
        anchors = (idx if kind == "element" else idx[0]).tolist()
        others = idx[1].tolist() if kind in ("pos_pair", "neg_pair") else None
        expected = reference(values, anchors, others, labels.tolist())
    _close(out, expected, dtype, scale=3.0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient_flows_to_losses(case):
    losses = _values(torch.float64).requires_grad_()
    sub = _sub_loss("pos_pair", losses, divisor=DIVISOR)
    out = CASES[case][0]()({"loss": sub}, _emb(), _labels())
    (grad,) = torch.autograd.grad(out, losses)
    assert grad.shape == losses.shape and torch.isfinite(grad).all()


# ---------------------------------------------------------------------------- zero loss
ZERO_FACTORIES = {
    **{name: f for name, (f, _) in CASES.items()},
    "multiple": lambda: reducers.MultipleReducers({"loss": reducers.SumReducer()}),
}


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("kind", ["already_reduced", "element"])
@pytest.mark.parametrize("name", sorted(ZERO_FACTORIES))
def test_zero_loss_is_graph_connected(name, kind, dtype):
    emb = _emb(dtype)
    sub = {"losses": 0, "indices": None, "reduction_type": kind, "divisor": DIVISOR}
    out = ZERO_FACTORIES[name]()({"loss": sub}, emb, _labels())
    assert isinstance(out, torch.Tensor) and out.ndim == 0 and out.dtype == dtype
    assert out.item() == 0 and out.requires_grad
    out.backward()
    assert emb.grad is not None and not emb.grad.any()


def test_threshold_with_nothing_kept_is_graph_connected_zero():
    emb = _emb()
    losses = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)
    out = reducers.AvgNonZeroReducer()({"loss": _sub_loss("element", losses)}, emb, None)
    assert out.item() == 0 and out.requires_grad
    out.backward()
    assert not emb.grad.any()


# ---------------------------------------------------------------------------- ThresholdReducer
def test_threshold_bounds_are_strict():
    losses = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    out = reducers.ThresholdReducer(low=0.0, high=1.0)(
        {"loss": _sub_loss("element", losses)}, _emb(), None
    )
    assert out.item() == 0.5


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.0, 2.0, {"num_past_filter": 2, "num_above_low": 4, "num_below_high": 4}),
        (0.0, None, {"num_past_filter": 4, "num_above_low": 4, "num_below_high": 0}),
        (None, 2.0, {"num_past_filter": 4, "num_above_low": 0, "num_below_high": 4}),
    ],
)
def test_threshold_stats(low, high, expected):
    r = reducers.ThresholdReducer(low=low, high=high, collect_stats=True)
    losses = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    r({"loss": _sub_loss("element", losses)}, _emb(), None)
    got = {name: int(getattr(r, name)) for name in expected}
    assert got == expected
    assert int(r.losses_size) == 6
    assert getattr(r, "num_above_high", None) is None  # PML writes this misspelt name


def test_threshold_stats_reset_on_each_forward():
    r = reducers.ThresholdReducer(low=0.0, collect_stats=True)
    losses = torch.tensor([1.0, 2.0], dtype=torch.float64)
    r({"loss": _sub_loss("element", losses)}, _emb(), None)
    assert int(r.num_past_filter) == 2
    r({"loss": {"losses": 0, "indices": None, "reduction_type": "already_reduced"}}, _emb(), None)
    assert int(r.num_past_filter) == 0 and int(r.losses_size) == 1


def test_threshold_interval_counter_path_records_the_same_stats():
    losses = _values(torch.float64)
    explicit = reducers.ThresholdReducer(low=0.2, high=1.5, collect_stats=True)
    value = explicit({"loss": _sub_loss("triplet", losses)}, _emb(), None)

    fused = reducers.ThresholdReducer(low=0.2, high=1.5, collect_stats=True)

    def count(lo, hi):
        return IntervalMean(lo, hi).keep_mask(losses).sum()

    sub = {
        "losses": value,
        "indices": None,
        "reduction_type": "already_reduced",
        "interval_counter": count,
    }
    assert fused({"loss": sub}, _emb(), None) is value
    for name in ("losses_size", "num_past_filter", "num_above_low", "num_below_high"):
        assert int(getattr(fused, name)) == int(getattr(explicit, name)), name


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "expected at least one of `low` and `high`"),
        ({"low": 1.0, "high": 1.0}, "expected low < high, got low=1.0, high=1.0"),
        ({"low": 2.0, "high": 1.0}, "expected low < high"),
    ],
)
def test_threshold_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        reducers.ThresholdReducer(**kwargs)


# ---------------------------------------------------------------------------- stats presence
STATS = {
    "mean": (reducers.MeanReducer, ("losses_size",)),
    "threshold": (
        lambda **k: reducers.ThresholdReducer(low=0, **k),
        ("losses_size", "num_past_filter", "num_above_low", "num_below_high"),
    ),
    "avg_non_zero": (reducers.AvgNonZeroReducer, ("num_past_filter", "num_above_low")),
    "divisor": (reducers.DivisorReducer, ("losses_size", "divisor")),
}


@pytest.mark.parametrize("name", sorted(STATS))
def test_stats_exist_only_when_collected(name):
    factory, stats = STATS[name]
    sub = _sub_loss("element", _values(torch.float64), divisor=DIVISOR)
    off = factory(collect_stats=False)
    off({"loss": sub}, _emb(), None)
    assert all(getattr(off, s, None) is None for s in stats)

    on = factory(collect_stats=True)
    on({"loss": sub}, _emb(), None)
    assert all(getattr(on, s, None) is not None for s in stats)

    with config.collect_stats():
        scoped = factory()
    assert all(getattr(scoped, s, None) is not None for s in stats)
    assert all(getattr(factory(), s, None) is None for s in stats)


def test_losses_size_stat_counts_terms():
    r = reducers.MeanReducer(collect_stats=True)
    r({"loss": _sub_loss("triplet", _values(torch.float64))}, _emb(), None)
    assert int(r.losses_size) == T
    r({"loss": _sub_loss("already_reduced", _values(torch.float64))}, _emb(), None)
    assert int(r.losses_size) == 1


# ---------------------------------------------------------------------------- interval form
INTERVAL_REDUCERS = {
    "mean": reducers.MeanReducer,
    "sum": reducers.SumReducer,
    "threshold_low": lambda: reducers.ThresholdReducer(low=0.1),
    "threshold_high": lambda: reducers.ThresholdReducer(high=0.5),
    "threshold_both": lambda: reducers.ThresholdReducer(low=-0.5, high=0.8),
    "avg_non_zero": reducers.AvgNonZeroReducer,
    "avg_non_zero_high": lambda: reducers.AvgNonZeroReducer(high=1.0),
}


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(INTERVAL_REDUCERS))
def test_interval_form_agrees_with_reducer(name, dtype):
    r = INTERVAL_REDUCERS[name]()
    losses = _values(dtype)
    spec = r.interval_form()
    assert isinstance(spec, IntervalMean)
    direct = r({"loss": _sub_loss("triplet", losses)}, _emb(dtype), None)
    via_spec = interval_reduce(losses, spec)
    assert via_spec.dtype == direct.dtype
    torch.testing.assert_close(via_spec, direct, rtol=0, atol=0)


def test_interval_form_all_zero_keeps_zero():
    losses = torch.zeros(4, dtype=torch.float64)
    assert float(interval_reduce(losses, reducers.AvgNonZeroReducer().interval_form())) == 0


@pytest.mark.parametrize(
    "factory",
    [
        reducers.DivisorReducer,
        lambda: reducers.ClassWeightedReducer(WEIGHTS),
        reducers.PerAnchorReducer,
        reducers.DoNothingReducer,
        lambda: reducers.MultipleReducers({}),
    ],
)
def test_other_reducers_have_no_interval_form(factory):
    assert factory().interval_form() is None


# ---------------------------------------------------------------------------- DivisorReducer
def test_divisor_missing_key_raises():
    sub = _sub_loss("element", _values(torch.float64))
    with pytest.raises(ValueError, match=r"expected a 'divisor' key in the loss dict entry"):
        reducers.DivisorReducer()({"loss": sub}, _emb(), None)


def test_divisor_not_needed_for_already_reduced():
    sub = _sub_loss("already_reduced", _values(torch.float64))
    assert reducers.DivisorReducer()({"loss": sub}, _emb(), None) is sub["losses"]


@pytest.mark.parametrize("divisor", [0, torch.tensor(0)])
def test_divisor_zero_gives_connected_zero(divisor):
    emb = _emb()
    sub = _sub_loss("element", _values(torch.float64), divisor=divisor)
    out = reducers.DivisorReducer()({"loss": sub}, emb, None)
    assert out.item() == 0 and out.requires_grad


@pytest.mark.parametrize("divisor", [4, torch.tensor(4), torch.tensor(4.0)])
def test_divisor_float16_overflow_is_recomputed_in_float32(divisor):
    losses = torch.full((4,), 60000.0, dtype=torch.float16)
    assert torch.isinf(losses.sum())  # the naive half sum overflows
    sub = {
        "losses": losses,
        "indices": torch.arange(4),
        "reduction_type": "element",
        "divisor": divisor,
    }
    out = reducers.DivisorReducer()({"loss": sub}, _emb(torch.float16), None)
    assert out.dtype == torch.float16 and out.item() == 60000.0


def test_divisor_stat_is_recorded():
    r = reducers.DivisorReducer(collect_stats=True)
    r({"loss": _sub_loss("neg_pair", _values(torch.float64), divisor=DIVISOR)}, _emb(), None)
    assert int(r.divisor) == DIVISOR


# ---------------------------------------------------------------------------- ClassWeightedReducer
def test_class_weighted_accepts_lists_and_moves_weights_to_loss_dtype():
    r = reducers.ClassWeightedReducer(WEIGHTS)
    losses = _values(torch.float32)
    out = r({"loss": _sub_loss("element", losses)}, _emb(torch.float32), _labels())
    assert out.dtype == torch.float32


def test_class_weighted_labels_none_raises():
    r = reducers.ClassWeightedReducer(WEIGHTS)
    with pytest.raises(ValueError, match=r"expected `labels` to weight by class, got None"):
        r({"loss": _sub_loss("element", _values(torch.float64))}, _emb(), None)


@pytest.mark.parametrize(("bad", "match"), [(4, "got label 4"), (-1, "got label -1")])
def test_class_weighted_label_out_of_range_raises(bad, match):
    r = reducers.ClassWeightedReducer(WEIGHTS)
    labels = _labels()
    labels[:] = bad
    with pytest.raises(ValueError, match=rf"expected labels in \[0, 4\).*{match}"):
        r({"loss": _sub_loss("element", _values(torch.float64))}, _emb(), labels)


def test_class_weighted_weights_must_be_1d():
    with pytest.raises(ValueError, match=r"expected `weights` of shape \(num_classes,\)"):
        reducers.ClassWeightedReducer(torch.ones(2, 2))


# ---------------------------------------------------------------------------- PerAnchorReducer
def test_per_anchor_triplet_raises():
    sub = _sub_loss("triplet", _values(torch.float64))
    with pytest.raises(NotImplementedError, match="triplet losses are not supported"):
        reducers.PerAnchorReducer()({"loss": sub}, _emb(), None)


def test_per_anchor_element_goes_to_inner_reducer():
    losses = _values(torch.float64)
    sub = _sub_loss("element", losses)
    out = reducers.PerAnchorReducer(reducers.AvgNonZeroReducer())({"loss": sub}, _emb(), None)
    assert out.item() == pytest.approx(ref_threshold(losses.tolist(), 0, None), rel=1e-12)


def test_per_anchor_others_beyond_batch_as_with_ref_emb():
    anchors = torch.tensor([0, 0, 1, 2])
    others = torch.tensor([10, 3, 12, 0])  # reference indices beyond N = 3
    losses = torch.tensor([1.0, 3.0, 4.0, 6.0], dtype=torch.float64)
    sub = {"losses": losses, "indices": (anchors, others), "reduction_type": "pos_pair"}
    out = reducers.PerAnchorReducer()({"loss": sub}, _emb(n=3), None)
    assert out.item() == pytest.approx((2.0 + 4.0 + 6.0) / 3)


def test_per_anchor_custom_aggregation():
    def row_max(x, num_per_row):
        return x.max(dim=1).values

    anchors, others = torch.tensor([0, 0, 1]), torch.tensor([1, 2, 0])
    losses = torch.tensor([1.0, 5.0, 2.0], dtype=torch.float64)
    sub = {"losses": losses, "indices": (anchors, others), "reduction_type": "neg_pair"}
    r = reducers.PerAnchorReducer(reducers.SumReducer(), aggregation_func=row_max)
    assert float(r({"loss": sub}, _emb(n=3), None)) == 7.0


def test_aggregation_func_row_mean_and_empty_rows():
    x = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    out = reducers.aggregation_func(x, torch.tensor([2, 0]))
    assert out.tolist() == [1.5, 0.0]


# ---------------------------------------------------------------------------- MultipleReducers
def _three_sub_losses():
    pos, neg = _values(torch.float64, seed=3), _values(torch.float64, seed=4)
    extra = torch.tensor(0.25, dtype=torch.float64)
    loss_dict = {
        "pos_loss": _sub_loss("pos_pair", pos),
        "neg_loss": _sub_loss("neg_pair", neg),
        "reg": {"losses": extra, "indices": None, "reduction_type": "already_reduced"},
    }
    return loss_dict, pos.tolist(), neg.tolist(), 0.25


def test_multiple_reducers_sum_named_and_default():
    loss_dict, pos, neg, extra = _three_sub_losses()
    r = reducers.MultipleReducers(
        {"pos_loss": reducers.SumReducer(), "neg_loss": reducers.AvgNonZeroReducer()}
    )
    emb = _emb(torch.float32)
    out = r(loss_dict, emb, None)
    assert out.dtype == torch.float32
    expected = sum(pos) + ref_threshold(neg, 0, None) + extra
    assert out.item() == pytest.approx(expected, rel=1e-6)
    children = dict(r.named_children())
    assert isinstance(children["default_reducer"], reducers.MeanReducer)
    assert set(children["reducers"]) == {"pos_loss", "neg_loss"}


def test_multiple_reducers_custom_default():
    loss_dict, pos, neg, extra = _three_sub_losses()
    r = reducers.MultipleReducers({}, default_reducer=reducers.SumReducer())
    assert float(r(loss_dict, _emb(), None)) == pytest.approx(sum(pos) + sum(neg) + extra)


def test_multiple_reducers_empty_dict_is_connected_zero():
    emb = _emb()
    out = reducers.MultipleReducers({})({}, emb, None)
    assert out.item() == 0 and out.requires_grad


def test_multiple_reducers_sub_loss_reduction_hook_gets_a_tensor():
    """PML's extension hook: ``sub_loss_reduction(sub_losses, embeddings, labels)``."""

    class MeanOfSubLosses(reducers.MultipleReducers):
        def sub_loss_reduction(self, sub_losses, embeddings=None, labels=None):
            return torch.mean(sub_losses)

    loss_dict, pos, neg, extra = _three_sub_losses()
    out = MeanOfSubLosses({})(loss_dict, _emb(), None)
    assert out.item() == pytest.approx((ref_mean(pos) + ref_mean(neg) + extra) / 3)


# ---------------------------------------------------------------------------- DoNothingReducer
def test_do_nothing_returns_the_dict_itself():
    loss_dict, *_ = _three_sub_losses()
    assert reducers.DoNothingReducer()(loss_dict, _emb(), None) is loss_dict


# ---------------------------------------------------------------------------- BaseReducer
def test_custom_reducer_needs_only_element_reduction():
    class AnchorWeighted(reducers.BaseReducer):
        def element_reduction(self, losses, loss_indices, embeddings, labels):
            return (losses * loss_indices.to(losses.dtype)).sum()

    losses = _values(torch.float64)
    for kind in ("pos_pair", "neg_pair", "triplet"):
        sub = _sub_loss(kind, losses)
        expected = sum(
            v * a for v, a in zip(losses.tolist(), sub["indices"][0].tolist(), strict=True)
        )
        assert float(AnchorWeighted()({"loss": sub}, _emb(), None)) == pytest.approx(expected)


LOSSES = torch.ones(3, dtype=torch.float64)
BASE_ERRORS = [
    (
        "two_entries",
        {
            "a": {"losses": LOSSES, "indices": torch.arange(3), "reduction_type": "element"},
            "b": {"losses": LOSSES, "indices": torch.arange(3), "reduction_type": "element"},
        },
        ValueError,
        r"expected a loss dict with exactly one entry, got \['a', 'b'\]",
    ),
    (
        "bad_type",
        {"loss": {"losses": LOSSES, "indices": torch.arange(3), "reduction_type": "pair"}},
        ValueError,
        r"expected reduction_type in \[.*\], got 'pair'",
    ),
    (
        "bad_length",
        {"loss": {"losses": LOSSES, "indices": torch.arange(2), "reduction_type": "element"}},
        ValueError,
        r"expected 1 index tensor\(s\) of length 3 for 'element' losses, got lengths \[2\]",
    ),
    (
        "bad_pair_count",
        {
            "loss": {
                "losses": LOSSES,
                "indices": (torch.arange(3),) * 3,
                "reduction_type": "pos_pair",
            }
        },
        ValueError,
        r"expected 2 index tensor\(s\) of length 3 for 'pos_pair'",
    ),
    (
        "big_already_reduced",
        {"loss": {"losses": LOSSES, "indices": None, "reduction_type": "already_reduced"}},
        ValueError,
        r"expected an already_reduced loss with one element, got shape \(3,\)",
    ),
    (
        "list_losses",
        {"loss": {"losses": [1.0, 2.0], "indices": torch.arange(2), "reduction_type": "element"}},
        TypeError,
        r"expected `losses` to be a tensor, got list",
    ),
    (
        "none_indices",
        {"loss": {"losses": LOSSES, "indices": None, "reduction_type": "element"}},
        TypeError,
        r"expected index tensor\(s\) for 'element' losses, got \['NoneType'\]",
    ),
    (
        "tensor_pair_indices",
        {"loss": {"losses": LOSSES, "indices": torch.arange(3), "reduction_type": "triplet"}},
        TypeError,
        r"expected a tuple of 3 index tensors for 'triplet' losses, got Tensor",
    ),
]


@pytest.mark.parametrize(
    ("name", "loss_dict", "exc", "match"), BASE_ERRORS, ids=[c[0] for c in BASE_ERRORS]
)
def test_base_reducer_errors(name, loss_dict, exc, match):
    with pytest.raises(exc, match=match):
        reducers.MeanReducer()(loss_dict, _emb(), None)


def test_base_reducer_without_element_reduction_raises():
    sub = _sub_loss("element", _values(torch.float64))
    with pytest.raises(
        NotImplementedError, match="BaseReducer does not implement element_reduction"
    ):
        reducers.BaseReducer()({"loss": sub}, _emb(), None)
