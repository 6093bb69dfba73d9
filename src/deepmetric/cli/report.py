"""``deepmetric report RUN_ROOT [--runs NAME ...] [--out DIR] [--title TEXT]``."""

from __future__ import annotations

import argparse
from typing import Any

from ..reports.run_report import build_report


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(
        name, help="write report.md and report.html for training runs (curves, UMAP plots)"
    )
    parser.add_argument("root", help="folder holding one sub-folder per run")
    parser.add_argument("--runs", nargs="+", default=None, help="run names (default: all)")
    parser.add_argument("--out", default=None, help="output folder (default: root)")
    parser.add_argument("--title", default="deepmetric runs")


def run(args: argparse.Namespace) -> int:
    md_path, html_path = build_report(args.root, args.runs, out_dir=args.out, title=args.title)
    print(f"wrote {md_path} and {html_path}")
    return 0
