"""The process group a training script runs in: start it from ``torchrun``'s environment, ask it
who this process is, and run small collectives that are no-ops in a single process.

Every function here works unchanged without ``torch.distributed`` (a plain ``python script.py``
run is a world of one process, rank 0), so one script serves both launches::

    with init_distributed() as ctx:          # reads RANK / WORLD_SIZE / LOCAL_RANK from torchrun
        model = model.to(ctx.device)
        ...
        if ctx.is_main:
            print("only rank 0 prints this")
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .. import _validation as V

_OWNER = "init_distributed"
BACKENDS = ("gloo", "nccl")
T = TypeVar("T")


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available and its default process group is set up."""
    return bool(dist.is_available() and dist.is_initialized())


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank in the default group (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    """True on rank 0, and in a single process: the one process that writes files and logs."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if world_size() > 1:
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (any picklable object; ``obj`` itself when alone)."""
    if world_size() <= 1:
        return obj
    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order (``[obj]`` when alone)."""
    if world_size() <= 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


@dataclass(frozen=True)
class DistributedContext:
    """Who this process is: ``rank`` of ``world_size``, ``local_rank`` on its machine, the
    ``device`` it computes on and the ``backend`` of its process group (None when alone).

    ``close()`` (or leaving a ``with`` block) waits for every rank and destroys the process group
    if :func:`init_distributed` created it.
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.owns_group and is_distributed():
            dist.barrier()  # no rank tears the group down while another still communicates
            dist.destroy_process_group()

    def __enter__(self) -> DistributedContext:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        V.fail(_OWNER, f"the environment variable {name} to be an int", repr(value))


def _default_backend(processes_on_this_machine: int) -> str:
    """nccl when every process on this machine can have a GPU of its own, else gloo (CPU)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    use_nccl = dist.is_nccl_available() and gpus >= processes_on_this_machine
    return "nccl" if use_nccl else "gloo"


def _device_for(backend: str | None, local_rank: int) -> torch.device:
    if backend == "nccl" or (backend is None and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _select_gpu(local_rank: int) -> None:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if local_rank >= gpus:
        V.fail(
            _OWNER,
            "one GPU per process for the nccl backend",
            f"LOCAL_RANK={local_rank} with {gpus} GPU(s) visible",
            "Start at most as many processes per machine as it has GPUs (--nproc_per_node), "
            "or use backend='gloo'.",
        )
    torch.cuda.set_device(local_rank)


def init_distributed(
    backend: str | None = None, timeout: datetime.timedelta | None = None
) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment.

    * Launched by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` set): initialise the default process
      group from the environment (``init_method="env://"``) with ``backend`` — default
      ``"nccl"`` when this machine has a GPU for each of its processes (``LOCAL_WORLD_SIZE``),
      else ``"gloo"`` on CPU — and, for nccl, select GPU ``LOCAL_RANK``.
    * A group already initialised (e.g. by the caller): describe it; it is left open on
      ``close()``.
    * Neither: a single process (rank 0 of 1) on ``cuda:0`` if available, else CPU.

    Args:
        backend: ``"gloo"`` (CPU tensors) or ``"nccl"`` (GPU tensors), or None to choose.
        timeout: the collectives' timeout (None: torch's default).
    """
    if backend is not None and backend not in BACKENDS:
        V.fail(_OWNER, f"`backend` among {BACKENDS} or None", repr(backend))
    local_rank = _env_int("LOCAL_RANK") or 0
    if is_distributed():
        current = str(dist.get_backend())
        if backend is not None and backend != current:
            V.fail(_OWNER, f"backend={backend!r} or None", f"a {current!r} group already set up")
        return DistributedContext(
            rank(), local_rank, world_size(), _device_for(current, local_rank), current
        )
    env_rank, env_world = _env_int("RANK"), _env_int("WORLD_SIZE")
    if env_rank is None or env_world is None:
        return DistributedContext(0, 0, 1, _device_for(None, 0), None)
    if not dist.is_available():
        V.fail(_OWNER, "a torch build with torch.distributed", "none", exc=RuntimeError)
    # torchrun sets LOCAL_WORLD_SIZE; without it, assume every process runs on this machine
    local_processes = _env_int("LOCAL_WORLD_SIZE") or env_world
    backend = backend or _default_backend(local_processes)
    if backend == "nccl":
        _select_gpu(local_rank)
    kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group(backend, init_method="env://", **kwargs)
    return DistributedContext(
        dist.get_rank(),
        local_rank,
        dist.get_world_size(),
        _device_for(backend, local_rank),
        backend,
        owns_group=True,
    )
