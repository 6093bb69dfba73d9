"""``deepmetric list [KIND] [--json]``: the registered components and their arguments."""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

from .._registry import (
    DISTANCES,
    KNN,
    LOSSES,
    METRICS,
    MINERS,
    REDUCERS,
    REGULARIZERS,
    SAMPLERS,
    Registry,
)

REGISTRIES: dict[str, Registry[Any]] = {
    "distances": DISTANCES,
    "losses": LOSSES,
    "miners": MINERS,
    "reducers": REDUCERS,
    "regularizers": REGULARIZERS,
    "samplers": SAMPLERS,
    "metrics": METRICS,
    "knn": KNN,
}


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="list the registered components of a kind")
    parser.add_argument("kind", nargs="?", choices=sorted(REGISTRIES), help="(default: all kinds)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def describe(cls: type) -> dict[str, Any]:
    """``{"name", "summary", "arguments": {name: default repr, or None when required},
    "more_keywords": whether ``**kwargs`` passes further options on}``."""
    arguments: dict[str, str | None] = {}
    more_keywords = False
    for param in inspect.signature(cls).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            more_keywords = True
        elif param.kind is not param.VAR_POSITIONAL:
            required = param.default is inspect.Parameter.empty
            arguments[param.name] = None if required else repr(param.default)
    doc = inspect.getdoc(cls) or ""
    return {
        "name": cls.__name__,
        "summary": doc.split("\n", 1)[0],
        "arguments": arguments,
        "more_keywords": more_keywords,
    }


def _text(kind: str, entries: list[dict[str, Any]]) -> str:
    lines = [f"{kind} ({len(entries)})"]
    for entry in entries:
        args = ", ".join(
            [
                name if default is None else f"{name}={default}"
                for name, default in entry["arguments"].items()
            ]
            + (["**kwargs"] if entry["more_keywords"] else [])
        )
        lines.append(f"  {entry['name']}({args})")
        if entry["summary"]:
            lines.append(f"      {entry['summary']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    table = {kind: [describe(cls) for _, cls in REGISTRIES[kind].items()] for kind in kinds}
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        print("\n\n".join(_text(kind, entries) for kind, entries in table.items()))
    return 0
