"""``AccuracyCalculator``: retrieval and clustering metrics of an embedding (PML 2.x API).

Exact without faiss: the default k-NN is :class:`~deepmetric.inference.torch_knn.TorchKNN`, and
the built-in k-NN metrics never materialise the ``N x k`` neighbour lists. For each block of
queries they need only where each query's positives land in its ranking
(:func:`deepmetric.functional.retrieval.positive_ranks`), so the default ``k=None`` (all
references) runs in memory bounded by the block size. Neighbour lists are built only for a
custom metric (a ``calculate_<name>`` of a subclass listed in ``requires_knn()``) or for a
``knn_func`` other than ``TorchKNN``, exactly as PML does.

Metrics (``R``: the references matching the query, without itself; ranks by distance, ties to
the smaller reference index; lone queries, those without any usable match, are left out):

* ``precision_at_1``, ``r_precision``, ``mean_average_precision_at_r`` (MAP@R),
  ``mean_average_precision`` (over the ``k`` retrieved, divided by ``R`` as in PML),
  ``mean_reciprocal_rank`` - see :mod:`deepmetric.functional.retrieval` for the formulas;
  MAP@R: Musgrave et al., "A Metric Learning Reality Check", ECCV 2020,
  https://arxiv.org/abs/2003.08505.
* ``NMI``, ``AMI``: scikit-learn's normalized / adjusted mutual information between the query
  labels and a k-means clustering of the queries into as many clusters as query labels.
* Opt-in (name them in ``include``): ``precision_at_<K>``, ``recall_at_<K>`` (the DML Recall@K:
  a positive among the first K), ``ndcg`` and ``ndcg_at_<K>`` (binary relevance).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from .._logging import get_logger
from .._registry import METRICS
from .._types import Tensor
from .._validation import fail
from ..functional import retrieval as F
from ..functional._dtype import upcast
from ..functional.tensors import use_cuda_if_available
from ..inference.kmeans import TorchKMeans
from ..inference.torch_knn import TorchKNN
from . import _evaluation as E
from .per_class_table import PerClassTable

EQUALITY = E.EQUALITY
_OWNER = "AccuracyCalculator"


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


@METRICS.register
class AccuracyCalculator:
    """Computes retrieval and clustering accuracies of query embeddings against a reference.

    Args:
        include: metric names to compute (default: all ``calculate_<name>`` methods).
        exclude: metric names to skip.
        avg_of_avgs: average each k-NN metric per query class first, then over classes.
        return_per_class: return each k-NN metric as a list of per-class averages (sorted labels);
            exclusive with ``avg_of_avgs``.
        k: neighbours retrieved: ``None`` (all references), ``"max_bin_count"`` (the largest
            number of references matching one query label) or an int >= 1 (capped at the number
            of references).
        label_comparison_fn: ``fn(labels_a, labels_b) -> bool tensor`` deciding which labels
            match, for multi-dimensional or non-categorical labels (default ``torch.eq``, whole
            label rows). Not combinable with NMI/AMI.
        device: where the computation runs (default: CUDA when available).
        knn_func: ``fn(query, k, reference, ref_includes_query) -> (distances, indices)``;
            default :class:`~deepmetric.inference.torch_knn.TorchKNN` (exact, squared L2 like
            PML's faiss ``IndexFlatL2``).
        kmeans_func: ``fn(embeddings, n_clusters) -> cluster ids``; default
            :class:`~deepmetric.inference.kmeans.TorchKMeans`.

    Differences from PML: labels are not cast to float; ``k`` above the number of references is
    capped; ``mean_reciprocal_rank`` alone works (it is in ``requires_knn()``); unknown metric
    names in ``get_accuracy(include=...)`` raise instead of being ignored.
    """

    #: methods named ``calculate_<metric>`` define the metrics
    function_keyword: ClassVar[str] = "calculate_"

    def __init__(
        self,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        avg_of_avgs: bool = False,
        return_per_class: bool = False,
        k: int | str | None = None,
        label_comparison_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        device: torch.device | str | None = None,
        knn_func: Callable[..., tuple[Tensor, Tensor]] | None = None,
        kmeans_func: Callable[[Tensor, int], Tensor] | None = None,
    ) -> None:
        names = [x for x in dir(self) if x.startswith(self.function_keyword)]
        self.original_function_dict: dict[str, Callable[..., Any]] = {
            x[len(self.function_keyword) :]: getattr(self, x) for x in names
        }
        self.check_primary_metrics(include, exclude)
        self.original_function_dict = self.get_function_dict(include, exclude)
        self.curr_function_dict = self.get_function_dict()

        if avg_of_avgs and return_per_class:
            fail(
                _OWNER,
                "at most one of `avg_of_avgs` and `return_per_class`",
                "both True",
                "They are mutually exclusive.",
            )
        self.avg_of_avgs = avg_of_avgs
        self.return_per_class = return_per_class
        self.device = use_cuda_if_available() if device is None else torch.device(device)
        self.knn_func = TorchKNN() if knn_func is None else knn_func
        self.kmeans_func = TorchKMeans() if kmeans_func is None else kmeans_func

        if not (
            k is None
            or k == "max_bin_count"
            or (isinstance(k, int) and not isinstance(k, bool) and k > 0)
        ):
            fail(_OWNER, "`k` to be an int >= 1, None or 'max_bin_count'", repr(k))
        self.k = k

        if label_comparison_fn is not None:
            self.label_comparison_fn = label_comparison_fn
            clustering = set(self.requires_clustering()) & set(self.get_curr_metrics())
            if clustering:
                raise NotImplementedError(
                    f"{_OWNER}: a custom `label_comparison_fn` cannot be combined with the "
                    f"clustering metrics {sorted(clustering)}. Pass exclude=("
                    + ", ".join(repr(x) for x in sorted(clustering))
                    + ")."
                )
        else:
            self.label_comparison_fn = EQUALITY

    # ------------------------------------------------------------------ metric selection
    def _extra_metric(self, name: str) -> Callable[..., Any]:
        return functools.partial(self._calculate_extra, name)

    def get_function_dict(
        self, include: Sequence[str] = (), exclude: Sequence[str] = ()
    ) -> dict[str, Callable[..., Any]]:
        """The metrics selected by ``include`` minus ``exclude``, in discovery order; opt-in
        metrics (``recall_at_<K>``, ...) follow in the order given."""
        if len(include) == 0:
            include = list(self.original_function_dict)
        chosen = {k: v for k, v in self.original_function_dict.items() if k in include}
        for name in include:
            if name not in chosen and E.is_extra(name):
                chosen[name] = self._extra_metric(name)
        return {k: v for k, v in chosen.items() if k not in exclude}

    def get_curr_metrics(self) -> list[str]:
        return list(self.curr_function_dict)

    def check_primary_metrics(
        self, include: Sequence[str] = (), exclude: Sequence[str] = ()
    ) -> None:
        known = list(self.original_function_dict)
        for arg, value in (("include", include), ("exclude", exclude)):
            if not isinstance(value, (tuple, list)):
                fail(_OWNER, f"`{arg}` as a tuple or list", type(value).__name__, exc=TypeError)
            for name in value:
                if name not in known and not (isinstance(name, str) and E.is_extra(name)):
                    fail(
                        _OWNER,
                        f"metric names in `{arg}` among {known} (or precision_at_<K>, "
                        "recall_at_<K>, ndcg, ndcg_at_<K>)",
                        repr(name),
                        _suggest(str(name), known).strip() or None,
                    )

    def requires_clustering(self) -> list[str]:
        return ["NMI", "AMI"]

    def requires_knn(self) -> list[str]:
        return [
            "precision_at_1",
            "mean_average_precision",
            "mean_average_precision_at_r",
            "r_precision",
            "mean_reciprocal_rank",
        ]

    def description(self) -> str:
        return "avg_of_avgs" if self.avg_of_avgs else ""

    def _needs_knn(self, name: str) -> bool:
        return name in self.requires_knn() or E.is_extra(name)

    def _is_builtin(self, name: str) -> bool:
        """A k-NN metric computed here (not by a subclass's own ``calculate_<name>``)."""
        attr = self.function_keyword + name
        if name in E.BUILTIN_KNN:
            return getattr(type(self), attr) is getattr(AccuracyCalculator, attr)
        return E.is_extra(name) and not hasattr(self, attr)

    # ------------------------------------------------------------------ metrics
    def get_cluster_labels(self, query: Tensor, query_labels: Tensor, **kwargs: Any) -> Tensor:
        """``kmeans_func(query, number of distinct query labels)``."""
        n_clusters = len(torch.unique(query_labels, dim=0))
        return self.kmeans_func(query, n_clusters)

    @staticmethod
    def _label_ids(labels: Tensor) -> np.ndarray:
        return torch.unique(labels, dim=0, return_inverse=True)[1].cpu().numpy()

    def calculate_NMI(self, query_labels: Tensor, cluster_labels: Tensor, **kwargs: Any) -> float:
        return float(
            normalized_mutual_info_score(
                self._label_ids(query_labels), cluster_labels.cpu().numpy()
            )
        )

    def calculate_AMI(self, query_labels: Tensor, cluster_labels: Tensor, **kwargs: Any) -> float:
        return float(
            adjusted_mutual_info_score(self._label_ids(query_labels), cluster_labels.cpu().numpy())
        )

    def calculate_precision_at_1(self, **kwargs: Any) -> Any:
        return self._knn_metric("precision_at_1", kwargs)

    def calculate_mean_average_precision_at_r(self, **kwargs: Any) -> Any:
        return self._knn_metric("mean_average_precision_at_r", kwargs)

    def calculate_mean_average_precision(self, **kwargs: Any) -> Any:
        return self._knn_metric("mean_average_precision", kwargs)

    def calculate_mean_reciprocal_rank(self, **kwargs: Any) -> Any:
        return self._knn_metric("mean_reciprocal_rank", kwargs)

    def calculate_r_precision(self, **kwargs: Any) -> Any:
        return self._knn_metric("r_precision", kwargs)

    def _calculate_extra(self, name: str, **kwargs: Any) -> Any:
        return self._knn_metric(name, kwargs)

    def _knn_metric(self, name: str, kwargs: dict[str, Any]) -> Any:
        values: E.RetrievalValues | None = kwargs.get("_retrieval")
        if values is None or name not in values.values:
            values = self._values_from_knn_labels([name], **kwargs)
        return values.summary(name, self.avg_of_avgs, self.return_per_class)

    # ------------------------------------------------------------------ evaluation
    def get_accuracy(
        self,
        query: Any,
        query_labels: Any,
        reference: Any = None,
        reference_labels: Any = None,
        ref_includes_query: bool = False,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        *,
        embeddings_come_from_same_source: bool | None = None,
    ) -> dict[str, Any]:
        """``{metric: value}`` for the query embeddings and labels against the reference.

        ``reference=None`` uses the query set as reference (``ref_includes_query=True``). With
        ``ref_includes_query`` the first ``len(query)`` reference rows must be the queries; each
        query is then left out of its own ranking. ``embeddings_come_from_same_source`` is v1's
        name of ``ref_includes_query`` (deprecated).
        """
        kwargs = self._evaluate(
            query,
            query_labels,
            reference,
            reference_labels,
            ref_includes_query,
            include,
            exclude,
            embeddings_come_from_same_source,
        )
        return self._get_accuracy(self.curr_function_dict, **kwargs)

    def _get_accuracy(
        self, function_dict: dict[str, Callable[..., Any]], **kwargs: Any
    ) -> dict[str, Any]:
        return {k: v(**kwargs) for k, v in function_dict.items()}

    def per_class_table(
        self,
        query: Any,
        query_labels: Any,
        reference: Any = None,
        reference_labels: Any = None,
        ref_includes_query: bool = False,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> PerClassTable:
        """The k-NN metrics per query class as a :class:`PerClassTable` (clustering metrics,
        which have no per-class value, and custom metrics are left out)."""
        kwargs = self._evaluate(
            query, query_labels, reference, reference_labels, ref_includes_query, include, exclude
        )
        names = [n for n in self.get_curr_metrics() if self._needs_knn(n) and self._is_builtin(n)]
        values: E.RetrievalValues | None = kwargs.get("_retrieval")
        if not names or values is None:
            fail(_OWNER, "at least one k-NN metric selected", str(self.get_curr_metrics()))
        stats = values.stats
        labels = stats.unique.cpu()
        label_list = [tuple(x) if isinstance(x, list) else x for x in labels.tolist()]
        counts = torch.bincount(stats.query_class, minlength=len(labels)).cpu().tolist()
        self_count = int(kwargs["ref_includes_query"])
        relevant = (stats.match_counts - self_count).clamp_min(0).cpu().tolist()
        columns = {n: values.class_means(n).cpu().tolist() for n in names}
        return PerClassTable(label_list, counts, relevant, columns)

    def determine_k(
        self, bin_counts: Tensor, num_reference_embeddings: int, ref_includes_query: bool
    ) -> int:
        """Neighbours to retrieve per query (PML's rule, capped at the available references)."""
        self_count = int(ref_includes_query)
        available = num_reference_embeddings - self_count
        max_bin_count = int(bin_counts.max()) if len(bin_counts) else 0
        if self.k == "max_bin_count":
            k = max_bin_count - self_count
        elif self.k is None:
            k = available
        else:
            k = int(self.k)
            wrong = {"r_precision", "mean_average_precision_at_r"} & set(self.get_curr_metrics())
            if k < max_bin_count and wrong:
                get_logger().warning(
                    "You are computing %s, but the value for k (%d) is less than the max bin "
                    "count (%d) so the values for these metrics will be incorrect. To fix this, "
                    "set k='max_bin_count'. If you're looking for MAP@%d instead of MAP@R, use "
                    "'mean_average_precision' rather than 'mean_average_precision_at_r'.",
                    sorted(wrong),
                    k,
                    max_bin_count,
                    k,
                )
        return max(0, min(k, available))

    def _evaluate(
        self,
        query: Any,
        query_labels: Any,
        reference: Any,
        reference_labels: Any,
        ref_includes_query: bool,
        include: Sequence[str],
        exclude: Sequence[str],
        embeddings_come_from_same_source: bool | None = None,
    ) -> dict[str, Any]:
        if embeddings_come_from_same_source is not None:
            warnings.warn(
                "AccuracyCalculator.get_accuracy: `embeddings_come_from_same_source` is the "
                "pytorch-metric-learning v1 name; use `ref_includes_query`.",
                DeprecationWarning,
                stacklevel=3,
            )
            ref_includes_query = bool(embeddings_come_from_same_source)
        if reference is None:
            if reference_labels is not None:
                fail(_OWNER, "no `reference_labels` without `reference`", "reference_labels only")
            reference, reference_labels, ref_includes_query = query, query_labels, True
        elif reference_labels is None:
            fail(_OWNER, "`reference_labels` with `reference`", "None")
        q, ql, r, rl = self._prepare(query, query_labels, reference, reference_labels)
        if ref_includes_query:
            self._check_leading(q, ql, r, rl)
        self.check_primary_metrics(include, exclude)
        known = list(self.original_function_dict)
        unknown = [n for n in include if n not in known and not E.is_extra(n)]
        if unknown:
            fail(
                _OWNER,
                f"`include` names among this calculator's metrics {known}",
                repr(unknown[0]),
            )
        self.curr_function_dict = self.get_function_dict(include, exclude)

        kwargs: dict[str, Any] = {
            "query": q,
            "reference": r,
            "query_labels": ql,
            "reference_labels": rl,
            "ref_includes_query": ref_includes_query,
            "label_comparison_fn": self.label_comparison_fn,
        }
        metrics = self.get_curr_metrics()
        knn_metrics = [n for n in metrics if self._needs_knn(n)]
        if knn_metrics:
            self._knn_step(kwargs, knn_metrics)
        if any(n in self.requires_clustering() for n in metrics):
            kwargs["cluster_labels"] = self.get_cluster_labels(**kwargs)
        return kwargs

    def _knn_step(self, kwargs: dict[str, Any], knn_metrics: list[str]) -> None:
        q, ql, r, rl = (
            kwargs[x] for x in ("query", "query_labels", "reference", "reference_labels")
        )
        ref_includes_query = kwargs["ref_includes_query"]
        fn = self.label_comparison_fn
        stats = E.label_stats(_OWNER, ql, rl, ref_includes_query, fn)
        k = self.determine_k(stats.match_counts, len(r), ref_includes_query)
        for name in knn_metrics:
            if E.is_extra(name) and E.cutoff(name, k) > k:
                fail(
                    _OWNER,
                    f"`k` >= {E.cutoff(name, k)} neighbours for {name!r}",
                    f"k={k}",
                    "Use k=None or a larger k.",
                )
        if not bool(stats.not_lone.any()):
            get_logger().warning("None of the query labels are in the reference set.")
        kwargs["label_counts"] = (stats.unique, stats.match_counts)
        kwargs["lone_query_labels"] = stats.unique[stats.lone]
        kwargs["not_lone_query_mask"] = stats.not_lone
        kwargs["_stats"] = stats
        builtin = [n for n in knn_metrics if self._is_builtin(n)]
        rank_capable = isinstance(self.knn_func, TorchKNN) and (
            self.knn_func.reset_before or self.knn_func.index is None
        )
        custom = len(builtin) < len(knn_metrics) or self._other_metric_reads_neighbours()
        if (custom or not rank_capable) and k > 0:
            distances, indices = self.knn_func(q, k, r, ref_includes_query)
            kwargs["knn_distances"] = distances
            kwargs["knn_labels"] = rl[indices.to(rl.device)]
            if builtin:
                kwargs["_retrieval"] = self._values_from_knn_labels(builtin, **kwargs)
        elif builtin:
            # no neighbour to retrieve (k == 0) leaves every value NaN: all queries are lone
            kwargs["_retrieval"] = self._ranked_values(builtin, stats, k, kwargs)

    def _other_metric_reads_neighbours(self) -> bool:
        """A selected metric outside ``requires_knn()`` that names ``knn_labels`` or
        ``knn_distances`` as a parameter (PML hands those to every metric once any k-NN metric
        is selected)."""
        for name, fn in self.curr_function_dict.items():
            if self._needs_knn(name) or name in self.requires_clustering():
                continue
            try:
                params = inspect.signature(fn).parameters
            except (TypeError, ValueError):
                continue
            if "knn_labels" in params or "knn_distances" in params:
                return True
        return False

    def _ranked_values(
        self, names: list[str], stats: E.LabelStats, k: int, kwargs: dict[str, Any]
    ) -> E.RetrievalValues:
        """Per-query values from the ranks of each query's positives (no neighbour lists)."""
        q, ql, r, rl = (
            kwargs[x] for x in ("query", "query_labels", "reference", "reference_labels")
        )
        values = E.RetrievalValues(stats, k, names, q.device)
        if k == 0 or not bool(stats.not_lone.any()):
            return values
        knn: TorchKNN = self.knn_func  # type: ignore[assignment]
        dtype = torch.promote_types(upcast(q).dtype, upcast(r).dtype)
        q, r = q.to(dtype), r.to(dtype)
        if stats.query_ids is not None:
            extra: dict[str, Any] = {
                "query_ids": stats.query_ids,
                "reference_ids": stats.reference_ids,
            }
        else:
            fn = self.label_comparison_fn

            def positive_fn(rows: slice, cols: slice) -> Tensor:
                a = ql[rows].unsqueeze(1)
                b = rl[cols].unsqueeze(0).expand(len(a), *rl[cols].shape)
                return E._same(_OWNER, fn, a, b, (len(a), len(b[0])))

            extra = {"positive_fn": positive_fn}
        bar = knn.progress(len(q), len(r), _OWNER)
        try:
            for s, e, ranks, _ in F.positive_ranks(
                q,
                r,
                distance_fn=knn.closeness_fn(),
                exclude_self=kwargs["ref_includes_query"],
                progress=bar,
                **extra,
                **knn.block_sizes(),
            ):
                values.fill(s, e, ranks, stats.num_relevant[s:e])
        finally:
            if bar is not None:
                bar.close()
        return values

    def _values_from_knn_labels(
        self,
        names: list[str],
        knn_labels: Tensor | None = None,
        query_labels: Tensor | None = None,
        reference_labels: Tensor | None = None,
        ref_includes_query: bool = False,
        **kwargs: Any,
    ) -> E.RetrievalValues:
        """Per-query values from materialised neighbour labels ``knn_labels`` (``[N, k, ...]``)."""
        if knn_labels is None or query_labels is None or reference_labels is None:
            fail(
                _OWNER,
                "`knn_labels`, `query_labels` and `reference_labels` for a k-NN metric",
                "missing arguments",
                exc=TypeError,
            )
        stats = kwargs.get("_stats") or E.label_stats(
            _OWNER, query_labels, reference_labels, ref_includes_query, self.label_comparison_fn
        )
        n, k = knn_labels.shape[:2]
        values = E.RetrievalValues(stats, k, names, query_labels.device)
        block = max(1, F.DEFAULT_BLOCK_ELEMENTS // max(1, k))
        for s in range(0, n, block):
            e = min(n, s + block)
            gt = query_labels[s:e].unsqueeze(1)
            hits = E._same(_OWNER, self.label_comparison_fn, gt, knn_labels[s:e], (e - s, k))
            values.fill(s, e, F.ranks_from_hits(hits), stats.num_relevant[s:e])
        return values

    # ------------------------------------------------------------------ input checks
    def _prepare(
        self, query: Any, query_labels: Any, reference: Any, reference_labels: Any
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        q = self._embeddings(query, "query")
        r = q if reference is query else self._embeddings(reference, "reference")
        ql = self._labels(query_labels, "query_labels")
        rl = (
            ql
            if reference_labels is query_labels
            else self._labels(reference_labels, "reference_labels")
        )
        if q.shape[1] != r.shape[1]:
            fail(
                _OWNER,
                f"`reference` with D={q.shape[1]} columns like `query`",
                f"shape {tuple(r.shape)}",
            )
        for emb, lab, name in ((q, ql, "query"), (r, rl, "reference")):
            if len(lab) != len(emb):
                fail(
                    _OWNER,
                    f"one `{name}_labels` entry per `{name}` row ({len(emb)})",
                    f"{len(lab)} labels",
                )
        return q, ql, r, rl

    def _as_tensor(self, x: Any, name: str) -> Tensor:
        if isinstance(x, torch.Tensor):
            return x.detach().to(self.device)
        if isinstance(x, (np.ndarray, list, tuple)):
            try:
                return torch.as_tensor(np.asarray(x)).to(self.device)
            except (TypeError, ValueError, RuntimeError):
                pass
        fail(_OWNER, f"`{name}` as a torch.Tensor or numpy array", type(x).__name__, exc=TypeError)

    def _embeddings(self, x: Any, name: str) -> Tensor:
        t = self._as_tensor(x, name)
        if t.ndim != 2:
            fail(_OWNER, f"`{name}` of shape (N, D)", f"shape {tuple(t.shape)}")
        if len(t) == 0:
            fail(_OWNER, f"a non-empty `{name}`", f"shape {tuple(t.shape)}")
        if t.is_complex() or t.dtype == torch.bool:
            fail(_OWNER, f"real-valued `{name}`", str(t.dtype), exc=TypeError)
        if not t.is_floating_point():
            t = t.float()
        if not bool(torch.isfinite(t).all()):
            fail(_OWNER, f"finite `{name}`", "NaN or inf values")
        return t

    def _labels(self, x: Any, name: str) -> Tensor:
        t = self._as_tensor(x, name)
        if t.ndim == 0:
            fail(_OWNER, f"`{name}` with one entry per embedding", "a scalar")
        return t

    @staticmethod
    def _check_leading(q: Tensor, ql: Tensor, r: Tensor, rl: Tensor) -> None:
        n = len(q)
        same = (
            len(r) >= n
            and (r is q or torch.allclose(q, r[:n].to(q.dtype)))
            and (rl is ql or (ql.shape[1:] == rl.shape[1:] and bool((ql == rl[:n]).all())))
        )
        if not same:
            fail(
                _OWNER,
                "the first len(query) rows of `reference` (and `reference_labels`) to be the "
                "query (and its labels) when ref_includes_query=True",
                "different rows",
                "Put the queries first in the reference, or pass ref_includes_query=False.",
            )

    def __repr__(self) -> str:
        return (
            f"{_OWNER}(include={self.get_curr_metrics()}, avg_of_avgs={self.avg_of_avgs}, "
            f"return_per_class={self.return_per_class}, k={self.k!r}, device={self.device})"
        )


__all__ = ["EQUALITY", "AccuracyCalculator"]
