"""DistributedLossWrapper / DistributedMinerWrapper with real processes (2 gloo ranks on CPU).

Every distributed case is checked against one process computing on the concatenated batch,
in float64: the returned loss is ``world_size * L`` and, after DDP-style averaging of the
model's gradients over ranks, the gradient equals the single-process gradient.
"""

from __future__ import annotations

import datetime
import gc
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from deepmetric.distributed import gather as G
from deepmetric.distributed.loss_wrapper import DistributedLossWrapper
from deepmetric.distributed.miner_wrapper import DistributedMinerWrapper
from deepmetric.losses.arcface_loss import ArcFaceLoss
from deepmetric.losses.contrastive_loss import ContrastiveLoss
from deepmetric.losses.cross_batch_memory import CrossBatchMemory
from deepmetric.losses.ntxent_loss import NTXentLoss
from deepmetric.losses.triplet_margin_loss import TripletMarginLoss
from deepmetric.miners.triplet_margin_miner import TripletMarginMiner

WORLD = 2
RTOL, ATOL = 1e-6, 1e-10
D_IN, D_OUT = 6, 4


# ------------------------------------------------------------------ harness
def _worker(rank: int, init_file: str, case: str, world: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=30),
    )
    try:
        CASES[case](rank)
        dist.barrier()  # no rank tears the group down while another still communicates
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path: Path, case: str, world: int = WORLD) -> None:
    init_file = str(tmp_path / "pg_init")
    mp.spawn(_worker, args=(init_file, case, world), nprocs=world, join=True)


def _data(sizes: tuple[int, ...], n_classes: int = 3, seed: int = 0):
    """Inputs of every rank (concatenated in rank order), labels and a shared linear model."""
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    x = torch.randn(n, D_IN, generator=g, dtype=torch.float64)
    labels = torch.randint(0, n_classes, (n,), generator=g)
    torch.manual_seed(seed)
    model = torch.nn.Linear(D_IN, D_OUT).double()
    starts = [sum(sizes[:r]) for r in range(len(sizes))]
    slices = [slice(s, s + k) for s, k in zip(starts, sizes, strict=True)]
    return x, labels, model, slices


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL)


def _averaged_grads(model: torch.nn.Module) -> list[torch.Tensor]:
    """What DDP does: all-reduce the parameters' gradients and divide by the world size."""
    out = []
    for p in model.parameters():
        assert p.grad is not None
        g = p.grad.clone()
        dist.all_reduce(g)
        out.append(g / WORLD)
    return out


def _check_against_single_process(
    rank: int,
    sizes: tuple[int, ...],
    distributed_call: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    single_call: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    n_classes: int = 3,
) -> None:
    x, labels, model, slices = _data(sizes, n_classes)
    # single process, concatenated batch
    emb_all = model(x)
    emb_all.retain_grad()
    ref_loss = single_call(emb_all, labels)
    ref_loss.backward()
    ref_param_grads = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    ref_emb_grad = emb_all.grad
    model.zero_grad()
    # this rank
    sl = slices[rank]
    emb = model(x[sl])
    emb.retain_grad()
    loss = distributed_call(emb, labels[sl])
    _close(loss, WORLD * ref_loss.detach())
    loss.backward()
    # each rank's embeddings get world_size x their share of the single-process gradient
    _close(emb.grad / WORLD, ref_emb_grad[sl])
    # the sum over ranks of those shares is the single-process gradient (DDP averaging)
    for got, want in zip(_averaged_grads(model), ref_param_grads, strict=True):
        _close(got, want)


# ------------------------------------------------------------------ cases (run in each rank)
def _case_contrastive(rank: int) -> None:
    loss_fn = ContrastiveLoss(pos_margin=0.1, neg_margin=1.0)
    wrapper = DistributedLossWrapper(loss_fn)
    for sizes in ((5, 5), (4, 7)):  # equal and unequal batch sizes
        _check_against_single_process(
            rank, sizes, lambda e, y: wrapper(e, y), lambda e, y: loss_fn(e, y)
        )


def _case_triplet_miner(rank: int) -> None:
    loss_fn = TripletMarginLoss(margin=0.5)
    miner = TripletMarginMiner(margin=0.5, type_of_triplets="all")
    loss_w, miner_w = DistributedLossWrapper(loss_fn), DistributedMinerWrapper(miner)

    def distributed(e: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        indices = miner_w(e, y)
        assert len(indices[0]) > 0
        return loss_w(e, y, indices)

    _check_against_single_process(
        rank, (6, 6), distributed, lambda e, y: loss_fn(e, y, miner(e, y))
    )


def _case_ntxent(rank: int) -> None:
    loss_fn = NTXentLoss(temperature=0.1)
    wrapper = DistributedLossWrapper(loss_fn)
    _check_against_single_process(
        rank, (6, 6), lambda e, y: wrapper(e, y), lambda e, y: loss_fn(e, y)
    )
    # with ref_emb: queries and references both gathered
    x, labels, model, slices = _data((5, 5), seed=1)
    ref_x = x.flip(0) * 0.5
    ref_all = model(ref_x)
    emb_all = model(x)
    ref_loss = loss_fn(emb_all, labels, ref_emb=ref_all, ref_labels=labels.flip(0))
    ref_loss.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    model.zero_grad()
    sl = slices[rank]
    loss = wrapper(
        model(x[sl]), labels[sl], ref_emb=model(ref_x[sl]), ref_labels=labels.flip(0)[sl]
    )
    _close(loss, WORLD * ref_loss.detach())
    loss.backward()
    for got, want in zip(_averaged_grads(model), ref_grads, strict=True):
        _close(got, want)


def _case_efficient(rank: int) -> None:
    """Local anchors against the gathered batch: the value and gradient of the loss on
    (local queries, all references with the other ranks' rows as constants)."""
    loss_fn = ContrastiveLoss(pos_margin=0.1, neg_margin=1.0)
    loss_w = DistributedLossWrapper(loss_fn, efficient=True)
    x, labels, model, slices = _data((5, 7), seed=2)
    sl = slices[rank]
    others = torch.cat([model(x[s]) for q, s in enumerate(slices) if q != rank]).detach()
    other_labels = torch.cat([labels[s] for q, s in enumerate(slices) if q != rank])
    # reference: plain loops build (anchor, ref) pairs, skipping each anchor with itself
    emb = model(x[sl])
    emb.retain_grad()
    ref = torch.cat([emb, others])
    ref_labels = torch.cat([labels[sl], other_labels])
    a1, p, a2, n = [], [], [], []
    for i in range(len(emb)):
        for j in range(len(ref)):
            if ref_labels[j] == labels[sl][i] and j != i:
                a1.append(i), p.append(j)
            elif ref_labels[j] != labels[sl][i]:
                a2.append(i), n.append(j)
    idx = tuple(torch.tensor(v, dtype=torch.long) for v in (a1, p, a2, n))
    ref_loss = loss_fn(emb, labels[sl], idx, ref, ref_labels)
    ref_loss.backward()
    ref_emb_grad = emb.grad.clone()  # type: ignore[union-attr]
    model.zero_grad()

    emb = model(x[sl])
    emb.retain_grad()
    loss = loss_w(emb, labels[sl])
    _close(loss, WORLD * ref_loss.detach())
    loss.backward()
    _close(emb.grad / WORLD, ref_emb_grad)

    # the efficient miner wrapper gives local anchors and gathered references, no self-pairs
    miner_w = DistributedMinerWrapper(TripletMarginMiner(margin=10.0), efficient=True)
    a, pos, neg = miner_w(emb.detach(), labels[sl])
    assert int(a.max()) < len(emb) and int(pos.max()) >= len(emb)  # other ranks' rows used
    assert not bool((a == pos).any())
    expected = sum(
        1
        for i in range(len(emb))
        for j in range(len(ref))
        for k in range(len(ref))
        if ref_labels[j] == labels[sl][i] and j != i and ref_labels[k] != labels[sl][i]
    )
    assert len(a) == expected
    out = loss_w(emb, labels[sl], (a, pos, neg))
    _close(out, WORLD * loss_fn(emb, labels[sl], (a, pos, neg), ref, ref_labels))

    # explicit ref_emb: local queries against every rank's references; row i of the references
    # is not sample i, so no pair is dropped (PML 2.9.0 drops the (i, i) positives here)
    ref_x = x.flip(0) * 0.5
    ref_labels_all = labels.flip(0)
    ref_local = model(ref_x[sl]).detach().requires_grad_()
    others_ref = torch.cat([model(ref_x[s]) for q, s in enumerate(slices) if q != rank]).detach()
    others_ref_labels = torch.cat([ref_labels_all[s] for q, s in enumerate(slices) if q != rank])
    all_ref = torch.cat([ref_local, others_ref])
    all_ref_labels = torch.cat([ref_labels_all[sl], others_ref_labels])
    want = loss_fn(emb, labels[sl], None, all_ref, all_ref_labels)
    want_grads = torch.autograd.grad(want, (emb, ref_local))
    got = loss_w(emb, labels[sl], None, ref_local, ref_labels_all[sl])
    _close(got, WORLD * want)
    for g_got, g_want in zip(torch.autograd.grad(got, (emb, ref_local)), want_grads, strict=True):
        _close(g_got / WORLD, g_want)
    miner = TripletMarginMiner(margin=0.3)
    mined = DistributedMinerWrapper(miner, efficient=True)(
        emb.detach(), labels[sl], ref_local.detach(), ref_labels_all[sl]
    )
    expected_idx = miner(emb.detach(), labels[sl], all_ref.detach(), all_ref_labels)
    for u, v in zip(mined, expected_idx, strict=True):
        assert torch.equal(u, v)


def _case_arcface(rank: int) -> None:
    """A loss with parameters: W gets the single-process gradient on every rank (no x W)."""
    torch.manual_seed(5)
    loss_fn = ArcFaceLoss(num_classes=3, embedding_size=D_OUT).double()
    wrapper = DistributedLossWrapper(loss_fn)
    _check_against_single_process(
        rank, (5, 5), lambda e, y: wrapper(e, y), lambda e, y: loss_fn(e, y)
    )
    # _check_against_single_process zeroed only the model: W holds ref grad + rank grad
    w_grad = loss_fn.W.grad.clone()  # type: ignore[union-attr]
    gathered = [torch.zeros_like(w_grad) for _ in range(WORLD)]
    dist.all_gather(gathered, w_grad)
    _close(gathered[0], gathered[1])  # identical on every rank: replicas stay in sync
    loss_fn.W.grad = None
    x, labels, model, slices = _data((5, 5))
    loss_fn(model(x), labels).backward()
    ref_w_grad = loss_fn.W.grad.clone()  # type: ignore[union-attr]
    _close(w_grad, 2 * ref_w_grad)  # single-process share + distributed share
    # the same under DDP on the wrapper (PML #710): averaging identical gradients keeps them
    loss_fn.W.grad = None
    ddp_loss = torch.nn.parallel.DistributedDataParallel(wrapper)
    sl = slices[rank]
    ddp_loss(model(x[sl]), labels[sl]).backward()
    _close(loss_fn.W.grad, ref_w_grad)
    # free DDP's reducer (and its threads) while the process group is still alive
    del ddp_loss
    gc.collect()


def _case_cross_batch_memory(rank: int) -> None:
    """Two steps: every rank's memory holds both ranks' batches; same values and gradients."""
    single = CrossBatchMemory(ContrastiveLoss(), D_OUT, memory_size=32).double()
    wrapped_cbm = CrossBatchMemory(ContrastiveLoss(), D_OUT, memory_size=32).double()
    wrapper = DistributedLossWrapper(wrapped_cbm)
    for step in range(2):
        x, labels, model, slices = _data((4, 4), seed=10 + step)
        sl = slices[rank]
        ref_loss = single(model(x), labels)
        ref_loss.backward()
        ref_grads = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
        model.zero_grad()
        loss = wrapper(model(x[sl]), labels[sl])
        _close(loss, WORLD * ref_loss.detach())
        loss.backward()
        for got, want in zip(_averaged_grads(model), ref_grads, strict=True):
            _close(got, want)
    assert int(wrapped_cbm.queue_idx) == 16
    # enqueue_mask is gathered too: only the flagged rows of both ranks are stored
    mask = torch.tensor([True, False, True, False])
    x, labels, model, slices = _data((4, 4), seed=20)
    wrapper(model(x[slices[rank]]), labels[slices[rank]], enqueue_mask=mask)
    assert int(wrapped_cbm.queue_idx) == 20


def _case_gather_helpers(rank: int) -> None:
    emb = torch.full((rank + 2, 3), float(rank), dtype=torch.float64, requires_grad=True)
    labels = torch.full((rank + 2,), rank)
    assert G.is_distributed()
    others = G.all_gather(emb)
    assert others is not None and others.shape == (3 - rank, 3)
    assert bool((others == 1 - rank).all())
    all_emb, all_labels, _ = G.gather(emb, labels)
    assert all_emb.shape == (5, 3) and bool((all_labels[: rank + 2] == rank).all())
    all_emb.sum().backward()
    _close(emb.grad, torch.ones_like(emb))  # gradient reaches the local rows only
    mask = G.gather_enqueue_mask(torch.ones(rank + 2, dtype=torch.bool), emb.device)
    assert mask is not None and mask.dtype == torch.bool and mask.shape == (5,)


def _case_world_size_one(rank: int) -> None:
    """An initialized group of one process: plain loss and miner, one warning each."""
    assert dist.get_world_size() == 1
    emb = torch.randn(6, 3, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    loss_fn, miner = NTXentLoss(), TripletMarginMiner()
    loss_w, miner_w = DistributedLossWrapper(loss_fn), DistributedMinerWrapper(miner)
    with pytest.warns(UserWarning, match="DistributedLossWrapper: world size is 1"):
        _close(loss_w(emb, labels), loss_fn(emb, labels))
    with pytest.warns(UserWarning, match="DistributedMinerWrapper: world size is 1"):
        got = miner_w(emb, labels)
    for a, b in zip(got, miner(emb, labels), strict=True):
        assert torch.equal(a, b)
    assert G.all_gather(emb) is None


def _case_pml_parity(rank: int) -> None:
    """Same values and embedding gradients as PML 2.9.0's wrappers, in both modes."""
    from pytorch_metric_learning import losses as pml_losses
    from pytorch_metric_learning import miners as pml_miners
    from pytorch_metric_learning.utils import distributed as pml_dist

    x, labels, model, slices = _data((6, 6), seed=3)  # PML needs equal batch sizes
    sl = slices[rank]
    for efficient in (False, True):
        results = []
        for loss_fn, miner, wrap_loss, wrap_miner in (
            (
                ContrastiveLoss(),
                TripletMarginMiner(margin=0.3),
                DistributedLossWrapper,
                DistributedMinerWrapper,
            ),
            (
                pml_losses.ContrastiveLoss(),
                pml_miners.TripletMarginMiner(margin=0.3),
                pml_dist.DistributedLossWrapper,
                pml_dist.DistributedMinerWrapper,
            ),
        ):
            loss_w = wrap_loss(loss_fn, efficient=efficient)
            miner_w = wrap_miner(miner, efficient=efficient)
            emb = model(x[sl]).detach().requires_grad_()
            plain = loss_w(emb, labels[sl])
            (grad,) = torch.autograd.grad(plain, emb)
            emb2 = model(x[sl]).detach().requires_grad_()
            mined = loss_w(emb2, labels[sl], miner_w(emb2, labels[sl]))
            (grad2,) = torch.autograd.grad(mined, emb2)
            ref = model(x[sl].flip(0) * 0.5).detach().requires_grad_()
            ref_labels = labels[sl].flip(0)
            ref_idx = miner_w(emb, labels[sl], ref, ref_labels)
            with_ref = loss_w(emb, labels[sl], None, ref, ref_labels)
            (grad3,) = torch.autograd.grad(with_ref, ref)
            if efficient:  # deliberate deviation, see _case_efficient
                results.append((plain, grad, mined, grad2))
            else:
                results.append((plain, grad, mined, grad2, *ref_idx, with_ref, grad3))
        for got, want in zip(*results, strict=True):
            if got.is_floating_point():
                _close(got, want.to(got.dtype))
            else:
                assert torch.equal(got, want)


CASES: dict[str, Callable[[int], None]] = {
    "contrastive": _case_contrastive,
    "triplet_miner": _case_triplet_miner,
    "ntxent": _case_ntxent,
    "efficient": _case_efficient,
    "arcface": _case_arcface,
    "cross_batch_memory": _case_cross_batch_memory,
    "gather_helpers": _case_gather_helpers,
}
_SINGLE_CASES = {"world_size_one": _case_world_size_one}
CASES.update(_SINGLE_CASES)
_PARITY_CASES = {"pml_parity": _case_pml_parity}
CASES.update(_PARITY_CASES)


@pytest.mark.parametrize("case", sorted(set(CASES) - set(_PARITY_CASES) - set(_SINGLE_CASES)))
def test_two_gloo_ranks_match_single_process(tmp_path: Path, case: str) -> None:
    _spawn(tmp_path, case)


@pytest.mark.parity
def test_two_gloo_ranks_match_pml(tmp_path: Path) -> None:
    pytest.importorskip("pytorch_metric_learning")
    _spawn(tmp_path, "pml_parity")


def test_initialized_group_of_one_falls_back(tmp_path: Path) -> None:
    _spawn(tmp_path, "world_size_one", world=1)


# ------------------------------------------------------------------ single process
def test_single_process_falls_back_with_one_warning() -> None:
    assert not G.is_distributed()
    emb = torch.randn(8, 4, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss_fn = ContrastiveLoss()
    wrapper = DistributedLossWrapper(loss_fn)
    with pytest.warns(UserWarning, match="DistributedLossWrapper: torch.distributed is not"):
        out = wrapper(emb, labels)
    _close(out, loss_fn(emb, labels))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wrapper(emb, labels)  # warned once only
    miner = TripletMarginMiner()
    miner_w = DistributedMinerWrapper(miner)
    with pytest.warns(UserWarning, match="DistributedMinerWrapper: torch.distributed is not"):
        got = miner_w(emb, labels)
    for a, b in zip(got, miner(emb, labels), strict=True):
        assert torch.equal(a, b)
    assert G.all_gather(emb) is None
    assert G.gather(emb, labels)[0] is emb
    assert G.select_ref_or_regular(1, None) == 1 and G.select_ref_or_regular(1, 2) == 2


def test_bad_input_errors() -> None:
    emb = torch.randn(4, 3)
    labels = torch.tensor([0, 0, 1, 1])
    with pytest.raises(TypeError, match="DistributedLossWrapper: expected `loss` to be a Base"):
        DistributedLossWrapper(torch.nn.MSELoss())
    with pytest.raises(TypeError, match="expected `efficient` to be a bool"):
        DistributedLossWrapper(ContrastiveLoss(), efficient=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CrossBatchMemory already uses `ref_emb`"):
        DistributedLossWrapper(CrossBatchMemory(ContrastiveLoss(), 3), efficient=True)
    with pytest.raises(TypeError, match="DistributedMinerWrapper: expected `miner` to be a Base"):
        DistributedMinerWrapper(ContrastiveLoss())
    with pytest.raises(TypeError, match="DistributedMinerWrapper: expected `efficient`"):
        DistributedMinerWrapper(TripletMarginMiner(), efficient="yes")  # type: ignore[arg-type]

    wrapper = DistributedLossWrapper(ContrastiveLoss())
    with pytest.raises(ValueError, match=r"expected `embeddings` of shape \(N, D\)"):
        wrapper(torch.randn(4), labels)
    with pytest.raises(ValueError, match=r"expected `labels` of shape \(N,\) with N=4"):
        wrapper(emb, labels[:3])
    with pytest.raises(ValueError, match="`ref_labels` only together with `ref_emb`"):
        wrapper(emb, labels, ref_labels=labels)
    with pytest.raises(ValueError, match="expected `ref_emb` of dimension D=3"):
        wrapper(emb, labels, ref_emb=torch.randn(4, 2))
    with pytest.raises(ValueError, match="`enqueue_mask` only with a CrossBatchMemory"):
        wrapper(emb, labels, enqueue_mask=torch.ones(4, dtype=torch.bool))
    cbm_w = DistributedLossWrapper(CrossBatchMemory(ContrastiveLoss(), 3))
    with pytest.raises(ValueError, match="no `ref_emb`/`ref_labels` with a CrossBatchMemory"):
        cbm_w(emb, labels, ref_emb=emb)

    miner_w = DistributedMinerWrapper(TripletMarginMiner())
    with pytest.raises(TypeError, match="DistributedMinerWrapper: expected `emb` to be a torch"):
        miner_w([[0.0]], labels)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected `ref_labels` together with `ref_emb`"):
        miner_w(emb, labels, ref_emb=emb)
    with pytest.raises(ValueError, match="`ref_labels` only together with `ref_emb`"):
        miner_w(emb, labels, ref_labels=labels)
    with pytest.raises(ValueError, match="expected `embeddings` and `ref_emb` together"):
        G.get_indices_tuple(labels, labels, miner=TripletMarginMiner())


def test_signatures_match_pml() -> None:
    import inspect

    pml = pytest.importorskip("pytorch_metric_learning.utils.distributed")
    for ours, theirs in (
        (DistributedLossWrapper, pml.DistributedLossWrapper),
        (DistributedMinerWrapper, pml.DistributedMinerWrapper),
    ):
        for name in ("__init__", "forward"):
            got = inspect.signature(getattr(ours, name))
            want = inspect.signature(getattr(theirs, name))
            assert list(got.parameters) == list(want.parameters)
            assert [p.default for p in got.parameters.values()] == [
                p.default for p in want.parameters.values()
            ]
