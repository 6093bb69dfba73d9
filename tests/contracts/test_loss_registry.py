"""Contracts every registered loss keeps (parametrized over ``LOSSES``)."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

from deepmetric import losses  # noqa: F401  (registers the losses)
from deepmetric._registry import LOSSES

#: constructor arguments for losses that have required parameters
_CLASSES = {"num_classes": 4, "embedding_size": 8}
CONSTRUCTOR_ARGS: dict[str, dict] = {
    "RankedListLoss": {"margin": 0.4, "Tn": 1.0},
    "ManifoldLoss": {"l": 8, "K": 4},
    "P2SGradLoss": {"descriptors_dim": 8, "num_classes": 4},
    "ProxyNCALoss": _CLASSES,
    **{
        name: _CLASSES
        for name in (
            "ArcFaceLoss",
            "CosFaceLoss",
            "LargeMarginSoftmaxLoss",
            "NormalizedSoftmaxLoss",
            "ProxyAnchorLoss",
            "SoftTripleLoss",
            "SphereFaceLoss",
            "SubCenterArcFaceLoss",
        )
    },
}
NAMES = LOSSES.names()


def _has_class_vectors(name: str) -> bool:
    return LOSSES.build(name, **CONSTRUCTOR_ARGS.get(name, {})).has_trainable_parameters()


#: losses whose zero rules are about pairs of labels: not ManifoldLoss (no labels) nor the
#: classification losses (one sample against its class vector is a real loss)
PAIRWISE = [n for n in NAMES if LOSSES.get(n).supports_labels and not _has_class_vectors(n)]


def _make(name: str):
    return LOSSES.build(name, **CONSTRUCTOR_ARGS.get(name, {}))


#: extra call arguments: VICReg compares two views of a batch and takes no labels
CALL_KWARGS = {"VICRegLoss": lambda x: {"ref_emb": x.flip(0) * 0.5}}
#: losses that need a second view: ref_emb is their input, not an optional extra
NEEDS_REF = set(CALL_KWARGS)


def _call(loss_fn, x, y, *args, **kwargs):
    """Call with labels when the loss takes them; reseed so random assignments repeat."""
    torch.manual_seed(1)
    extra = CALL_KWARGS.get(type(loss_fn).__name__, lambda _: {})(x)
    if not loss_fn.supports_labels:
        return loss_fn(x, *args, **(extra | kwargs))
    return loss_fn(x, y, *args, **(extra | kwargs))


def _batch(dtype=torch.float32, n=16, d=8):
    return torch.randn(n, d, dtype=dtype, requires_grad=True), torch.arange(n) % 4


def test_registry_lists_the_losses():
    assert {"ContrastiveLoss", "TripletMarginLoss"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scalar_backprop_dtype(name, dtype):
    x, y = _batch(dtype)
    out = _call(_make(name), x, y)
    assert out.ndim == 0 and out.dtype == dtype
    out.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", PAIRWISE)
def test_single_sample_batch_is_connected_zero(name):
    x = torch.randn(1, 8, requires_grad=True)
    out = _make(name)(x, torch.zeros(1, dtype=torch.long))
    assert out.item() == 0
    out.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NEEDS_REF])
def test_ref_emb_honoured_or_rejected(name):
    loss_fn = _make(name)
    x, y = _batch()
    ref, ref_y = torch.randn(10, 8), torch.arange(10) % 4
    if not loss_fn.supports_ref_emb:
        with pytest.raises(ValueError, match="ref_emb"):
            _call(loss_fn, x, y, ref_emb=ref, ref_labels=ref_y if loss_fn.supports_labels else None)
        return
    with_ref = loss_fn(x, y, ref_emb=ref, ref_labels=ref_y)
    without = loss_fn(x, y)
    assert with_ref.item() != pytest.approx(without.item())


@pytest.mark.parametrize("name", NAMES)
def test_indices_tuple_honoured_or_rejected(name):
    loss_fn = _make(name)
    x, y = _batch()
    t = (torch.tensor([0, 1]), torch.tensor([4, 5]), torch.tensor([2, 3]))
    if not loss_fn.supports_indices_tuple:
        with pytest.raises(ValueError, match="indices_tuple"):
            _call(loss_fn, x, y, indices_tuple=t)
        return
    assert loss_fn(x, y, t).item() != pytest.approx(loss_fn(x, y).item())


@pytest.mark.parametrize("name", NAMES)
def test_copy_pickle_state_dict(name):
    loss_fn = _make(name)
    x, y = _batch()
    expected = _call(loss_fn, x, y)
    for clone in (copy.deepcopy(loss_fn), pickle.loads(pickle.dumps(loss_fn))):
        torch.testing.assert_close(_call(clone, x, y), expected)
    buffer = io.BytesIO()
    torch.save(loss_fn.state_dict(), buffer)
    buffer.seek(0)
    _make(name).load_state_dict(torch.load(buffer))


@pytest.mark.parametrize("name", NAMES)
def test_repr_shows_hyperparameters(name):
    loss_fn = _make(name)
    text = repr(loss_fn)
    assert name in text
    for attr in loss_fn._record_these:
        value = getattr(loss_fn, attr)
        if isinstance(value, (int, float)):
            assert f"{attr}=" in text
