"""Subset batch miners: MaximumLossMiner keeps the highest-loss random subset; seeding; errors."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from conftest import ALL_DTYPES
from deepmetric._registry import MINERS
from deepmetric.functional.sampling import random_subsets
from deepmetric.functional.tuples import get_all_triplets_indices
from deepmetric.losses.contrastive_loss import ContrastiveLoss
from deepmetric.losses.triplet_margin_loss import TripletMarginLoss
from deepmetric.miners.base_subset_batch_miner import BaseSubsetBatchMiner
from deepmetric.miners.maximum_loss_miner import MaximumLossMiner


def _batch(n=20, d=6, classes=4, dtype=torch.float64):
    return torch.randn(n, d, dtype=dtype), torch.randint(0, classes, (n,))


def spread_loss(embeddings, labels, indices_tuple=None):
    """A hand loss: mean squared distance of same-class pairs, as plain float64 loops."""
    e = embeddings.double().tolist()
    y = labels.tolist()
    terms = [
        sum((a - b) ** 2 for a, b in zip(e[i], e[j], strict=True))
        for i in range(len(y))
        for j in range(len(y))
        if i != j and y[i] == y[j]
    ]
    return torch.tensor(sum(terms) / len(terms) if terms else 0.0)


class FirstTriplets:
    """A tuple miner returning the first 5 of all triplets of the subset (records its calls)."""

    def __init__(self):
        self.calls = []

    def __call__(self, embeddings, labels):
        self.calls.append(labels.clone())
        return tuple(t[:5] for t in get_all_triplets_indices(labels))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_picks_the_max_loss_trial_by_hand(seed):
    x, y = _batch()
    miner = MaximumLossMiner(
        spread_loss,
        num_trials=6,
        output_batch_size=8,
        generator=torch.Generator().manual_seed(seed),
    )
    out = miner(x, y)
    trials = random_subsets(20, 8, 6, generator=torch.Generator().manual_seed(seed))
    losses = [float(spread_loss(x[idx], y[idx])) for idx in trials]
    best = max(range(6), key=lambda i: (losses[i], -i))  # first maximum
    assert torch.equal(out, trials[best])
    assert out.dtype == torch.long and out.shape == (8,)


def test_with_a_tuple_miner_and_a_library_loss():
    x, y = _batch(n=30)
    inner = FirstTriplets()
    loss = TripletMarginLoss(margin=0.5)
    miner = MaximumLossMiner(
        loss, inner, num_trials=4, output_batch_size=12, generator=torch.Generator().manual_seed(3)
    )
    out = miner(x, y)
    trials = random_subsets(30, 12, 4, generator=torch.Generator().manual_seed(3))
    assert len(inner.calls) == 4
    for idx, seen in zip(trials, inner.calls, strict=True):
        assert torch.equal(seen, y[idx])  # the miner saw each subset
    losses = [
        float(loss(x[idx], y[idx], tuple(t[:5] for t in get_all_triplets_indices(y[idx]))))
        for idx in trials
    ]
    assert torch.equal(out, trials[losses.index(max(losses))])


def test_subset_rows_distinct_and_result_is_a_trial():
    x, y = _batch(n=10)
    miner = MaximumLossMiner(ContrastiveLoss(), num_trials=3, output_batch_size=10)
    out = miner(x, y)
    assert sorted(out.tolist()) == list(range(10))  # a full-size subset is a permutation


def test_seeding():
    x, y = _batch(n=40)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        m = MaximumLossMiner(TripletMarginLoss(), output_batch_size=10, generator=g)
        return m(x, y), m(x, y)

    a1, a2 = run(0)
    b1, b2 = run(0)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2)  # the generator advances between calls
    assert not torch.equal(a1, run(1)[0])
    torch.manual_seed(5)  # no generator: torch's default generator
    c = MaximumLossMiner(TripletMarginLoss(), output_batch_size=10)(x, y)
    torch.manual_seed(5)
    assert torch.equal(MaximumLossMiner(TripletMarginLoss(), output_batch_size=10)(x, y), c)


def test_loss_runs_without_grad():
    x, y = _batch()
    x.requires_grad_()
    seen = []

    def loss(e, lab, t):
        seen.append((torch.is_grad_enabled(), e.requires_grad))
        return e.sum()

    out = MaximumLossMiner(loss, num_trials=2, output_batch_size=5)(x, y)
    assert seen == [(False, False)] * 2
    assert not out.requires_grad


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes(dtype):
    x, y = _batch(dtype=dtype)
    g = torch.Generator().manual_seed(0)
    out = MaximumLossMiner(TripletMarginLoss(), output_batch_size=8, generator=g)(x, y)
    assert out.dtype == torch.long and len(set(out.tolist())) == 8


def test_registry_records_copy_and_pickle():
    assert "MaximumLossMiner" in MINERS
    assert MaximumLossMiner.is_subset_batch_miner and BaseSubsetBatchMiner.is_subset_batch_miner
    g = torch.Generator().manual_seed(0)
    m = MaximumLossMiner(TripletMarginLoss(), num_trials=3, output_batch_size=4, generator=g)
    assert m._record_these == ["output_batch_size", "num_trials"]
    assert "output_batch_size=4, num_trials=3" in repr(m)
    x, y = _batch()
    clones = [copy.deepcopy(m), pickle.loads(pickle.dumps(m))]
    expected = m(x, y)
    for clone in clones:
        assert torch.equal(clone(x, y), expected)  # the generator state is copied too
    built = MINERS.build({"name": "MaximumLossMiner", "loss": spread_loss, "output_batch_size": 4})
    assert built.num_trials == 5 and built.miner is None


def test_errors():
    x, y = _batch(n=6)
    with pytest.raises(
        ValueError, match=r"a batch of at least output_batch_size=8 embeddings, got 6\."
    ):
        MaximumLossMiner(spread_loss, output_batch_size=8)(x, y)
    with pytest.raises(TypeError, match="a callable `loss`"):
        MaximumLossMiner("loss", output_batch_size=2)
    with pytest.raises(TypeError, match="a callable `miner` or None"):
        MaximumLossMiner(spread_loss, 3, output_batch_size=2)
    with pytest.raises(ValueError, match="`num_trials` >= 1, got 0"):
        MaximumLossMiner(spread_loss, num_trials=0, output_batch_size=2)
    with pytest.raises(TypeError, match="`num_trials` to be an int"):
        MaximumLossMiner(spread_loss, num_trials=2.5, output_batch_size=2)
    with pytest.raises(ValueError, match="`output_batch_size` >= 1, got 0"):
        MaximumLossMiner(spread_loss, output_batch_size=0)
    with pytest.raises(TypeError, match="`output_batch_size` to be an int"):
        MaximumLossMiner(spread_loss, output_batch_size=True)
    with pytest.raises(TypeError, match=r"`generator` to be a torch\.Generator"):
        MaximumLossMiner(spread_loss, output_batch_size=2, generator=0)
    with pytest.raises(ValueError, match="`loss` to return a scalar"):
        MaximumLossMiner(lambda e, lab, t: e.sum(dim=1), output_batch_size=2)(x, y)
    with pytest.raises(ValueError, match=r"`labels` of shape \(N,\) with N=6"):
        MaximumLossMiner(spread_loss, output_batch_size=2)(x, y[:5])
    with pytest.raises(TypeError, match="floating-point `embeddings`"):
        MaximumLossMiner(spread_loss, output_batch_size=2)(x.long(), y)


class Returns(BaseSubsetBatchMiner):
    def __init__(self, value):
        super().__init__(output_batch_size=3)
        self.value = value

    def mine(self, embeddings, labels):
        return self.value


def test_base_output_checks():
    x, y = _batch(n=5)
    assert torch.equal(Returns(torch.tensor([4, 0, 2]))(x, y), torch.tensor([4, 0, 2]))
    with pytest.raises(TypeError, match=r"mine\(\) to return a 1-D LongTensor, got torch\.int32"):
        Returns(torch.tensor([0, 1, 2], dtype=torch.int32))(x, y)
    with pytest.raises(TypeError, match=r"mine\(\) to return a 1-D LongTensor, got list"):
        Returns([0, 1, 2])(x, y)
    with pytest.raises(ValueError, match=r"output_batch_size=3 indices, got 2"):
        Returns(torch.tensor([0, 1]))(x, y)
    with pytest.raises(ValueError, match=r"indices within \[0, 5\), got \[0, 5\]"):
        Returns(torch.tensor([0, 1, 5]))(x, y)
    with pytest.raises(NotImplementedError):
        BaseSubsetBatchMiner(output_batch_size=2)(x, y)


@pytest.mark.needs_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_embeddings_with_cpu_generator():
    x, y = _batch()
    g = torch.Generator().manual_seed(0)
    out = MaximumLossMiner(TripletMarginLoss(), output_batch_size=8, generator=g)(
        x.cuda(), y.cuda()
    )
    assert out.is_cuda
