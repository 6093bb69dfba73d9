"""Tables: the summary (one row per workload, stdout and RESULTS.md) and the per-case details."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
from collections.abc import Sequence

from .runner import CaseResult, Config
from .workloads import LABELS

Row = dict[str, CaseResult]  # lib -> result, for one workload ("gemm" = the reference)


def _cell(r: CaseResult | None) -> str:
    """Median milliseconds, or why there is none."""
    if r is None:
        return "—"
    if r.status == "skipped":
        return r.message
    if not r.ok:
        msg = r.message if r.status in ("timeout", "oom") else f"error: {r.message}"
        return _short(msg)
    partial = f" ({len(r.times_ms)}/{r.requested} runs)" if len(r.times_ms) < r.requested else ""
    return f"{r.median_ms:.2f}{partial}"


def _short(text: str, width: int = 60) -> str:
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _mb(r: CaseResult | None) -> str:
    return "—" if r is None or r.peak_extra_mb is None else f"{r.peak_extra_mb:.1f}"


def _ratio(a: float | None, b: float | None, fmt: str = "{:.2f}x") -> str:
    if a is None or b is None or b <= 0:
        return "—"
    return fmt.format(a / b)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "| " + " | ".join(f"{{:{w}}}" for w in widths) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt.format(*header), sep, *(fmt.format(*r) for r in rows)])


def summary(rows: dict[str, Row], libs: Sequence[str]) -> str:
    """One line per workload: times, ratios, peak extra memory, and deepmetric's time in GEMMs."""
    with_pml = "pml" in libs
    header = ["workload", "deepmetric ms"]
    header += ["PML ms", "dm/PML"] if with_pml else []
    header += ["dm peak extra MB"]
    header += ["PML peak extra MB", "mem dm/PML"] if with_pml else []
    header += ["GEMM ms", "dm x GEMM"]
    lines = []
    for name, row in rows.items():
        dm, pml, gemm = row.get("deepmetric"), row.get("pml"), row.get("gemm")
        dm_ms = dm.median_ms if dm and dm.ok else None
        pml_ms = pml.median_ms if pml and pml.ok else None
        gemm_ms = gemm.median_ms if gemm and gemm.ok else None
        line = [name, _cell(dm)]
        line += [_cell(pml), _ratio(dm_ms, pml_ms)] if with_pml else []
        line += [_mb(dm)]
        if with_pml:
            dm_mb = dm.peak_extra_mb if dm and dm.ok else None
            pml_mb = pml.peak_extra_mb if pml and pml.ok else None
            line += [_mb(pml), _ratio(dm_mb, pml_mb)]
        line += [_cell(gemm), _ratio(dm_ms, gemm_ms, "{:.1f}x")]
        lines.append(line)
    return markdown_table(header, lines)


def details(rows: dict[str, Row]) -> str:
    """Every case: runs, median/min, RSS after setup, total peak RSS, peak extra."""
    header = ["workload", "case", "runs", "median ms", "min ms"]
    header += ["RSS setup MB", "peak MB", "extra MB"]
    lines = []
    for name, row in rows.items():
        for lib, r in row.items():
            if r.status == "skipped":
                continue
            ok = r.ok
            lines.append([
                name, LABELS.get(lib, lib), str(len(r.times_ms)),
                f"{r.median_ms:.2f}" if ok and r.median_ms is not None else _cell(r),
                f"{min(r.times_ms):.2f}" if ok else "—",
                "—" if r.rss_setup_mb is None else f"{r.rss_setup_mb:.1f}",
                "—" if r.peak_mb is None else f"{r.peak_mb:.1f}",
                _mb(r),
            ])  # fmt: skip
    return markdown_table(header, lines)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def loadavg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def results_markdown(
    rows: dict[str, Row], libs: Sequence[str], cfg: Config, command: str, load_at_start: str
) -> str:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    machine = [
        f"- date: {now}",
        f"- command: `{command}`",
        f"- machine: {os.cpu_count()} CPUs ({_cpu_model()}), "
        f"{platform.system()} {platform.machine()}",
        f"- python {platform.python_version()}, torch {_version('torch')}, "
        f"deepmetric {_version('deepmetric')}, "
        f"pytorch-metric-learning {_version('pytorch-metric-learning')}",
        f"- load average (1/5/15 min): {load_at_start} at the start, {loadavg()} at the end "
        "(other work on the machine inflates times)",
        f"- settings: repeats={cfg.repeats}, torch threads={cfg.threads}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')}, "
        f"timeout={cfg.timeout_s:g} s per case, memory cap={cfg.mem_cap_gb:g} GiB (RLIMIT_AS)",
    ]
    method = (
        "Each (workload, library) runs in its own subprocess: setup, one warm-up step, then\n"
        "one timed step per round (`time.perf_counter`); the library order is reversed every\n"
        "round. Times are medians. *Peak extra MB* = the subprocess's `ru_maxrss` minus its RSS\n"
        "right after setup (inputs and module built, before the warm-up); *peak MB* in the\n"
        "details is the total. Losses: forward + backward on `Tensor[N, 128]` embeddings with\n"
        "32 balanced classes; distances: forward of the N x N matrix. *GEMM* is the `x @ x.T`\n"
        "floor for the same N x D; *dm x GEMM* is deepmetric's time in units of it."
    )
    return "\n\n".join([
        "# deepmetric benchmarks",
        "\n".join(machine),
        method,
        "## Summary",
        summary(rows, libs),
        "## Details",
        details(rows),
    ]) + "\n"  # fmt: skip
