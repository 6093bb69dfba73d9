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
    gemm_reference: bool = True  # show the N x D @ D x N floor (meaningless for samplers)


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


def miner(name: str, make: Callable[[Any], Any], n: int, **kw: Any) -> Workload:
    """``make(miners)(embeddings, labels)``: one mining call (no gradients)."""
    return register(Workload(name, "miners", make, n, kind="miner", **kw))


def sampler(name: str, make: Callable[[Any], Any], n: int, **kw: Any) -> Workload:
    """One epoch of ``iter(make(samplers))``."""
    kw.setdefault("gemm_reference", False)
    return register(Workload(name, "samplers", make, n, kind="sampler", **kw))


def accuracy(name: str, make: Callable[[Any], Any], n: int, **kw: Any) -> Workload:
    """``make(utils.accuracy_calculator).get_accuracy(embeddings, labels)``, reference = query."""
    return register(Workload(name, "utils.accuracy_calculator", make, n, kind="accuracy", **kw))


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


def _miner_step(w: Workload, obj: Any) -> Callable[[], None]:
    emb, labels = make_inputs(w, requires_grad=False)
    return lambda: obj(emb, labels)


def _sampler_step(w: Workload, obj: Any) -> Callable[[], None]:
    def epoch() -> None:
        for _ in obj:
            pass

    return epoch


def _accuracy_step(w: Workload, obj: Any) -> Callable[[], None]:
    emb, labels = make_inputs(w, requires_grad=False)
    return lambda: obj.get_accuracy(emb, labels)


def _gemm_step(w: Workload, obj: Any) -> Callable[[], None]:
    emb, _ = make_inputs(w, requires_grad=False)
    return lambda: emb @ emb.T


# kind -> (workload, built object) -> zero-argument step; a new kind (miners, ...) adds one entry.
STEPS: dict[str, Callable[[Workload, Any], Callable[[], None]]] = {
    "loss": _loss_step,
    "distance": _distance_step,
    "miner": _miner_step,
    "sampler": _sampler_step,
    "accuracy": _accuracy_step,
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


# ---- losses, part 1 (pair, triplet, ranking) ----
PML_50GB = "skipped (PML needs ~50 GB)"
loss("circle/N=1024", lambda m: m.CircleLoss(), 1024)
loss("multi_similarity/N=1024", lambda m: m.MultiSimilarityLoss(), 1024)
loss("supcon/N=1024", lambda m: m.SupConLoss(), 1024)
loss("generalized_lifted/N=1024", lambda m: m.GeneralizedLiftedStructureLoss(), 1024)
loss("nca/N=1024", lambda m: m.NCALoss(), 1024)
loss("proxy_nca/N=1024", lambda m: m.ProxyNCALoss(num_classes=CLASSES, embedding_size=D), 1024)
for _name, _make in (
    ("ntxent", lambda m: m.NTXentLoss()),
    ("lifted", lambda m: m.LiftedStructureLoss()),
    ("tuplet", lambda m: m.TupletMarginLoss()),
):
    loss(f"{_name}/N=256", _make, 256)
    loss(f"{_name}/N=1024", _make, 1024, libs=("deepmetric",), note="skipped (PML needs 32-129 GB)")
loss("angular/N=1024", lambda m: m.AngularLoss(), 1024)
loss("margin_all/N=1024", lambda m: m.MarginLoss(), 1024)
loss("margin_all/N=4096", lambda m: m.MarginLoss(), 4096, libs=("deepmetric",), note=PML_50GB)
loss("margin_learn_beta/N=1024", lambda m: m.MarginLoss(learn_beta=True, num_classes=32), 1024)
loss(
    "dynamic_soft_margin/N=1024",
    lambda m: m.DynamicSoftMarginLoss(),
    1024,
    libs=("deepmetric",),
    note="PML fails on its second backward (its histogram keeps the graph)",
)
loss("npairs/N=1024", lambda m: m.NPairsLoss(), 1024)
loss("instance/N=1024", lambda m: m.InstanceLoss(), 1024)
loss("intra_pair_variance/N=1024", lambda m: m.IntraPairVarianceLoss(), 1024)
loss("snr_contrastive/N=1024", lambda m: m.SignalToNoiseRatioContrastiveLoss(), 1024)
loss("tcm/N=1024", lambda m: m.ThresholdConsistentMarginLoss(), 1024)
loss("fast_ap/N=1024", lambda m: m.FastAPLoss(), 1024)
loss("ranked_list/N=1024", lambda m: m.RankedListLoss(margin=0.4, Tn=1.0), 1024)
loss("pnp/N=256", lambda m: m.PNPLoss(), 256)
PML_37GB = "skipped (PML needs ~37 GB)"
loss("pnp/N=1024", lambda m: m.PNPLoss(), 1024, libs=("deepmetric",), note=PML_37GB)
loss("smooth_ap/N=256", lambda m: m.SmoothAPLoss(), 256)
loss(
    "smooth_ap/N=1024",
    lambda m: m.SmoothAPLoss(),
    1024,
    libs=("deepmetric",),
    note="skipped (PML needs ~21 GB)",
)
loss("histogram/N=256", lambda m: m.HistogramLoss(), 256)
loss(
    "histogram/N=1024",
    lambda m: m.HistogramLoss(),
    1024,
    libs=("deepmetric",),
    note="skipped (PML > 150 s per step)",
)

# ---- losses, part 2 (class vectors, wrappers) ----
loss(
    "arcface/N=1024,C=1000",
    lambda m: m.ArcFaceLoss(num_classes=1000, embedding_size=D),
    1024,
    classes=1000,
)
loss(
    "proxy_anchor/N=1024,C=1000",
    lambda m: m.ProxyAnchorLoss(num_classes=1000, embedding_size=D),
    1024,
    classes=1000,
)


def _prefilled_memory(m: Any, inner: Any, memory: int = 8192, classes: int = CLASSES) -> Any:
    """A CrossBatchMemory already full, so every timed step is at steady state."""
    import torch

    cbm = m.CrossBatchMemory(inner, D, memory_size=memory)
    g = torch.Generator().manual_seed(1)
    cbm.embedding_memory.copy_(torch.randn(memory, D, generator=g))
    cbm.label_memory.copy_(torch.randint(0, classes, (memory,), generator=g))
    if isinstance(cbm.has_been_filled, torch.Tensor):  # deepmetric: a buffer; PML: a bool
        cbm.has_been_filled.fill_(True)
    else:
        cbm.has_been_filled = True
    return cbm


for _n, _need in ((256, "132 GB"), (1024, "2.1 TB")):
    loss(
        f"xbm_triplet/N={_n},mem=8192",
        lambda m: _prefilled_memory(m, m.TripletMarginLoss()),
        _n,
        libs=("deepmetric",),
        note=f"skipped (PML needs {_need})",
    )
loss(
    "xbm_triplet/N=256,mem=8192,classes=8192",
    lambda m: _prefilled_memory(m, m.TripletMarginLoss(), classes=8192),
    256,
    classes=8192,
)
loss("xbm_contrastive/N=1024,mem=8192", lambda m: _prefilled_memory(m, m.ContrastiveLoss()), 1024)

# ---- miners and samplers ----
for _n in (512, 1024):
    miner(f"miner_semihard/N={_n}", lambda m: m.TripletMarginMiner(type_of_triplets="semihard"), _n)
miner(
    "miner_semihard/N=2048",
    lambda m: m.TripletMarginMiner(type_of_triplets="semihard"),
    2048,
    libs=("deepmetric",),
    note="skipped (PML needs ~12 GB)",
)
miner("miner_multisim/N=1024", lambda m: m.MultiSimilarityMiner(), 1024)
miner("miner_batchhard/N=4096", lambda m: m.BatchHardMiner(), 4096)
_LABELS_60K = [i % 1000 for i in range(60000)]
sampler("m_per_class/N=60000", lambda m: m.MPerClassSampler(_LABELS_60K, 4, 128), 60000)

# ---- evaluation (reference = query, k=None: every reference ranked) ----
PML_19GB = "skipped (PML needs > 19 GiB)"
NO_CLUSTERING = ("NMI", "AMI")
accuracy("accuracy_all/N=10000", lambda m: m.AccuracyCalculator(), 10000, classes=100)
accuracy(
    "accuracy_noclust/N=10000",
    lambda m: m.AccuracyCalculator(exclude=NO_CLUSTERING),
    10000,
    classes=100,
)
accuracy(
    "accuracy_all/N=20000",
    lambda m: m.AccuracyCalculator(),
    20000,
    classes=100,
    libs=("deepmetric",),
    note=PML_19GB,
)
accuracy(
    "accuracy_noclust/N=20000",
    lambda m: m.AccuracyCalculator(exclude=NO_CLUSTERING),
    20000,
    classes=100,
    libs=("deepmetric",),
    note=PML_19GB,
)
