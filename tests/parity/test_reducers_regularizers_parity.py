"""Reducers and regularizers against PML 2.9.0 as an oracle (float64): values, stats, gradients."""

from __future__ import annotations

import pytest
import torch

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import reducers as pml_reducers  # noqa: E402
from pytorch_metric_learning import regularizers as pml_regularizers  # noqa: E402

from deepmetric import distances, reducers, regularizers  # noqa: E402

pytestmark = pytest.mark.parity

N, T, NUM_CLASSES = 10, 30, 4
REL = 1e-6


def _weights():
    return torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)


# name -> builder(lib) ; both libraries expose the same constructor arguments
REDUCERS = {
    "mean": lambda lib: lib.MeanReducer(),
    "sum": lambda lib: lib.SumReducer(),
    "threshold_low0": lambda lib: lib.ThresholdReducer(low=0),
    "threshold_high": lambda lib: lib.ThresholdReducer(high=0.4),
    "threshold_both": lambda lib: lib.ThresholdReducer(low=-0.3, high=0.7),
    "avg_non_zero": lambda lib: lib.AvgNonZeroReducer(),
    "avg_non_zero_high": lambda lib: lib.AvgNonZeroReducer(high=1.0),
    "divisor": lambda lib: lib.DivisorReducer(),
    "class_weighted": lambda lib: lib.ClassWeightedReducer(_weights()),
    "per_anchor": lambda lib: lib.PerAnchorReducer(),
    "per_anchor_sum": lambda lib: lib.PerAnchorReducer(lib.SumReducer()),
    "per_anchor_avg_non_zero": lambda lib: lib.PerAnchorReducer(lib.AvgNonZeroReducer()),
}
KINDS = ["element", "pos_pair", "neg_pair", "triplet", "already_reduced"]


def _loss_dict(kind, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    losses = torch.randn(T, generator=g, dtype=torch.float64)
    losses[::3] = 0
    if kind == "element":
        indices = torch.randint(0, N, (T,), generator=g)
    elif kind in ("pos_pair", "neg_pair"):
        flat = torch.randperm(N * N, generator=g)[:T]  # distinct pairs, all indices < N
        indices = (flat // N, flat % N)
    elif kind == "triplet":
        indices = tuple(torch.randint(0, N, (T,), generator=g) for _ in range(3))
    else:
        losses, indices = losses.sum(), None
    losses.requires_grad_(requires_grad)
    sub = {"losses": losses, "indices": indices, "reduction_type": kind, "divisor": 11}
    return {"loss": sub}, losses


def _emb():
    return torch.randn(N, 3, dtype=torch.float64)


def _labels():
    return torch.arange(N) % NUM_CLASSES


# ---------------------------------------------------------------------------- reducers
# PerAnchorReducer rejects triplets in both libraries (tested below)
CASES = [
    (name, kind)
    for name in sorted(REDUCERS)
    for kind in KINDS
    if not (name.startswith("per_anchor") and kind == "triplet")
]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_reducer_value_and_gradient(name, kind):
    emb, labels = _emb(), _labels()
    results = []
    for lib in (reducers, pml_reducers):
        loss_dict, losses = _loss_dict(kind, requires_grad=True)
        out = REDUCERS[name](lib)(loss_dict, emb, labels)
        (grad,) = torch.autograd.grad(out, losses, allow_unused=True)
        results.append((out.item(), grad))
    (ours, our_grad), (theirs, their_grad) = results
    assert ours == pytest.approx(theirs, rel=REL, abs=1e-12)
    if their_grad is not None:
        torch.testing.assert_close(our_grad, their_grad, rtol=REL, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REDUCERS))
def test_reducer_zero_loss(name):
    emb = _emb().requires_grad_()
    sub = {"losses": 0, "indices": None, "reduction_type": "already_reduced"}
    ours = REDUCERS[name](reducers)({"loss": dict(sub)}, emb, _labels())
    theirs = REDUCERS[name](pml_reducers)({"loss": dict(sub)}, emb, _labels())
    assert ours.item() == theirs.item() == 0
    assert ours.requires_grad == theirs.requires_grad


def test_per_anchor_triplet_raises_in_both():
    loss_dict, _ = _loss_dict("triplet")
    for lib in (reducers, pml_reducers):
        with pytest.raises(NotImplementedError, match=r"[Tt]riplet"):
            lib.PerAnchorReducer()(loss_dict, _emb(), None)


@pytest.mark.parametrize(
    "build",
    [
        lambda lib: lib.ThresholdReducer(low=0, collect_stats=True),
        lambda lib: lib.ThresholdReducer(low=-0.3, high=0.7, collect_stats=True),
        lambda lib: lib.AvgNonZeroReducer(collect_stats=True),
    ],
)
def test_threshold_stats_match_pml(build):
    loss_dict, _ = _loss_dict("triplet")
    ours, theirs = build(reducers), build(pml_reducers)
    ours(loss_dict, _emb(), None)
    theirs(loss_dict, _emb(), None)
    assert int(ours.num_past_filter) == int(theirs.num_past_filter)
    assert int(ours.num_above_low) == int(theirs.num_above_low)
    assert int(ours.losses_size) == int(theirs.losses_size)
    # Deliberate fix: PML stores its count under `num_above_high` and leaves
    # `num_below_high` at 0; ours counts the terms below `high` under the declared name.
    if ours.high is not None:
        assert int(theirs.num_below_high) == 0 and int(ours.num_below_high) > 0


def test_divisor_stat_matches_pml():
    loss_dict, _ = _loss_dict("neg_pair")
    ours = reducers.DivisorReducer(collect_stats=True)
    theirs = pml_reducers.DivisorReducer(collect_stats=True)
    assert ours(loss_dict, _emb(), None).item() == pytest.approx(
        theirs(loss_dict, _emb(), None).item(), rel=REL
    )
    assert int(ours.divisor) == int(theirs.divisor) == 11


def test_multiple_reducers_match_pml():
    pos, _ = _loss_dict("pos_pair", seed=1)
    neg, _ = _loss_dict("neg_pair", seed=2)
    extra = {
        "losses": torch.tensor(0.3, dtype=torch.float64),
        "indices": None,
        "reduction_type": "already_reduced",
    }
    loss_dict = {"pos_loss": pos["loss"], "neg_loss": neg["loss"], "reg": extra}
    outs = []
    for lib in (reducers, pml_reducers):
        r = lib.MultipleReducers(
            {"pos_loss": lib.SumReducer(), "neg_loss": lib.AvgNonZeroReducer()},
            default_reducer=lib.MeanReducer(),
        )
        outs.append(r(loss_dict, _emb(), None).item())
    assert outs[0] == pytest.approx(outs[1], rel=REL)


def test_do_nothing_matches_pml():
    loss_dict, _ = _loss_dict("element")
    assert reducers.DoNothingReducer()(loss_dict, _emb(), None) is loss_dict
    assert pml_reducers.DoNothingReducer()(loss_dict, _emb(), None) is loss_dict


# ---------------------------------------------------------------------------- regularizers
REGULARIZERS = {
    "lp": lambda lib, d: lib.LpRegularizer(),
    "lp_p1_power2": lambda lib, d: lib.LpRegularizer(p=1, power=2),
    "lp_p3": lambda lib, d: lib.LpRegularizer(p=3),
    "center_invariant": lambda lib, d: lib.CenterInvariantRegularizer(),
    "center_invariant_l1": lambda lib, d: lib.CenterInvariantRegularizer(
        distance=d.LpDistance(p=1, power=1, normalize_embeddings=False)
    ),
    "regular_face": lambda lib, d: lib.RegularFaceRegularizer(),
    "regular_face_dot": lambda lib, d: lib.RegularFaceRegularizer(
        distance=d.DotProductSimilarity(normalize_embeddings=False)
    ),
    "sparse_centers_5x3": lambda lib, d: lib.SparseCentersRegularizer(5, 3),
    "sparse_centers_3x4": lambda lib, d: lib.SparseCentersRegularizer(3, 4),
    "sparse_centers_cos_power2": lambda lib, d: lib.SparseCentersRegularizer(
        3, 4, distance=d.CosineSimilarity(power=2)
    ),
    "zero_mean": lambda lib, d: lib.ZeroMeanRegularizer(),
}


def _rows(name):
    n = {"5x3": 15}.get(name.split("_")[-1], 12)
    return torch.randn(n, 8, dtype=torch.float64) * 2


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_regularizer_value_and_gradient(name):
    w = _rows(name)
    outs = []
    for lib, d in ((regularizers, distances), (pml_regularizers, pml_distances)):
        x = w.clone().requires_grad_()
        out = REGULARIZERS[name](lib, d)(x)
        (grad,) = torch.autograd.grad(out, x)
        outs.append((out.item(), grad))
    (ours, our_grad), (theirs, their_grad) = outs
    assert ours == pytest.approx(theirs, rel=REL)
    torch.testing.assert_close(our_grad, their_grad, rtol=REL, atol=1e-12)


def test_sparse_centers_stats_and_recordables_vs_pml():
    w = _rows("3x4")
    ours = regularizers.SparseCentersRegularizer(3, 4, collect_stats=True)
    theirs = pml_regularizers.SparseCentersRegularizer(3, 4, collect_stats=True)
    ours(w)
    theirs(w)
    assert ours.same_class_center_sim.item() == pytest.approx(theirs.same_class_center_sim, rel=REL)
    assert ours.diff_class_center_sim.item() == pytest.approx(theirs.diff_class_center_sim, rel=REL)
    assert torch.equal(ours.same_class_mask, theirs.same_class_mask)
    assert torch.equal(ours.diff_class_mask, theirs.diff_class_mask)
    # Deliberate deviation: PML never assigns these recordables, so they read 0.
    assert (theirs.num_classes, theirs.centers_per_class) == (0, 0)
    assert (ours.num_classes, ours.centers_per_class) == (3, 4)
