"""Process-group helpers, DDP wrapping and evaluation sharding in a single process (the
multi-process behaviour is in test_ddp_training.py)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from deepmetric.distributed import (
    barrier,
    broadcast_object,
    gather_rows_to_main,
    init_distributed,
    is_main_process,
    rank,
    runtime,
    unwrap_model,
    world_size,
    wrap_models,
)
from deepmetric.testers.sharding import shard_dataset

TORCHRUN_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


@pytest.fixture
def no_torchrun_env(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_torchrun_a_single_process(no_torchrun_env) -> None:
    with init_distributed() as ctx:
        assert (ctx.rank, ctx.local_rank, ctx.world_size, ctx.backend) == (0, 0, 1, None)
        assert ctx.is_main and not ctx.owns_group
        expected = "cuda" if torch.cuda.is_available() else "cpu"
        assert ctx.device.type == expected
    assert not torch.distributed.is_initialized()
    assert (rank(), world_size(), is_main_process()) == (0, 1, True)
    obj = {"a": [1, 2]}
    assert broadcast_object(obj) is obj
    barrier()  # nothing to wait for


def test_init_errors(no_torchrun_env) -> None:
    with pytest.raises(ValueError, match=r"`backend` among \('gloo', 'nccl'\)"):
        init_distributed(backend="mpi")
    no_torchrun_env.setenv("RANK", "first")
    no_torchrun_env.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="environment variable RANK to be an int, got 'first'"):
        init_distributed()


def test_nccl_needs_a_gpu_per_process(no_torchrun_env) -> None:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    no_torchrun_env.setenv("RANK", str(gpus))
    no_torchrun_env.setenv("LOCAL_RANK", str(gpus))  # one process more than there are GPUs
    no_torchrun_env.setenv("WORLD_SIZE", str(gpus + 1))
    with pytest.raises(
        ValueError, match=rf"one GPU per process .*LOCAL_RANK={gpus} with {gpus} GPU"
    ):
        init_distributed(backend="nccl")


@pytest.mark.parametrize(
    ("gpus", "processes", "expected"),
    [(0, 1, "gloo"), (1, 2, "gloo"), (2, 2, "nccl"), (8, 4, "nccl")],
)
def test_default_backend_gives_each_process_a_gpu_or_uses_gloo(
    monkeypatch, gpus, processes, expected
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: True)
    assert runtime._default_backend(processes) == expected


def test_wrap_models_in_one_process_only_moves() -> None:
    trunk = torch.nn.Linear(3, 2)
    models = wrap_models({"trunk": trunk, "embedder": torch.nn.Identity()}, device="cpu")
    assert models["trunk"] is trunk and isinstance(models["embedder"], torch.nn.Identity)
    with pytest.raises(TypeError, match=r"`models` to be a dict of nn\.Modules, got list"):
        wrap_models([trunk])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"models\['trunk'\] to be an nn.Module, got function"):
        wrap_models({"trunk": lambda x: x})  # type: ignore[dict-item]


def test_unwrap_model() -> None:
    inner = torch.nn.Linear(3, 2)
    assert unwrap_model(torch.nn.DataParallel(inner)) is inner
    assert unwrap_model(inner) is inner


def test_gather_rows_to_main_alone_returns_the_rows_detached() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    out = gather_rows_to_main(x)
    assert out is not None and not out.requires_grad
    torch.testing.assert_close(out, x.detach())


def test_shard_dataset_covers_the_split_in_order() -> None:
    ds = TensorDataset(torch.arange(10))
    blocks = [shard_dataset(ds, r, 3, "T").indices for r in range(3)]
    assert [len(b) for b in blocks] == [4, 3, 3]
    assert [i for b in blocks for i in b] == list(range(10))
    with pytest.raises(ValueError, match="T: expected a split with at least as many items as"):
        shard_dataset(TensorDataset(torch.arange(2)), 0, 3, "T")
