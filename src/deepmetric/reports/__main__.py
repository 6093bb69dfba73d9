"""``python -m deepmetric.reports RUN_ROOT [--runs triplet arcface] [--out DIR]``."""

from __future__ import annotations

import argparse

from .run_report import build_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write report.md and report.html for runs.")
    parser.add_argument("root", help="folder holding one sub-folder per run")
    parser.add_argument("--runs", nargs="+", default=None, help="run names (default: all)")
    parser.add_argument("--out", default=None, help="output folder (default: root)")
    parser.add_argument("--title", default="deepmetric demo: Triplet vs ArcFace on digits")
    args = parser.parse_args(argv)
    md_path, html_path = build_report(args.root, args.runs, out_dir=args.out, title=args.title)
    print(f"wrote {md_path} and {html_path}")


if __name__ == "__main__":
    main()
