"""``deepmetric evaluate QUERY QUERY_LABELS [--reference R --reference-labels RL] ...``: exact
retrieval metrics (precision@1, MAP@R, ...) of embeddings saved as ``.npy``, ``.npz`` (one array)
or ``.pt`` files, computed by :class:`~deepmetric.metrics.AccuracyCalculator` (exact blockwise
k-nearest neighbours, no faiss needed)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import numpy as np
import torch

from .._validation import fail
from ..metrics.accuracy_calculator import AccuracyCalculator

_OWNER = "deepmetric evaluate"
SUFFIXES = (".npy", ".npz", ".pt", ".pth")


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(
        name, help="exact retrieval metrics of saved embeddings (no faiss needed)"
    )
    parser.add_argument("query", help="query embeddings, shape (N, D): .npy, .npz or .pt")
    parser.add_argument("query_labels", help="query labels, shape (N,) or (N, levels)")
    parser.add_argument("--reference", help="reference embeddings (default: the queries)")
    parser.add_argument("--reference-labels", help="reference labels")
    parser.add_argument(
        "--ref-includes-query",
        action="store_true",
        help="the queries are the first rows of the reference: each query's own row is skipped",
    )
    parser.add_argument("--include", nargs="+", default=(), help="compute only these metrics")
    parser.add_argument("--exclude", nargs="+", default=(), help="skip these metrics")
    parser.add_argument("--k", default=None, help='neighbours: an int, "max_bin_count" or None')
    parser.add_argument("--avg-of-avgs", action="store_true", help="average per class first")
    parser.add_argument("--device", default=None, help="e.g. cpu or cuda (default: auto)")
    parser.add_argument("--json", dest="json_path", help="also write the metrics to this file")


def load_array(path: str, name: str) -> torch.Tensor:
    """The one array stored in ``path`` as a tensor."""
    if not os.path.isfile(path):
        fail(_OWNER, f"`{name}` to be an existing file", repr(path), exc=FileNotFoundError)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        fail(_OWNER, f"`{name}` with a suffix among {SUFFIXES}", repr(path))
    if suffix in (".pt", ".pth"):
        value = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(value, torch.Tensor):
            fail(_OWNER, f"`{name}` holding one tensor", type(value).__name__)
        return value
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        if len(loaded.files) != 1:
            fail(_OWNER, f"`{name}` holding one array", f"arrays {loaded.files}")
        loaded = loaded[loaded.files[0]]
    return torch.from_numpy(np.ascontiguousarray(loaded))


def _k(value: str | None) -> int | str | None:
    if value is None or value == "None":
        return None
    if value == "max_bin_count":
        return value
    try:
        return int(value)
    except ValueError:
        fail(_OWNER, '`--k` to be an int, "max_bin_count" or None', repr(value))


def _reference(args: argparse.Namespace) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if (args.reference is None) != (args.reference_labels is None):
        fail(_OWNER, "`--reference` and `--reference-labels` together", "only one of them")
    if args.reference is None:
        return None, None
    return (
        load_array(args.reference, "--reference"),
        load_array(args.reference_labels, "--reference-labels"),
    )


def run(args: argparse.Namespace) -> int:
    query = load_array(args.query, "query")
    query_labels = load_array(args.query_labels, "query_labels")
    reference, reference_labels = _reference(args)
    calculator = AccuracyCalculator(
        include=args.include,
        exclude=args.exclude,
        avg_of_avgs=args.avg_of_avgs,
        k=_k(args.k),
        device=args.device,
    )
    metrics = calculator.get_accuracy(
        query, query_labels, reference, reference_labels, args.ref_includes_query
    )
    width = max(len(name) for name in metrics)
    for name, value in metrics.items():
        print(f"{name:<{width}}  {value:.6f}")
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump({k: float(v) for k, v in metrics.items()}, handle, indent=2)
    return 0
