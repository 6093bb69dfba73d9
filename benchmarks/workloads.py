"""The workload registry: what `python -m benchmarks` measures.

A workload is a name, a problem size and ``make(module)``: a function that receives the library's
sub-package (``deepmetric.losses`` or ``pytorch_metric_learning.losses``, per ``module``) and
returns the object to call, so both libraries are built from the same constructor arguments.
``kind`` picks the step that is timed (see ``STEPS``). Adding a workload is one call at the
bottom of this file::

    loss("arcface/N=1024", lambda m: m.ArcFaceLoss(num_classes=32, embedding_size=128), n=1024)

This module imports no torch at import time: the parent process stays light, and only the
measuring subprocesses (:mod:`benchmarks.child`) pay for torch and the libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

D = 128  # embedding size unless a workload says otherwise
CLASSES = 32  # number of classes unless a workload says otherwise
QUICK_MAX_N = 1024  # `--quick` keeps workloads with n <= this
BOTH = ("deepmetric", "pml")

# library key -> top-level package that holds `losses`, `distances`, ...
LIBRARIES = {"deepmetric": "deepmetric", "pml": "pytorch_metric_learning"}
LABELS = {"deepmetric": "deepmetric", "pml": "PML", "gemm": "GEMM"}


@dataclass(frozen=True)
class Workload:
    name: str
    module: str  # sub-package handed to `make`: "losses", "distances", ...
    make: Callable[[Any], Any]
    n: int
    kind: str = "loss"  # key of STEPS
    d: int = D
    classes: int = CLASSES
    libs: tuple[str, ...] = BOTH  # libraries this workload runs for
    note: str = ""  # shown in place of a library that is left out
    seed: int = 0


WORKLOADS: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    if workload.name in WORKLOADS:
        raise ValueError(f"benchmarks: workload {workload.name!r} is registered twice.")
    WORKLOADS[workload.name] = workload
    return workload


def loss(name: str, make: Callable[[Any], Any], n: int, **kw: Any) -> Workload:
    """Forward + backward of ``make(losses)(embeddings, labels)``."""
    return register(Workload(name, "losses", make, n, kind="loss", **kw))


def distance(name: str, make: Callable[[Any], Any], n: int, **kw: Any) -> Workload:
    """Forward of ``make(distances)(embeddings)``: the full N x N matrix."""
    return register(Workload(name, "distances", make, n, kind="distance", **kw))


def select(only: str | None = None, quick: bool = False) -> list[Workload]:
    """Workloads whose name contains any comma-separated substring of ``only``, in order."""
    needles = [s for s in (only or "").split(",") if s]
    return [
        w
        for w in WORKLOADS.values()
        if (not needles or any(s in w.name for s in needles)) and (not quick or w.n <= QUICK_MAX_N)
    ]


# ---- inputs and timed steps (run inside the measuring subprocess only) ----


def make_inputs(w: Workload, requires_grad: bool) -> tuple[Any, Any]:
    """Seeded ``(embeddings Tensor[n, d], labels Tensor[n])``; labels are balanced over classes."""
    import torch

    g = torch.Generator().manual_seed(w.seed)
    emb = torch.randn(w.n, w.d, generator=g).requires_grad_(requires_grad)
    labels = (torch.arange(w.n) % w.classes)[torch.randperm(w.n, generator=g)]
    return emb, labels


def _loss_step(w: Workload, obj: Any) -> Callable[[], None]:
    emb, labels = make_inputs(w, requires_grad=True)

    def step() -> None:
        emb.grad = None
        obj(emb, labels).backward()

    return step


def _distance_step(w: Workload, obj: Any) -> Callable[[], None]:
    emb, _ = make_inputs(w, requires_grad=False)
    return lambda: obj(emb)


def _gemm_step(w: Workload, obj: Any) -> Callable[[], None]:
    emb, _ = make_inputs(w, requires_grad=False)
    return lambda: emb @ emb.T


# kind -> (workload, built object) -> zero-argument step; a new kind (miners, ...) adds one entry.
STEPS: dict[str, Callable[[Workload, Any], Callable[[], None]]] = {
    "loss": _loss_step,
    "distance": _distance_step,
    "gemm": _gemm_step,
}


# ---- the workloads ----

for _n in (1024, 4096):
    distance(f"distance_lp/N={_n}", lambda m: m.LpDistance(), _n)
    distance(f"distance_cosine/N={_n}", lambda m: m.CosineSimilarity(), _n)
    distance(f"distance_snr/N={_n}", lambda m: m.SNRDistance(), _n)

loss("contrastive/N=1024", lambda m: m.ContrastiveLoss(), 1024)

for _n in (256, 512, 1024, 2048):
    loss(f"triplet_all/N={_n}", lambda m: m.TripletMarginLoss(), _n)
loss(
    "triplet_all/N=4096",
    lambda m: m.TripletMarginLoss(),
    4096,
    libs=("deepmetric",),
    note="skipped (PML needs ~50 GB)",
)
loss("triplet_smooth/N=1024", lambda m: m.TripletMarginLoss(smooth_loss=True), 1024)
