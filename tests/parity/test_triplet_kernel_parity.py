"""PML's ``TripletMarginLoss`` (all triplets, no miner) as the oracle for the all-triplets kernel.

deepmetric side: the distance matrix from the normalised embeddings (``torch.cdist`` for
``LpDistance``, a dot product for ``CosineSimilarity``), label masks (self pairs removed when there
is no reference set), then :func:`all_triplets_margin_loss`. Value and embedding gradients must
agree with PML to 1e-6 relative.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from deepmetric.functional.reductions import IntervalMean
from deepmetric.functional.triplet_losses import all_triplets_margin_loss

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
pml_reducers = pytest.importorskip("pytorch_metric_learning.reducers")

pytestmark = pytest.mark.parity

# name -> (PML reducer factory, equivalent IntervalMean)
REDUCERS = {
    "mean": (lambda: pml_reducers.MeanReducer(), IntervalMean(None, None, True)),
    "sum": (lambda: pml_reducers.SumReducer(), IntervalMean(None, None, False)),
    "avg_nonzero": (lambda: pml_reducers.AvgNonZeroReducer(), IntervalMean(0.0, None, True)),
    "threshold": (
        lambda: pml_reducers.ThresholdReducer(low=0.01, high=0.3),
        IntervalMean(0.01, 0.3, True),
    ),
    "threshold_neg_low": (
        lambda: pml_reducers.ThresholdReducer(low=-1.0, high=0.2),
        IntervalMean(-1.0, 0.2, True),
    ),
}

CASES = list(
    itertools.product(
        [0.05, 0.5],  # margin
        [False, True],  # swap
        [False, True],  # smooth_loss
        ["lp", "cosine"],
        REDUCERS,
    )
)


def _inputs(separate_ref: bool) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(7)
    emb = torch.randn(24, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (24,), generator=g)
    if separate_ref:  # 16 < 24 rows, so PML's mat[p, n] under swap stays in range
        ref = torch.randn(16, 6, generator=g, dtype=torch.float64)
        ref_labels = torch.randint(0, 4, (16,), generator=g)
    else:
        ref, ref_labels = emb, labels
    return emb, labels, ref, ref_labels


def _kernel_loss(emb, labels, ref, ref_labels, *, separate_ref, margin, swap, smooth, dist, spec):
    q = torch.nn.functional.normalize(emb, dim=1)
    r = torch.nn.functional.normalize(ref, dim=1) if separate_ref else q
    mat = q @ r.T if dist == "cosine" else torch.cdist(q, r)
    same = labels[:, None] == ref_labels[None, :]
    pos = same.clone()
    if not separate_ref:
        pos.fill_diagonal_(False)
    return all_triplets_margin_loss(
        mat,
        pos,
        ~same,
        margin=margin,
        is_inverted=dist == "cosine",
        swap=swap,
        smooth_loss=smooth,
        reduction=spec,
        max_block_elements=500,  # several blocks
    )


@pytest.mark.parametrize("separate_ref", [False, True], ids=["self", "ref"])
@pytest.mark.parametrize(("margin", "swap", "smooth_loss", "distance", "reducer"), CASES)
def test_all_triplets_kernel_matches_pml(
    margin, swap, smooth_loss, distance, reducer, separate_ref
):
    make_reducer, spec = REDUCERS[reducer]
    emb, labels, ref, ref_labels = _inputs(separate_ref)

    pml_emb = emb.clone().requires_grad_()
    pml_ref = ref.clone().requires_grad_() if separate_ref else None
    pml_loss_fn = pml_losses.TripletMarginLoss(
        margin=margin,
        swap=swap,
        smooth_loss=smooth_loss,
        distance=pml_distances.CosineSimilarity()
        if distance == "cosine"
        else pml_distances.LpDistance(),
        reducer=make_reducer(),
    )
    if separate_ref:
        expected = pml_loss_fn(pml_emb, labels, ref_emb=pml_ref, ref_labels=ref_labels)
    else:
        expected = pml_loss_fn(pml_emb, labels)

    our_emb = emb.clone().requires_grad_()
    our_ref = ref.clone().requires_grad_() if separate_ref else our_emb
    ours = _kernel_loss(
        our_emb,
        labels,
        our_ref,
        ref_labels,
        separate_ref=separate_ref,
        margin=margin,
        swap=swap,
        smooth=smooth_loss,
        dist=distance,
        spec=spec,
    )
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, expected.detach(), rtol=1e-6, atol=1e-12)

    pml_inputs = [pml_emb, pml_ref] if separate_ref else [pml_emb]
    our_inputs = [our_emb, our_ref] if separate_ref else [our_emb]
    if not expected.requires_grad:  # PML returns a constant zero when there are no triplets
        assert ours.item() == 0.0
        return
    # PML's zero loss (nothing kept) is `embeddings.sum() * 0`: ref_emb is not in its graph
    pml_grads = torch.autograd.grad(expected, pml_inputs, allow_unused=True)
    our_grads = torch.autograd.grad(ours, our_inputs)
    for inp, our_g, pml_g in zip(pml_inputs, our_grads, pml_grads, strict=True):
        pml_g = torch.zeros_like(inp) if pml_g is None else pml_g
        torch.testing.assert_close(our_g, pml_g, rtol=1e-6, atol=1e-12)
