"""The measuring subprocess: one (workload, library) case per process; its peak memory is its own.

Run as ``python -m benchmarks.child NAME LIB --mem-cap-gb G --threads T``. It speaks JSON lines
on its original stdout (anything the libraries print goes to stderr instead):

* after setup and one warm-up step: ``{"status": "ready", "rss_setup_kb": ...}``
  (RSS read right after setup, before the warm-up), or an ``error`` / ``oom`` status and exit;
* each ``run`` line on stdin: one timed step, ``{"ms": ...}`` (``time.perf_counter``);
* ``done``: ``{"peak_kb": ru_maxrss}`` and exit.

The parent (:mod:`benchmarks.runner`) decides how many runs and in which order, so it can
alternate libraries between rounds.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import sys
import time
from typing import Any, TextIO

from .workloads import LIBRARIES, STEPS, WORKLOADS, Workload

_OOM_MARKERS = ("can't allocate memory", "out of memory", "bad_alloc", "not enough memory")


def current_rss_kb() -> int:
    """Resident set size now (kB); ``ru_maxrss`` where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return peak_rss_kb()


def peak_rss_kb() -> int:
    """``ru_maxrss`` in kB (Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def classify(exc: BaseException) -> dict[str, str]:
    text = f"{type(exc).__name__}: {exc}".strip()
    is_oom = isinstance(exc, MemoryError) or any(m in text.lower() for m in _OOM_MARKERS)
    return {"status": "oom" if is_oom else "error", "message": text.splitlines()[0][:300]}


def build_step(w: Workload, lib: str) -> Any:
    if lib == "gemm":
        return STEPS["gemm"](w, None)
    module = importlib.import_module(f"{LIBRARIES[lib]}.{w.module}")
    return STEPS[w.kind](w, w.make(module))


def serve(w: Workload, lib: str, out: TextIO) -> None:
    def send(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    try:
        step = build_step(w, lib)
        rss_setup = current_rss_kb()
        step()  # warm-up
    except BaseException as exc:
        send(classify(exc))
        return
    send({"status": "ready", "rss_setup_kb": rss_setup})
    for line in sys.stdin:
        if line.strip() == "done":
            break
        try:
            t0 = time.perf_counter()
            step()
            ms = (time.perf_counter() - t0) * 1e3
        except BaseException as exc:
            send(classify(exc))
            return
        send({"ms": ms})
    send({"peak_kb": peak_rss_kb()})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.child")
    parser.add_argument("workload")
    parser.add_argument("lib", choices=[*LIBRARIES, "gemm"])
    parser.add_argument("--mem-cap-gb", type=float, default=16.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    # Protocol on a private copy of stdout; fd 1 (Python and C prints) now goes to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    if args.mem_cap_gb > 0:
        cap = int(args.mem_cap_gb * 2**30)
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))

    import torch

    torch.set_num_threads(args.threads)
    serve(WORKLOADS[args.workload], args.lib, out)


if __name__ == "__main__":
    main()
