"""Contracts every registered regularizer keeps (parametrized over ``REGULARIZERS``)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from deepmetric._registry import REGULARIZERS

CONSTRUCTOR_ARGS = {"SparseCentersRegularizer": {"num_classes": 3, "centers_per_class": 2}}
NAMES = REGULARIZERS.names()


def _make(name):
    return REGULARIZERS.build(name, **CONSTRUCTOR_ARGS.get(name, {}))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scalar_backprop_dtype_copy(name, dtype):
    reg = _make(name)
    x = torch.randn(6, 5, dtype=dtype, requires_grad=True)
    out = reg(x)
    assert out.ndim == 0 and out.dtype == dtype
    out.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for clone in (copy.deepcopy(reg), pickle.loads(pickle.dumps(reg))):
        torch.testing.assert_close(clone(x), out.detach())
    _make(name).load_state_dict(reg.state_dict())
    assert name in repr(reg)
