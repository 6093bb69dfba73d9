"""`python -m benchmarks [--only SUBSTR[,...]] [--repeats K] [--quick]`: measure, print, write."""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from pathlib import Path

from . import report
from .runner import CaseResult, Config, run_workload
from .workloads import LABELS, select

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "RESULTS.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--only", help="workloads whose name contains one of these (comma-separated)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per case (default 5)")
    p.add_argument("--quick", action="store_true", help="small N only, repeats=1")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per case (default 300)")
    p.add_argument("--mem-cap-gb", type=float, default=16.0, help="address-space cap per case")
    p.add_argument("--threads", type=int, default=2, help="torch threads in each case")
    p.add_argument("--no-pml", action="store_true", help="deepmetric only")
    p.add_argument(
        "--output", default=str(DEFAULT_OUTPUT), help="markdown report path ('' to skip writing)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 5)
    cfg = Config(repeats, args.timeout, args.mem_cap_gb, args.threads)
    has_pml = importlib.util.find_spec("pytorch_metric_learning") is not None
    libs = ["deepmetric"] + (["pml"] if has_pml and not args.no_pml else [])
    if "pml" not in libs:
        print("benchmarks: PML column skipped (not installed or --no-pml).", file=sys.stderr)

    workloads = select(args.only, args.quick)
    if not workloads:
        print(f"benchmarks: no workload matches --only {args.only!r}.", file=sys.stderr)
        return 2
    load_at_start = report.loadavg()
    rows: dict[str, dict[str, CaseResult]] = {}
    for i, w in enumerate(workloads, 1):
        print(f"[{i}/{len(workloads)}] {w.name} ...", file=sys.stderr, flush=True)
        # The GEMM floor runs in the same rounds as the libraries: it sees the same machine load.
        rows[w.name] = run_workload(w, [*libs, "gemm"], cfg)
        for lib, r in rows[w.name].items():
            shown = f"{r.median_ms:.2f} ms" if r.ok and r.median_ms is not None else r.message
            print(f"      {LABELS[lib]:<10} {shown}", file=sys.stderr, flush=True)

    print(report.summary(rows, libs))
    if args.output:
        given = sys.argv[1:] if argv is None else argv
        command = shlex.join(["python", "-m", "benchmarks", *given])
        text = report.results_markdown(rows, libs, cfg, command, load_at_start)
        out = Path(args.output)
        out.write_text(text, encoding="utf-8")
        print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the runner has already killed its subprocesses
        print("\nbenchmarks: interrupted.", file=sys.stderr)
        sys.exit(130)
