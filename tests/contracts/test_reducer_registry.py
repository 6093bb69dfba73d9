"""Contracts every registered reducer keeps (parametrized over ``REDUCERS``)."""

from __future__ import annotations

import pickle

import pytest
import torch

from deepmetric import reducers  # noqa: F401  (registers the reducers)
from deepmetric._registry import REDUCERS

CONSTRUCTOR_ARGS = {
    "ThresholdReducer": {"low": 0.1},
    "ClassWeightedReducer": {"weights": [1.0, 2.0, 3.0]},
    "MultipleReducers": {"reducers": {}},
}
NAMES = REDUCERS.names()


def _make(name):
    return REDUCERS.build(name, **CONSTRUCTOR_ARGS.get(name, {}))


def _element_dict(dtype):
    losses = torch.rand(6, dtype=dtype, requires_grad=True)
    # "divisor" is read by DivisorReducer and ignored by the others
    sub_loss = {
        "losses": losses,
        "indices": torch.arange(6),
        "reduction_type": "element",
        "divisor": 6,
    }
    return losses, {"loss": sub_loss}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reduces_element_losses_to_scalar(name, dtype):
    losses, loss_dict = _element_dict(dtype)
    emb = torch.randn(6, 3, dtype=dtype)
    out = _make(name)(loss_dict, emb, torch.arange(6) % 3)
    if name == "DoNothingReducer":
        assert out is loss_dict
        return
    assert out.ndim == 0 and out.dtype == dtype
    out.backward()
    assert losses.grad is not None


@pytest.mark.parametrize("name", NAMES)
def test_zero_loss_is_connected(name):
    emb = torch.randn(4, 3, requires_grad=True)
    out = _make(name)(
        {"loss": {"losses": 0, "indices": None, "reduction_type": "already_reduced"}}, emb, None
    )
    if name == "DoNothingReducer":
        return
    assert out.item() == 0
    out.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


@pytest.mark.parametrize("name", NAMES)
def test_pickle_round_trip(name):
    reducer = _make(name)
    _, loss_dict = _element_dict(torch.float64)
    emb = torch.randn(6, 3, dtype=torch.float64)
    clone = pickle.loads(pickle.dumps(reducer))
    if name != "DoNothingReducer":
        torch.testing.assert_close(
            clone(loss_dict, emb, torch.arange(6) % 3), reducer(loss_dict, emb, torch.arange(6) % 3)
        )


def test_unknown_reducer_name_suggests():
    with pytest.raises(ValueError, match="Did you mean 'MeanReducer'"):
        REDUCERS.build("MeanReduce")
    with pytest.raises(TypeError, match=r"unknown argument 'lo'.*Did you mean 'low'"):
        REDUCERS.build({"name": "ThresholdReducer", "lo": 0.1})
