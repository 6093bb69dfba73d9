"""Property tests: the losses are invariant to batch order, label names and (for normalised
distances) the embeddings' scale."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmetric import distances, losses

LOSSES = {
    "contrastive": lambda: losses.ContrastiveLoss(pos_margin=0.1, neg_margin=0.9),
    "triplet": lambda: losses.TripletMarginLoss(margin=0.2),
    "triplet_smooth_cos": lambda: losses.TripletMarginLoss(
        margin=0.2, smooth_loss=True, distance=distances.CosineSimilarity()
    ),
}

batches = st.tuples(st.integers(4, 14), st.integers(2, 4), st.integers(0, 2**31 - 1))


def _batch(n, classes, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(
        0, classes, (n,), generator=g
    )


@pytest.mark.parametrize("name", sorted(LOSSES))
@settings(max_examples=25, deadline=None)
@given(batch=batches, scale=st.floats(0.01, 100))
def test_invariances(name, batch, scale):
    x, y = _batch(*batch)
    loss_fn = LOSSES[name]()
    base = loss_fn(x, y).item()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(batch[2]))
    assert loss_fn(x[perm], y[perm]).item() == pytest.approx(base, rel=1e-9, abs=1e-12)
    relabelled = y * 7 + 3  # a bijection of label values
    assert loss_fn(x, relabelled).item() == pytest.approx(base, rel=1e-9, abs=1e-12)
    assert loss_fn(x * scale, y).item() == pytest.approx(base, rel=1e-7, abs=1e-10)
