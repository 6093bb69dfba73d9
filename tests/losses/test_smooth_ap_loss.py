"""SmoothAPLoss: loop reference, kernel (blocks, ragged masks, gradcheck), miner weights, zero
rules, dtypes, memory and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric import distances, reducers
from deepmetric._registry import LOSSES
from deepmetric.functional import smooth_ap as F
from deepmetric.losses.smooth_ap_loss import SmoothAPLoss
from reference import smooth_ap_ref as R


def _batch(classes=4, per_class=3, d=6, dtype=torch.float64, shuffle=True):
    y = torch.arange(classes).repeat_interleave(per_class)
    if shuffle:
        y = y[torch.randperm(len(y))]
    return torch.randn(len(y), d, dtype=dtype), y


def _approx(value, rel=1e-9, abs=1e-12):
    return pytest.approx(value, rel=rel, abs=abs)


def _mean(values):
    return sum(values) / len(values)


# ============================================================================ registry, defaults
def test_registered_with_defaults():
    assert "SmoothAPLoss" in LOSSES
    loss_fn = SmoothAPLoss()
    assert loss_fn.temperature == 0.01
    assert isinstance(loss_fn.distance, distances.CosineSimilarity)
    assert isinstance(loss_fn.reducer, reducers.MeanReducer)
    assert loss_fn._record_these == []
    assert loss_fn.sub_loss_names() == ["ap_loss"]
    assert "temperature=0.5" in repr(SmoothAPLoss(temperature=0.5))
    assert SmoothAPLoss(distance=distances.CosineSimilarity()).distance is not None
    assert SmoothAPLoss(temperature=np.float32(0.25)).temperature == 0.25
    assert SmoothAPLoss(temperature=1).temperature == 1


# ============================================================================ values
@pytest.mark.parametrize(
    ("classes", "per_class", "temperature"),
    [(4, 3, 0.01), (3, 4, 0.1), (2, 5, 1.0), (6, 2, 0.05), (1, 6, 0.3)],
)
def test_matches_reference(classes, per_class, temperature):
    x, y = _batch(classes, per_class)
    expected = _mean(R.smooth_ap_terms(x, y, temperature))
    assert SmoothAPLoss(temperature=temperature)(x, y).item() == _approx(expected)


def test_loss_dict():
    x, y = _batch(3, 4)
    out = SmoothAPLoss(temperature=0.2, reducer=reducers.DoNothingReducer())(x, y)
    assert list(out) == ["ap_loss"]
    sub = out["ap_loss"]
    assert sub["reduction_type"] == "element"
    assert sub["indices"].tolist() == list(range(12))
    expected = torch.tensor(R.smooth_ap_terms(x, y, 0.2), dtype=x.dtype)
    torch.testing.assert_close(sub["losses"], expected, rtol=1e-9, atol=1e-12)


def test_invariant_to_batch_order():
    """Positives come from the labels, not from where samples sit in the batch."""
    x, y = _batch(4, 3)
    perm = torch.randperm(len(y))
    loss_fn = SmoothAPLoss(temperature=0.1)
    assert loss_fn(x[perm], y[perm]).item() == _approx(loss_fn(x, y).item())
    relabelled = torch.tensor([7, 3, 11, 5])[y]
    assert loss_fn(x, relabelled).item() == _approx(loss_fn(x, y).item())


def test_scale_invariant():
    x, y = _batch(3, 3)
    loss_fn = SmoothAPLoss(temperature=0.1)
    assert loss_fn(x * 7.5, y).item() == _approx(loss_fn(x, y).item())


def test_perfect_ranking_approaches_zero():
    """Well separated classes and a small temperature: AP -> 1."""
    centers = torch.eye(4, dtype=torch.float64)
    y = torch.arange(4).repeat_interleave(3)
    x = centers[y] + 0.01 * torch.randn(12, 4, dtype=torch.float64)
    assert SmoothAPLoss(temperature=0.01)(x, y).item() < 1e-6


@pytest.mark.parametrize("form", ["triplets", "pairs", "empty"])
def test_miner_weights(form):
    x, y = _batch(4, 3)
    n = len(y)
    if form == "triplets":
        tuple_ = (torch.tensor([0, 1, 1]), torch.tensor([2, 3, 4]), torch.tensor([5, 5, 6]))
    elif form == "pairs":
        tuple_ = (
            torch.tensor([0, 3]),
            torch.tensor([1, 2]),
            torch.tensor([2, 4]),
            torch.tensor([5, 2]),
        )
    else:
        empty = torch.tensor([], dtype=torch.long)
        tuple_ = (empty, empty, empty)
    counts = [0] * n
    for t in tuple_:
        for i in t.tolist():
            counts[i] += 1
    top = max(counts)
    weights = [c / top for c in counts] if top else None
    expected = R.smooth_ap_terms(x, y, 0.1, weights=weights)
    out = SmoothAPLoss(temperature=0.1, reducer=reducers.DoNothingReducer())(x, y, tuple_)
    torch.testing.assert_close(
        out["ap_loss"]["losses"], torch.tensor(expected, dtype=x.dtype), rtol=1e-9, atol=1e-12
    )


# ============================================================================ kernel
def _ragged_case(n=7, m=9):
    sim = torch.randn(n, m, dtype=torch.float64).tanh()
    pos = torch.rand(n, m) < 0.4
    pos[0] = False  # a query without positives
    pos[1] = True  # a query whose every reference is positive
    pos[2, :] = False
    pos[2, 4] = True  # a single positive
    return sim, pos


def test_kernel_matches_reference_on_ragged_rectangular_masks():
    sim, pos = _ragged_case()
    out = F.smooth_ap_losses(sim, pos, temperature=0.3)
    expected = R.smooth_ap_masked(sim.tolist(), pos.tolist(), 0.3)
    torch.testing.assert_close(out, torch.tensor(expected, dtype=sim.dtype), rtol=1e-9, atol=1e-12)
    assert out[0].item() == 0 and out[1].item() == pytest.approx(0, abs=1e-15)


def test_kernel_gradcheck_ragged():
    sim, pos = _ragged_case()
    sim.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda s: F.smooth_ap_losses(s, pos, temperature=0.4, max_block_elements=20), (sim,)
    )


def test_kernel_without_any_positive():
    sim = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    out = F.smooth_ap_losses(sim, torch.zeros(3, 4, dtype=torch.bool))
    assert out.tolist() == [0, 0, 0]
    out.sum().backward()
    assert torch.equal(sim.grad, torch.zeros_like(sim))


@pytest.mark.parametrize("ragged", [False, True])
def test_blocks_do_not_change_the_result(ragged):
    if ragged:
        sim, pos = _ragged_case(9, 11)
    else:
        y = torch.arange(3).repeat_interleave(3)
        sim, pos = torch.randn(9, 9, dtype=torch.float64).tanh(), y[:, None] == y
    sim.requires_grad_()
    g = torch.randn(sim.shape[0], dtype=torch.float64)
    results = []
    for block in (1, 30, 100, 1 << 20):
        sim.grad = None
        out = F.smooth_ap_losses(sim, pos, temperature=0.2, max_block_elements=block)
        (out * g).sum().backward()
        results.append((out.detach(), sim.grad.clone()))
    for out, grad in results[1:]:
        torch.testing.assert_close(out, results[0][0], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(grad, results[0][1], rtol=1e-12, atol=1e-15)


def test_no_grad_forward_equals_grad_forward():
    sim, pos = _ragged_case()
    with torch.no_grad():
        plain = F.smooth_ap_losses(sim, pos, temperature=0.3)
    tracked = F.smooth_ap_losses(sim.clone().requires_grad_(), pos, temperature=0.3)
    assert not plain.requires_grad and tracked.requires_grad
    torch.testing.assert_close(plain, tracked.detach(), rtol=0, atol=0)


def test_saved_tensors_stay_quadratic():
    """Autograd keeps nothing larger than N x N (the straightforward form keeps N x K x N)."""
    x, y = _batch(4, 8, d=16)
    n = len(y)
    sizes: list[int] = []

    def pack(t):
        sizes.append(t.numel())
        return t

    e = x.requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = SmoothAPLoss()(e, y)
    out.backward()
    assert sizes and max(sizes) <= n * n


# ============================================================================ zero rules
@pytest.mark.parametrize("labels", [[0, 1, 2, 3, 4], [5], [2, 2, 2, 2]])
def test_degenerate_batches(labels):
    """All singletons or one sample: PML's zero. One class: AP = 1 exactly, so also zero."""
    x = torch.randn(len(labels), 5, dtype=torch.float64, requires_grad=True)
    out = SmoothAPLoss(temperature=0.5)(x, torch.tensor(labels))
    assert out.requires_grad
    assert out.item() == pytest.approx(0, abs=1e-12)
    out.backward()
    torch.testing.assert_close(x.grad, torch.zeros_like(x), rtol=0, atol=1e-12)


def test_singletons_loss_dict_is_connected_zeros():
    x = torch.randn(4, 3, requires_grad=True)
    sub = SmoothAPLoss(reducer=reducers.DoNothingReducer())(x, torch.arange(4))["ap_loss"]
    assert sub["reduction_type"] == "element" and sub["indices"].tolist() == [0, 1, 2, 3]
    assert sub["losses"].requires_grad and sub["losses"].tolist() == [0, 0, 0, 0]


# ============================================================================ dtypes, gradients
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("temperature", [0.01, 0.2])
def test_dtypes(dtype, temperature):
    x, y = _batch(4, 6, d=8, dtype=torch.float32)
    loss_fn = SmoothAPLoss(temperature=temperature)
    e64 = x.to(dtype).double().requires_grad_()
    expected = loss_fn(e64, y)
    expected.backward()
    e = x.to(dtype).requires_grad_()
    out = loss_fn(e, y)
    assert out.dtype == dtype
    out.backward()
    assert e.grad is not None and e.grad.dtype == dtype and torch.isfinite(e.grad.float()).all()
    tol = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 3e-2, torch.bfloat16: 1e-1}[
        dtype
    ]
    assert out.double().item() == pytest.approx(expected.item(), rel=tol, abs=tol)
    if dtype in (torch.float32, torch.float64):
        torch.testing.assert_close(e.grad.double(), e64.grad, rtol=tol * 10, atol=tol * 1e-2)


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_gradcheck_module(temperature):
    x, y = _batch(3, 3, d=4)
    loss_fn = SmoothAPLoss(temperature=temperature)
    assert torch.autograd.gradcheck(lambda e: loss_fn(e, y), (x.requires_grad_(),))


def test_gradcheck_with_weights_and_regularizer():
    from deepmetric.regularizers import LpRegularizer

    x, y = _batch(3, 3, d=4)
    tuple_ = (torch.tensor([0, 1]), torch.tensor([2, 2]), torch.tensor([4, 5]))
    loss_fn = SmoothAPLoss(temperature=0.3, embedding_regularizer=LpRegularizer())
    assert torch.autograd.gradcheck(lambda e: loss_fn(e, y, tuple_), (x.requires_grad_(),))


# ============================================================================ errors
def test_unequal_class_sizes():
    x = torch.randn(8, 4)
    with pytest.raises(ValueError, match=r"same number of samples.*\{0: 3, 1: 2, 2: 2, 3: 1\}"):
        SmoothAPLoss()(x, torch.tensor([0, 0, 0, 1, 1, 2, 2, 3]))
    with pytest.raises(ValueError, match="MPerClassSampler"):
        SmoothAPLoss()(x[:6], torch.tensor([3, 3, 3, 0, 1, 1]))


def test_unequal_class_sizes_message_is_capped():
    y = torch.cat([torch.arange(50), torch.tensor([0])])
    with pytest.raises(ValueError, match=r"0: 2, 1: 1, .*\.\.\. \(50 classes\)") as info:
        SmoothAPLoss()(torch.randn(51, 4), y)
    assert "49: 1" not in str(info.value)


def test_constructor_errors():
    for bad in (0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"SmoothAPLoss: expected `temperature` > 0"):
            SmoothAPLoss(temperature=bad)
    for bad in ("0.1", None, True):
        with pytest.raises(TypeError, match="`temperature` to be a number"):
            SmoothAPLoss(temperature=bad)  # type: ignore[arg-type]
    for dist in (distances.LpDistance(), distances.DotProductSimilarity(), "LpDistance"):
        with pytest.raises(ValueError, match="`distance` to be a CosineSimilarity"):
            SmoothAPLoss(distance=dist)


def test_forward_errors():
    x, y = _batch(3, 2)
    triplets = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    with pytest.raises(ValueError, match="labels"):
        SmoothAPLoss()(x)
    with pytest.raises(ValueError, match="labels"):
        SmoothAPLoss()(x, indices_tuple=triplets)
    with pytest.raises(ValueError, match="ref_emb"):
        SmoothAPLoss()(x, y, ref_emb=x.clone(), ref_labels=y)
    with pytest.raises(ValueError, match="ref_emb"):
        SmoothAPLoss()(x, y, ref_emb=torch.randn(4, 6, dtype=x.dtype), ref_labels=y[:4])
    # the query set passed again as the reference is accepted, as in PML
    assert SmoothAPLoss()(x, y, ref_emb=x, ref_labels=y).item() == _approx(
        SmoothAPLoss()(x, y).item()
    )


def test_kernel_errors():
    sim = torch.randn(3, 4)
    with pytest.raises(ValueError, match="bool `pos` of the same shape"):
        F.smooth_ap_losses(sim, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool `pos` of the same shape"):
        F.smooth_ap_losses(sim, torch.ones(3, 4))
    with pytest.raises(ValueError, match="bool `pos` of the same shape"):
        F.smooth_ap_losses(sim[0], torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="`temperature` > 0"):
        F.smooth_ap_losses(sim, torch.ones(3, 4, dtype=torch.bool), temperature=0.0)
