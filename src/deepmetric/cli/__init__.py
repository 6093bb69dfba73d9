"""``deepmetric`` / ``python -m deepmetric``: the command line.

One module per command, each with ``add_parser(subparsers)`` and ``run(args) -> int``:

* ``list`` — the registered components of a kind, with their constructor arguments;
* ``evaluate`` — exact retrieval metrics of saved embeddings (no faiss needed);
* ``report`` — the markdown / HTML report of training runs.

Bad input (a missing file, mismatched shapes, an unknown name) prints one ``error:`` line and
exits with status 2; the library's own message says what was expected.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import evaluate, list_components, report

COMMANDS = {"list": list_components, "evaluate": evaluate, "report": report}
USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepmetric", description="deepmetric: deep metric learning for PyTorch."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(subparsers, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command].run(args))
    except (ValueError, TypeError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
