"""The AccuracyCalculator's machinery: label bookkeeping and per-query retrieval values.

Labels are never cast to float: they are compared as given (integers stay exact above 2**24).
Multi-dimensional labels (``Tensor[N, L]``) are equal when all their entries are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._types import Tensor
from .._validation import fail
from ..functional import retrieval as F

EQUALITY = torch.eq
LabelComparisonFn = Callable[[Tensor, Tensor], Tensor]

#: opt-in metrics with a cut-off in the name: precision_at_5, recall_at_1, ndcg_at_10
PARAMETRIC = re.compile(r"^(precision|recall|ndcg)_at_([1-9][0-9]*)$")
#: opt-in metrics without a cut-off (NDCG over all retrieved neighbours)
EXTRA = ("ndcg",)
BUILTIN_KNN = (
    "mean_average_precision",
    "mean_average_precision_at_r",
    "mean_reciprocal_rank",
    "precision_at_1",
    "r_precision",
)


def is_extra(name: str) -> bool:
    return name in EXTRA or PARAMETRIC.match(name) is not None


def _same(
    owner: str, fn: LabelComparisonFn, a: Tensor, b: Tensor, shape: tuple[int, ...]
) -> Tensor:
    """``fn(a, b)`` as a bool tensor of ``shape`` (the default equality compares whole rows)."""
    if fn is EQUALITY:
        out = a == b
        if out.dim() > len(shape):
            out = out.flatten(len(shape)).all(-1)
    else:
        out = fn(a, b)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            fail(
                owner,
                f"`label_comparison_fn` to return a tensor of shape {shape}",
                str(got),
                "It is called with broadcastable label tensors and must reduce label dimensions.",
            )
    return out.bool()


@dataclass
class LabelStats:
    """Who matches whom. ``unique``: sorted unique query labels; ``query_class``: index of each
    query's label in ``unique``; ``match_counts``: references matching each unique label;
    ``lone``: unique labels without a usable match; ``num_relevant``: R per query."""

    unique: Tensor
    query_class: Tensor
    match_counts: Tensor
    lone: Tensor
    not_lone: Tensor
    num_relevant: Tensor
    query_ids: Tensor | None  # ids shared with reference_ids under the default equality
    reference_ids: Tensor | None


def label_stats(
    owner: str,
    query_labels: Tensor,
    reference_labels: Tensor,
    ref_includes_query: bool,
    fn: LabelComparisonFn,
    max_elements: int = F.DEFAULT_BLOCK_ELEMENTS,
) -> LabelStats:
    unique, query_class = torch.unique(query_labels, dim=0, return_inverse=True)
    n_unique = len(unique)
    query_ids = reference_ids = None
    if fn is EQUALITY:
        dtype = torch.promote_types(query_labels.dtype, reference_labels.dtype)
        both = torch.cat([query_labels.to(dtype), reference_labels.to(dtype)])
        _, ids = torch.unique(both, dim=0, return_inverse=True)
        query_ids, reference_ids = ids[: len(query_labels)], ids[len(query_labels) :]
        per_id = torch.bincount(reference_ids, minlength=int(ids.max()) + 1)
        match_counts = torch.zeros(n_unique, dtype=torch.long, device=unique.device)
        match_counts[query_class] = per_id[query_ids]
        matches_itself = torch.ones(n_unique, dtype=torch.bool, device=unique.device)
    else:
        block = max(1, max_elements // max(1, len(reference_labels)))
        counts = []
        for s in range(0, n_unique, block):
            u = unique[s : s + block]
            ref = reference_labels.unsqueeze(0).expand(len(u), *reference_labels.shape)
            counts.append(_same(owner, fn, u.unsqueeze(1), ref, (len(u), len(ref[0]))).sum(1))
        match_counts = torch.cat(counts)
        matches_itself = _same(owner, fn, unique, unique, (n_unique,))
    # lone: no match, or (when the query is in the reference) only itself
    lone = match_counts - matches_itself.long() <= 0 if ref_includes_query else match_counts == 0
    num_relevant = match_counts[query_class] - int(ref_includes_query)
    return LabelStats(
        unique,
        query_class,
        match_counts,
        lone,
        ~lone[query_class],
        num_relevant,
        query_ids,
        reference_ids,
    )


def cutoff(name: str, k: int) -> int:
    """The rank cut-off of metric ``name`` when ``k`` neighbours are retrieved."""
    match = PARAMETRIC.match(name)
    return int(match.group(2)) if match else k


def per_query_values(name: str, ranks: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """One float64 value per query for metric ``name`` from its positives' ranks."""
    if name == "precision_at_1":
        return F.precision_at_k(ranks, 1)
    if name == "r_precision":
        return F.r_precision(ranks, num_relevant, k)
    if name == "mean_average_precision_at_r":
        return F.average_precision(ranks, num_relevant, k, at_r=True)
    if name == "mean_average_precision":
        return F.average_precision(ranks, num_relevant, k)
    if name == "mean_reciprocal_rank":
        return F.reciprocal_rank(ranks, k)
    if name == "ndcg":
        return F.ndcg(ranks, num_relevant, k)
    match = PARAMETRIC.match(name)
    if match is None:
        raise KeyError(name)
    kind, cut = match.group(1), int(match.group(2))
    if kind == "precision":
        return F.precision_at_k(ranks, cut)
    if kind == "recall":
        return F.recall_at_k(ranks, cut)
    return F.ndcg(ranks, num_relevant, cut)


class RetrievalValues:
    """Per-query values of the k-NN metrics, and how to average them (PML's rules: lone queries
    are left out; ``avg_of_avgs`` averages per class first; ``return_per_class`` lists the class
    averages in sorted label order)."""

    def __init__(self, stats: LabelStats, k: int, names: list[str], device: torch.device) -> None:
        n = len(stats.query_class)
        self.stats, self.k = stats, k
        self.values = {
            name: torch.full((n,), math.nan, dtype=torch.float64, device=device) for name in names
        }

    def fill(self, start: int, end: int, ranks: Tensor, num_relevant: Tensor) -> None:
        for name, out in self.values.items():
            out[start:end] = per_query_values(name, ranks, num_relevant, self.k)

    def class_means(self, name: str) -> Tensor:
        """``Tensor[U]``: each unique query label's mean (NaN for lone labels)."""
        s = self.stats
        keep = s.not_lone
        return F.class_means(self.values[name][keep], s.query_class[keep], len(s.unique))

    def summary(self, name: str, avg_of_avgs: bool, return_per_class: bool) -> Any:
        s = self.stats
        if not bool(s.not_lone.any()):
            return [math.nan] * len(s.unique) if return_per_class else math.nan
        if avg_of_avgs or return_per_class:
            means = self.class_means(name)[~s.lone]
            return means.cpu().tolist() if return_per_class else float(means.mean())
        return float(self.values[name][s.not_lone].mean())
