"""Contracts every registered miner keeps (parametrized over ``MINERS``)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from deepmetric import losses
from deepmetric._registry import MINERS

CONSTRUCTOR_ARGS = {
    "MaximumLossMiner": lambda: {"loss": losses.TripletMarginLoss(), "output_batch_size": 8},
}
NAMES = MINERS.names()


def _make(name):
    return MINERS.build(name, **CONSTRUCTOR_ARGS.get(name, dict)())


def _batch(n=18, d=6):
    return torch.randn(n, d), torch.arange(n) % 3


def _mine(miner, x, y):
    torch.manual_seed(3)  # random miners repeat their draws
    return miner(x, y)


def test_registry_lists_the_miners():
    assert {"TripletMarginMiner", "MultiSimilarityMiner", "BatchHardMiner"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_output_is_valid_indices(name):
    miner = _make(name)
    x, y = _batch()
    out = _mine(miner, x, y)
    if getattr(miner, "is_subset_batch_miner", False):
        assert out.dtype == torch.long and out.ndim == 1 and len(out) == 8
        assert len(set(out.tolist())) == 8 and int(out.max()) < len(x)
        return
    assert isinstance(out, tuple) and len(out) in (3, 4)
    for t in out:
        assert t.dtype == torch.long and t.device == x.device
        assert t.numel() == 0 or (int(t.min()) >= 0 and int(t.max()) < len(x))
    loss_fn = losses.ContrastiveLoss() if len(out) == 4 else losses.TripletMarginLoss()
    assert loss_fn(x.requires_grad_(), y, out).ndim == 0


@pytest.mark.parametrize("name", NAMES)
def test_copy_pickle_repr(name):
    miner = _make(name)
    x, y = _batch()
    expected = _mine(miner, x, y)
    for clone in (copy.deepcopy(miner), pickle.loads(pickle.dumps(miner))):
        got = _mine(clone, x, y)
        got, want = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b)
    assert name in repr(miner)


@pytest.mark.parametrize("name", NAMES)
def test_length_mismatch_is_a_clear_error(name):
    x, y = _batch()
    with pytest.raises(ValueError, match="labels"):
        _make(name)(x, y[:-1])
