"""CrossBatchMemory, MultipleLosses, SelfSupervisedLoss and VICRegLoss against PML 2.9.0:
values and gradients (float64, rel 1e-6), and the memory state over many iterations."""

from __future__ import annotations

import pytest
import torch

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import losses as pml_losses  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402
from pytorch_metric_learning import reducers as pml_reducers  # noqa: E402

from deepmetric.distances.cosine_similarity import CosineSimilarity  # noqa: E402
from deepmetric.losses.contrastive_loss import ContrastiveLoss  # noqa: E402
from deepmetric.losses.cross_batch_memory import CrossBatchMemory  # noqa: E402
from deepmetric.losses.multi_similarity_loss import MultiSimilarityLoss  # noqa: E402
from deepmetric.losses.multiple_losses import MultipleLosses  # noqa: E402
from deepmetric.losses.ntxent_loss import NTXentLoss  # noqa: E402
from deepmetric.losses.self_supervised_loss import SelfSupervisedLoss  # noqa: E402
from deepmetric.losses.triplet_margin_loss import TripletMarginLoss  # noqa: E402
from deepmetric.losses.vicreg_loss import VICRegLoss  # noqa: E402
from deepmetric.reducers.do_nothing_reducer import DoNothingReducer  # noqa: E402
from deepmetric.reducers.mean_reducer import MeanReducer  # noqa: E402

pytestmark = pytest.mark.parity


class PMLMinerAdapter(torch.nn.Module):
    """Hands deepmetric's wrappers the tuples of a PML miner, so both sides mine the same."""

    def __init__(self, miner):
        super().__init__()
        self.miner = miner

    def forward(self, embeddings, labels, ref_emb=None, ref_labels=None):
        return self.miner(embeddings, labels, ref_emb, ref_labels)


# (deepmetric factory, PML factory)
LOSSES = {
    "contrastive": (lambda: ContrastiveLoss(), lambda: pml_losses.ContrastiveLoss()),
    "contrastive_cos": (
        lambda: ContrastiveLoss(0.8, 0.4, distance=CosineSimilarity()),
        lambda: pml_losses.ContrastiveLoss(0.8, 0.4, distance=pml_distances.CosineSimilarity()),
    ),
    "triplet": (lambda: TripletMarginLoss(), lambda: pml_losses.TripletMarginLoss()),
    "triplet_m03_mean": (
        lambda: TripletMarginLoss(margin=0.3, reducer=MeanReducer()),
        lambda: pml_losses.TripletMarginLoss(margin=0.3, reducer=pml_reducers.MeanReducer()),
    ),
    "triplet_smooth": (
        lambda: TripletMarginLoss(margin=0.1, smooth_loss=True),
        lambda: pml_losses.TripletMarginLoss(margin=0.1, smooth_loss=True),
    ),
    "ntxent": (lambda: NTXentLoss(0.1), lambda: pml_losses.NTXentLoss(0.1)),
    "multi_similarity": (
        lambda: MultiSimilarityLoss(),
        lambda: pml_losses.MultiSimilarityLoss(),
    ),
}

#: batch sizes: fills the memory of 13 on the third call, then wraps again and again; a batch
#: as large as the memory. (No batch of 1: PML keeps that sample's self-comparison, a bug.)
STEPS = [5, 4, 6, 3, 13, 7, 2]


def _grad_pair(ours, theirs, x, *args, **kwargs):
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    va, vb = ours(a, *args, **kwargs), theirs(b, *args, **kwargs)
    va.backward()
    vb.backward()
    return (va.detach(), a.grad), (vb.detach(), b.grad)


def _assert_grads(ours, theirs):
    """Equal gradients; no gradient at all (None) counts as zeros."""
    if ours is None or theirs is None:
        assert all(g is None or not g.any() for g in (ours, theirs))
        return
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-10)


def _assert_same(ours, theirs):
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-6, atol=1e-12)
    _assert_grads(ours[1], theirs[1])


def _assert_same_state(ours, theirs):
    assert int(ours.queue_idx) == theirs.queue_idx
    assert bool(ours.has_been_filled) == theirs.has_been_filled
    assert torch.equal(ours.curr_batch_idx, theirs.curr_batch_idx)
    torch.testing.assert_close(ours.embedding_memory, theirs.embedding_memory, rtol=0, atol=0)
    assert torch.equal(ours.label_memory, theirs.label_memory)


# ---------------------------------------------------------------------- CrossBatchMemory
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_cross_batch_memory_many_iterations(loss):
    make_ours, make_theirs = LOSSES[loss]
    ours = CrossBatchMemory(make_ours(), 6, memory_size=13)
    theirs = pml_losses.CrossBatchMemory(make_theirs(), 6, memory_size=13)
    values = []
    for size in STEPS:
        x = torch.randn(size, 6, dtype=torch.float64)
        y = torch.randint(0, 3, (size,))
        mine, pmls = _grad_pair(ours, theirs, x, y)
        _assert_same(mine, pmls)
        _assert_same_state(ours, theirs)
        values.append(pmls[0].item())
    assert sum(v != 0 for v in values) >= len(values) // 2


@pytest.mark.parametrize("loss", ["contrastive", "triplet", "ntxent"])
def test_cross_batch_memory_enqueue_mask(loss):
    make_ours, make_theirs = LOSSES[loss]
    ours = CrossBatchMemory(make_ours(), 5, memory_size=11)
    theirs = pml_losses.CrossBatchMemory(make_theirs(), 5, memory_size=11)
    for step in range(6):
        n = 4
        x = torch.randn(2 * n, 5, dtype=torch.float64)
        ids = torch.arange(n) + step * n  # MoCo-style instance labels
        y = torch.cat([ids, ids])
        mask = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
        _assert_same(*_grad_pair(ours, theirs, x, y, enqueue_mask=mask))
        _assert_same_state(ours, theirs)


MINERS = {
    "pair_margin": lambda: pml_miners.PairMarginMiner(pos_margin=0.3, neg_margin=0.9),
    "triplet_margin": lambda: pml_miners.TripletMarginMiner(margin=0.3),
    "batch_hard": lambda: pml_miners.BatchHardMiner(),
    "multi_similarity": lambda: pml_miners.MultiSimilarityMiner(epsilon=0.2),
}


@pytest.mark.parametrize("miner", sorted(MINERS))
@pytest.mark.parametrize("loss", ["contrastive", "triplet_m03_mean"])
def test_cross_batch_memory_with_miner(miner, loss):
    make_ours, make_theirs = LOSSES[loss]
    pml_miner = MINERS[miner]()
    ours = CrossBatchMemory(make_ours(), 6, memory_size=13, miner=PMLMinerAdapter(pml_miner))
    theirs = pml_losses.CrossBatchMemory(make_theirs(), 6, memory_size=13, miner=pml_miner)
    values = []
    for size in STEPS:
        x = torch.randn(size, 6, dtype=torch.float64)
        y = torch.randint(0, 3, (size,))
        mine, pmls = _grad_pair(ours, theirs, x, y)
        _assert_same(mine, pmls)
        _assert_same_state(ours, theirs)
        values.append(pmls[0].item())
    assert sum(v != 0 for v in values) >= len(values) // 2


@pytest.mark.parametrize("form", ["pairs", "triplets"])
@pytest.mark.parametrize("with_miner", [False, True])
def test_cross_batch_memory_caller_tuple_is_appended(form, with_miner):
    miner = pml_miners.TripletMarginMiner(margin=0.5) if with_miner else None
    ours = CrossBatchMemory(
        TripletMarginLoss(margin=0.2),
        4,
        memory_size=10,
        miner=PMLMinerAdapter(miner) if miner else None,
    )
    theirs = pml_losses.CrossBatchMemory(
        pml_losses.TripletMarginLoss(margin=0.2), 4, memory_size=10, miner=miner
    )
    for size in (6, 6, 5):
        x = torch.randn(size, 4, dtype=torch.float64)
        y = torch.tensor([0, 0, 1, 1, 2, 2][:size])
        if form == "pairs":
            t = (
                torch.tensor([0, 2]),
                torch.tensor([1, 3]),
                torch.tensor([0, 4]),
                torch.tensor([2, 5]),
            )
        else:
            t = (torch.tensor([0, 2, 3]), torch.tensor([1, 3, 2]), torch.tensor([4, 0, 4]))
        _assert_same(*_grad_pair(ours, theirs, x, y, indices_tuple=t))


# ---------------------------------------------------------------------- MultipleLosses
@pytest.mark.parametrize("container", ["list", "dict"])
@pytest.mark.parametrize("with_miners", [False, True])
def test_multiple_losses(container, with_miners):
    ms = pml_miners.MultiSimilarityMiner(epsilon=0.1)
    ours_losses = [ContrastiveLoss(), TripletMarginLoss(margin=0.2), NTXentLoss(0.2)]
    theirs_losses = [
        pml_losses.ContrastiveLoss(),
        pml_losses.TripletMarginLoss(margin=0.2),
        pml_losses.NTXentLoss(0.2),
    ]
    weights = [0.5, 2.0, 1.5]
    ours_miners = [None, PMLMinerAdapter(ms), None] if with_miners else None
    theirs_miners = [None, ms, None] if with_miners else None
    if container == "dict":
        keys = ["c", "t", "n"]

        def as_dict(v):
            return None if v is None else dict(zip(keys, v, strict=True))

        ours_losses, theirs_losses, weights = map(as_dict, (ours_losses, theirs_losses, weights))
        if with_miners:
            ours_miners, theirs_miners = {"t": PMLMinerAdapter(ms)}, {"t": ms}
    ours = MultipleLosses(ours_losses, miners=ours_miners, weights=weights)
    theirs = pml_losses.MultipleLosses(theirs_losses, miners=theirs_miners, weights=weights)
    x = torch.randn(16, 8, dtype=torch.float64)
    y = torch.randint(0, 4, (16,))
    _assert_same(*_grad_pair(ours, theirs, x, y))
    if not with_miners:
        t = (torch.tensor([0, 1, 2]), torch.tensor([4, 5, 6]), torch.tensor([3, 9, 12]))
        _assert_same(*_grad_pair(ours, theirs, x, y, t))


# ---------------------------------------------------------------------- SelfSupervisedLoss
SSL_LOSSES = ["contrastive", "contrastive_cos", "triplet", "ntxent", "multi_similarity"]


@pytest.mark.parametrize("loss", SSL_LOSSES)
@pytest.mark.parametrize("symmetric", [True, False])
def test_self_supervised_loss(loss, symmetric):
    make_ours, make_theirs = LOSSES[loss]
    ours = SelfSupervisedLoss(make_ours(), symmetric=symmetric)
    theirs = pml_losses.SelfSupervisedLoss(make_theirs(), symmetric=symmetric)
    emb = torch.randn(10, 6, dtype=torch.float64)
    ref = emb + 0.8 * torch.randn(10, 6, dtype=torch.float64)
    e1, e2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    r1, r2 = ref.clone().requires_grad_(), ref.clone().requires_grad_()
    v1, v2 = ours(e1, r1), theirs(e2, r2)
    v1.backward()
    v2.backward()
    assert v2.item() > 0
    torch.testing.assert_close(v1.detach(), v2.detach(), rtol=1e-6, atol=1e-12)
    _assert_grads(e1.grad, e2.grad)
    _assert_grads(r1.grad, r2.grad)


# ---------------------------------------------------------------------- VICRegLoss
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"invariance_lambda": 3.0, "variance_mu": 0.5, "covariance_v": 7.0, "eps": 0.3},
        {"invariance_lambda": 0.0, "variance_mu": 10.0, "covariance_v": 0.0, "eps": 0.0},
    ],
)
@pytest.mark.parametrize("shape", [(16, 8), (5, 32)])
def test_vicreg(params, shape):
    z1 = torch.randn(*shape, dtype=torch.float64) * 0.7
    z2 = z1 + 0.2 * torch.randn(*shape, dtype=torch.float64)
    a1, a2 = z1.clone().requires_grad_(), z1.clone().requires_grad_()
    b1, b2 = z2.clone().requires_grad_(), z2.clone().requires_grad_()
    v1 = VICRegLoss(**params)(a1, ref_emb=b1)
    v2 = pml_losses.VICRegLoss(**params)(a2, ref_emb=b2)
    v1.backward()
    v2.backward()
    torch.testing.assert_close(v1.detach(), v2.detach(), rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(a1.grad, a2.grad, rtol=1e-6, atol=1e-10)
    torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-6, atol=1e-10)


def test_vicreg_sub_losses_match():
    z1, z2 = torch.randn(12, 6, dtype=torch.float64), torch.randn(12, 6, dtype=torch.float64)
    ours = VICRegLoss(reducer=DoNothingReducer())
    theirs = pml_losses.VICRegLoss(reducer=pml_reducers.DoNothingReducer())
    d1, d2 = ours(z1, ref_emb=z2), theirs(z1, ref_emb=z2)
    assert list(d1) == list(d2)
    for key in d2:
        torch.testing.assert_close(d1[key]["losses"], d2[key]["losses"], rtol=1e-6, atol=1e-12)
        assert d1[key]["reduction_type"] == d2[key]["reduction_type"]
