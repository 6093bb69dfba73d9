"""The k-nearest-neighbour index protocol (PML's ``knn_func``) and the shared stateful base."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from .._logging import get_logger
from .._types import Tensor
from .._validation import check_embeddings, fail


@runtime_checkable
class KNNFunc(Protocol):
    """What :class:`~deepmetric.metrics.accuracy_calculator.AccuracyCalculator` and
    :class:`~deepmetric.inference.inference_model.InferenceModel` call.

    ``knn(query, k, reference=None, ref_includes_query=False)`` returns
    ``(distances Tensor[N, k], indices LongTensor[N, k])``, nearest first. With
    ``ref_includes_query`` query ``i`` is reference ``i`` and is left out of its own list.
    """

    def __call__(
        self,
        query: Tensor,
        k: int,
        reference: Tensor | None = None,
        ref_includes_query: bool = False,
    ) -> tuple[Tensor, Tensor]: ...


class BaseKNN:
    """A searchable index with PML's life cycle.

    ``train(embeddings)`` starts a new index, ``add(embeddings)`` appends, ``reset()`` empties it;
    a call with ``reference`` adds it first. ``reset_before`` / ``reset_after`` empty the index
    before / after each call (the defaults: stateless, as the AccuracyCalculator uses it;
    ``InferenceModel`` keeps the index with both False).

    Subclasses implement ``_new_index``, ``_add``, ``_size``, ``_search``, ``save`` and ``load``.
    """

    #: True when ``_search`` is exact and ordered by ``(distance, index)``.
    exact: ClassVar[bool] = False

    def __init__(self, reset_before: bool = True, reset_after: bool = True) -> None:
        self.reset_before = reset_before
        self.reset_after = reset_after
        self.index: Any = None

    # -------------------------------------------------------------- life cycle
    def train(self, embeddings: Tensor) -> None:
        """Start a new index holding ``embeddings`` (``Tensor[M, D]``)."""
        emb = self._as_embeddings(embeddings, "embeddings")
        self.index = self._new_index(emb.shape[1])
        self._add(emb)

    def add(self, embeddings: Tensor) -> None:
        """Append ``embeddings`` to the index (started on first use)."""
        emb = self._as_embeddings(embeddings, "embeddings")
        if self.index is None:
            self.index = self._new_index(emb.shape[1])
        self._add(emb)

    def reset(self) -> None:
        """Empty the index."""
        self.index = None

    def save(self, filename: str) -> None:
        raise NotImplementedError

    def load(self, filename: str) -> None:
        raise NotImplementedError

    # -------------------------------------------------------------- search
    def __call__(
        self,
        query: Tensor,
        k: int,
        reference: Tensor | None = None,
        ref_includes_query: bool = False,
    ) -> tuple[Tensor, Tensor]:
        query = self._as_embeddings(query, "query")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            fail(type(self).__name__, "`k` to be an int >= 1", repr(k), exc=ValueError)
        if self.reset_before:
            self.reset()
        if reference is not None:
            self.add(reference)
        try:
            if self.index is None:
                fail(
                    type(self).__name__,
                    "a built index or a `reference`",
                    "an empty index",
                    "Call train(embeddings) first, or pass reference=...",
                    RuntimeError,
                )
            size, dim = self._size()
            if query.shape[1] != dim:
                fail(type(self).__name__, f"`query` with D={dim} columns", str(tuple(query.shape)))
            if ref_includes_query and size < len(query):
                fail(
                    type(self).__name__,
                    f"at least len(query)={len(query)} references with ref_includes_query",
                    f"{size}",
                )
            available = size - int(ref_includes_query)
            if k > available:
                fail(
                    type(self).__name__,
                    f"`k` <= {available} (the references"
                    + (" other than the query itself)" if ref_includes_query else ")"),
                    str(k),
                    "Use a smaller k.",
                )
            get_logger().info("running k-nn with k=%d", k)
            get_logger().info("embedding dimensionality is %d", dim)
            distances, indices = self._search(query, k, ref_includes_query)
        finally:
            if self.reset_after:
                self.reset()
        return distances.to(query.device), indices.to(query.device)

    # -------------------------------------------------------------- hooks
    def _as_embeddings(self, x: Any, name: str) -> Tensor:
        if not isinstance(x, torch.Tensor):
            try:
                x = torch.as_tensor(x)
            except (TypeError, ValueError, RuntimeError):
                fail(type(self).__name__, f"`{name}` as a tensor", type(x).__name__, exc=TypeError)
        return check_embeddings(type(self).__name__, x.detach(), name)

    def _new_index(self, dim: int) -> Any:
        raise NotImplementedError

    def _add(self, embeddings: Tensor) -> None:
        raise NotImplementedError

    def _size(self) -> tuple[int, int]:
        """``(number of vectors, dimension)`` of the index."""
        raise NotImplementedError

    def _search(self, query: Tensor, k: int, ref_includes_query: bool) -> tuple[Tensor, Tensor]:
        raise NotImplementedError
