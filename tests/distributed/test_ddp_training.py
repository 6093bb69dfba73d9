"""Trainers, testers and hooks under DistributedDataParallel, with two real gloo processes.

Each worker joins the group the way a ``torchrun`` process does: ``init_distributed()`` reading
``MASTER_ADDR``/``MASTER_PORT``/``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from the environment.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import TensorDataset

from deepmetric.data_utils import WholeBatchSampler
from deepmetric.distributed import (
    DistributedLossWrapper,
    DistributedMinerWrapper,
    init_distributed,
    wrap_models,
)
from deepmetric.hooks import HookContainer
from deepmetric.hooks.presets import get_record_keeper
from deepmetric.losses.arcface_loss import ArcFaceLoss
from deepmetric.losses.triplet_margin_loss import TripletMarginLoss
from deepmetric.metrics.accuracy_calculator import AccuracyCalculator
from deepmetric.miners.triplet_margin_miner import TripletMarginMiner
from deepmetric.samplers import DistributedMPerClassSampler
from deepmetric.testers import GlobalEmbeddingSpaceTester, GlobalTwoStreamEmbeddingSpaceTester
from deepmetric.trainers import MetricLossOnly

WORLD = 2
N_CLASSES, PER_CLASS, D_IN, D_OUT = 8, 12, 8, 6
BATCH, M, EPOCHS = 8, 2, 2


# ------------------------------------------------------------------ harness
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, case: str, folder: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_WORLD_SIZE=str(WORLD),
    )
    with init_distributed(backend="gloo") as ctx:  # CPU tensors, also on a machine with GPUs
        assert (ctx.rank, ctx.world_size, ctx.backend) == (rank, WORLD, "gloo")
        again = init_distributed()  # the group exists: described, not created again
        assert (again.rank, again.backend, again.owns_group) == (rank, "gloo", False)
        with pytest.raises(ValueError, match="a 'gloo' group already set up"):
            init_distributed(backend="nccl")
        CASES[case](rank, Path(folder))


def _spawn(case: str, folder: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), case, str(folder)), nprocs=WORLD, join=True)


def _dataset() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(N_CLASSES).repeat_interleave(PER_CLASS)
    centres = torch.randn(N_CLASSES, D_IN, generator=g, dtype=torch.float64)
    x = centres[labels] + 0.7 * torch.randn(len(labels), D_IN, generator=g, dtype=torch.float64)
    return TensorDataset(x, labels)


def _trunk() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(D_IN, D_OUT).double()


def _sampler(rank: int) -> DistributedMPerClassSampler:
    labels = _dataset().tensors[1]
    return DistributedMPerClassSampler(
        labels, m=M, batch_size=BATCH, length_before_new_iter=len(labels),
        num_replicas=WORLD, rank=rank, seed=0,
    )  # fmt: skip


class _GlobalBatches(WholeBatchSampler):
    """One process's view of a distributed step: every rank's batch, concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.parts = [_sampler(r) for r in range(WORLD)]
        self.batch_size = WORLD * BATCH

    def set_epoch(self, epoch: int) -> None:
        for part in self.parts:
            part.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.parts[0])

    def __iter__(self):
        for batches in zip(*self.parts, strict=True):
            yield [i for batch in batches for i in batch]


def _trainer(models, loss, miner, sampler, batch_size: int, **kwargs: Any) -> MetricLossOnly:
    optimizers = {"trunk_optimizer": torch.optim.SGD(models["trunk"].parameters(), lr=0.1)}
    return MetricLossOnly(
        models, optimizers, batch_size, {"metric_loss": loss}, _dataset(),
        mining_funcs={"tuple_miner": miner}, sampler=sampler, data_device="cpu",
        dtype=torch.float64, dataloader_num_workers=0, show_progress=False, **kwargs,
    )  # fmt: skip


def _single_process_weights() -> dict[str, torch.Tensor]:
    trunk = _trunk()
    miner = TripletMarginMiner(margin=0.3, type_of_triplets="semihard")
    models = {"trunk": trunk, "embedder": torch.nn.Identity()}
    trainer = _trainer(models, TripletMarginLoss(margin=0.3), miner, _GlobalBatches(),
                       WORLD * BATCH)  # fmt: skip
    trainer.train(num_epochs=EPOCHS)
    return {k: v.clone() for k, v in trunk.state_dict().items()}


# ------------------------------------------------------------------ cases (run in each rank)
def _case_training(rank: int, folder: Path) -> None:
    models = wrap_models({"trunk": _trunk(), "embedder": torch.nn.Identity()}, device="cpu")
    assert isinstance(models["trunk"], torch.nn.parallel.DistributedDataParallel)
    assert isinstance(models["embedder"], torch.nn.Identity)  # nothing to train: not wrapped
    loss = DistributedLossWrapper(TripletMarginLoss(margin=0.3))
    miner = DistributedMinerWrapper(TripletMarginMiner(margin=0.3, type_of_triplets="semihard"))
    trainer = _trainer(models, loss, miner, _sampler(rank), BATCH)
    trainer.train(num_epochs=EPOCHS)
    assert trainer.sampler.epoch == EPOCHS  # the trainer called set_epoch
    torch.save(models["trunk"].module.state_dict(), folder / f"weights_rank{rank}.pt")
    trainer.save_checkpoint(folder / "checkpoint.pt")
    # every rank returns from save_checkpoint only once the file is complete
    state = torch.load(folder / "checkpoint.pt", weights_only=False)
    assert set(state["models"]["trunk"]) == {"weight", "bias"}  # no DDP "module." prefix
    # a loss with parameters that nothing keeps equal across ranks is flagged
    arcface = ArcFaceLoss(N_CLASSES, D_OUT)
    with pytest.warns(UserWarning, match=r"loss_funcs\['metric_loss'\] learns parameters"):
        _trainer({"trunk": _trunk()}, arcface, TripletMarginMiner(), _sampler(rank), BATCH)


def _dropout_run(rank: int, weights_seed: int) -> tuple[MetricLossOnly, torch.nn.Module]:
    torch.manual_seed(weights_seed)
    layers = [torch.nn.Linear(D_IN, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, D_OUT)]
    trunk = torch.nn.Sequential(*layers).double()
    models = {"trunk": trunk, "embedder": torch.nn.Identity()}  # not wrapped: the trainer does it
    loss = DistributedLossWrapper(TripletMarginLoss(margin=0.3))
    miner = DistributedMinerWrapper(TripletMarginMiner(margin=0.3))
    trainer = _trainer(models, loss, miner, _sampler(rank), BATCH)
    assert isinstance(trainer.models["trunk"], torch.nn.parallel.DistributedDataParallel)
    assert trainer.models["trunk"].module is trunk
    return trainer, trunk


def _case_resume(rank: int, folder: Path) -> None:
    """A DDP run resumed from its checkpoint continues exactly: each rank gets back its own random
    stream (here: its dropout masks)."""
    full, full_trunk = _dropout_run(rank, weights_seed=0)
    torch.manual_seed(100 + rank)  # the ranks draw different dropout masks
    full.train(num_epochs=1)
    full.save_checkpoint(folder / "dropout.pt")
    full.train(start_epoch=2, num_epochs=2)
    torch.manual_seed(7)  # disturb the stream: the checkpoint restores it
    resumed, resumed_trunk = _dropout_run(rank, weights_seed=5)
    start = resumed.load_checkpoint(folder / "dropout.pt")
    resumed.train(start_epoch=start, num_epochs=2)
    for got, want in zip(resumed_trunk.parameters(), full_trunk.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def _case_evaluation(rank: int, folder: Path) -> None:
    """Distributed testing equals one process's testing; hooks write on rank 0 only and every
    rank takes the same early-stopping decision."""
    models = wrap_models({"trunk": _trunk(), "embedder": torch.nn.Identity()})
    n_val = 37  # rank blocks of 19 and 18 items
    val = TensorDataset(*(t[:n_val] for t in _dataset().tensors))
    calculator = AccuracyCalculator(exclude=("NMI", "AMI"))
    kwargs = {"accuracy_calculator": calculator, "batch_size": 5, "data_device": "cpu"}
    expected = GlobalEmbeddingSpaceTester(**kwargs).test({"val": val}, 2, models["trunk"].module)[
        "val"
    ]  # the accuracies the hooks see at epoch 2

    keeper, writer, _ = get_record_keeper(str(folder / f"logs_rank{rank}"))
    assert (writer is None) == (rank != 0)
    hooks = HookContainer(keeper, primary_metric="precision_at_1")
    tester = GlobalEmbeddingSpaceTester(
        distributed=True, end_of_testing_hook=hooks.end_of_testing_hook, **kwargs
    )
    hook = hooks.end_of_epoch_hook(
        tester, {"val": val}, str(folder / f"models_rank{rank}"), patience=0
    )
    trainer = _trainer(
        models, DistributedLossWrapper(TripletMarginLoss(margin=0.3)),
        DistributedMinerWrapper(TripletMarginMiner(margin=0.3)), _sampler(rank), BATCH,
        end_of_iteration_hook=hooks.end_of_iteration_hook, end_of_epoch_hook=hook,
    )  # fmt: skip
    for group in trainer.optimizers["trunk_optimizer"].param_groups:
        group["lr"] = 0.0  # the accuracy never improves: patience=0 stops after epoch 2
    trainer.train(num_epochs=5)
    assert trainer.epoch == 2
    _assert_same_accuracies(tester.all_accuracies["val"], expected)

    # the two-stream tester shards (anchor, posneg) items the same way
    x, labels = (t[:n_val] for t in _dataset().tensors)
    pairs = {"val": TensorDataset(x, x + 0.3, labels)}
    sharded = GlobalTwoStreamEmbeddingSpaceTester(distributed=True, **kwargs)
    whole = GlobalTwoStreamEmbeddingSpaceTester(**kwargs)
    _assert_same_accuracies(
        sharded.test(pairs, 1, models["trunk"])["val"],
        whole.test(pairs, 1, models["trunk"].module)["val"],
    )


def _assert_same_accuracies(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key


def _case_training_and_resume(rank: int, folder: Path) -> None:
    _case_training(rank, folder)
    _case_resume(rank, folder)


CASES = {"training": _case_training_and_resume, "evaluation": _case_evaluation}


# ------------------------------------------------------------------ tests
def test_ddp_training_equals_single_process_training_on_the_global_batch(tmp_path) -> None:
    """Two epochs of DDP + distributed loss/miner + DistributedMPerClassSampler leave the model
    where one process training on the concatenated batches leaves it (float64); a DDP run with
    dropout resumed from a checkpoint ends where the uninterrupted run ends."""
    _spawn("training", tmp_path)
    expected = _single_process_weights()
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"weights_rank{rank}.pt")
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, rtol=1e-9, atol=1e-12)
    # the rank-0 checkpoint resumes in a single process
    models = {"trunk": _trunk(), "embedder": torch.nn.Identity()}
    trainer = _trainer(models, TripletMarginLoss(), TripletMarginMiner(),
                       _GlobalBatches(), WORLD * BATCH)  # fmt: skip
    assert trainer.load_checkpoint(tmp_path / "checkpoint.pt") == EPOCHS + 1
    torch.testing.assert_close(trainer.models["trunk"].weight, expected["weight"])


def test_distributed_testing_and_hooks(tmp_path) -> None:
    _spawn("evaluation", tmp_path)
    assert not (tmp_path / "logs_rank1").exists()
    assert not (tmp_path / "models_rank1").exists()
    logs = sorted(os.listdir(tmp_path / "logs_rank0"))
    assert "loss_histories.csv" in logs and "logs.db" in logs
    assert any(name.startswith("accuracies_") for name in logs)
    saved = sorted(os.listdir(tmp_path / "models_rank0"))
    assert "trunk_best1.pth" in saved and "trunk_2.pth" in saved
