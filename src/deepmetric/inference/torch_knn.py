"""``TorchKNN``: exact k-nearest neighbours in plain torch, block by block (no faiss needed)."""

from __future__ import annotations

from typing import Any

import torch

from .._registry import KNN
from .._types import Tensor
from .._validation import fail
from ..distances.base_distance import BaseDistance
from ..distances.resolve import resolve_distance
from ..functional import retrieval as F
from ..functional._dtype import upcast
from .base_knn import BaseKNN

#: queries x references above which ``progress_bar=None`` shows a bar (on a terminal)
PROGRESS_MIN_PAIRS = 1 << 31


def _positive_int(owner: str, name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        fail(owner, f"`{name}` to be None or an int >= 1", repr(value))


@KNN.register
class TorchKNN(BaseKNN):
    """Exact k-NN over a stored reference set, computed in query blocks x reference blocks with a
    running top-k merge, so memory is bounded by the block sizes, never ``N x M``.

    Neighbours are ordered by ``(distance, reference index)``: ties go to the smaller index, as
    in faiss' ``IndexFlatL2``.

    Args:
        distance: ``None`` (default) for squared Euclidean distances on the raw embeddings, the
            values faiss' ``IndexFlatL2`` (PML's default) returns; or a distance (instance, class
            or registered name) whose matrix is used as is, largest first for similarities.
        reset_before, reset_after: empty the index before / after each call.
        batch_size: queries per block (``None``: from ``max_block_elements``).
        reference_batch_size: references per block (``None``: whole rows when they fit).
        max_block_elements: entries of one query-by-reference tile (default 2**24, 64 MiB of
            float32).
        progress_bar: show a tqdm bar over the queries; ``None`` shows it for large searches when
            writing to a terminal.
    """

    exact = True

    def __init__(
        self,
        distance: BaseDistance | type | str | None = None,
        reset_before: bool = True,
        reset_after: bool = True,
        batch_size: int | None = None,
        reference_batch_size: int | None = None,
        max_block_elements: int = F.DEFAULT_BLOCK_ELEMENTS,
        progress_bar: bool | None = None,
    ) -> None:
        super().__init__(reset_before, reset_after)
        owner = type(self).__name__
        self.distance = None if distance is None else resolve_distance(distance, owner)
        _positive_int(owner, "batch_size", batch_size)
        _positive_int(owner, "reference_batch_size", reference_batch_size)
        _positive_int(owner, "max_block_elements", max_block_elements)
        self.batch_size = batch_size
        self.reference_batch_size = reference_batch_size
        self.max_block_elements = max_block_elements
        self.progress_bar = progress_bar

    # -------------------------------------------------------------- distances
    @property
    def is_inverted(self) -> bool:
        """True when the returned values are similarities (largest first)."""
        return self.distance is not None and bool(self.distance.is_inverted)

    def closeness_fn(self) -> F.DistanceFn:
        """``fn(query, reference, out=None) -> Tensor[b, m]``, smaller = closer."""
        distance = self.distance
        if distance is None:
            return F.squared_l2_distances

        def fn(query: Tensor, reference: Tensor, out: Tensor | None = None) -> Tensor:
            mat = distance(upcast(query), upcast(reference))
            return -mat if distance.is_inverted else mat

        return fn

    def block_sizes(self) -> dict[str, Any]:
        """Keyword arguments for the blockwise kernels in :mod:`deepmetric.functional.retrieval`."""
        return {
            "query_block": self.batch_size,
            "reference_block": self.reference_batch_size,
            "max_elements": self.max_block_elements,
        }

    def progress(self, n_query: int, n_reference: int, desc: str) -> Any:
        """A tqdm bar over ``n_query`` queries, or None."""
        show = self.progress_bar
        if show is False or (show is None and n_query * n_reference < PROGRESS_MIN_PAIRS):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=n_query, desc=desc, unit="query", disable=None if show is None else False)

    # -------------------------------------------------------------- index
    def _new_index(self, dim: int) -> Tensor:
        return torch.empty(0, dim)

    def _add(self, embeddings: Tensor) -> None:
        index: Tensor = self.index
        if index.shape[1] != embeddings.shape[1]:
            fail(
                type(self).__name__,
                f"embeddings with D={index.shape[1]} columns like the index",
                str(tuple(embeddings.shape)),
            )
        if len(index) == 0:
            self.index = embeddings
        else:
            dtype = torch.promote_types(index.dtype, embeddings.dtype)
            self.index = torch.cat([index.to(dtype), embeddings.to(index.device, dtype)])

    def _size(self) -> tuple[int, int]:
        return len(self.index), self.index.shape[1]

    def _search(self, query: Tensor, k: int, ref_includes_query: bool) -> tuple[Tensor, Tensor]:
        reference = self.index.to(query.device)
        dtype = torch.promote_types(upcast(query).dtype, upcast(reference).dtype)
        q, r = query.to(dtype), reference.to(dtype)
        bar = self.progress(len(q), len(r), type(self).__name__)
        try:
            values, indices = F.knn(
                q,
                r,
                k,
                distance_fn=self.closeness_fn(),
                exclude_self=ref_includes_query,
                progress=bar,
                **self.block_sizes(),
            )
        finally:
            if bar is not None:
                bar.close()
        return (-values if self.is_inverted else values), indices

    def save(self, filename: str) -> None:
        """Write the index (the stored reference embeddings) with ``torch.save``."""
        if self.index is None:
            fail(type(self).__name__, "a built index to save", "an empty index", exc=RuntimeError)
        torch.save({"deepmetric_index": type(self).__name__, "index": self.index.cpu()}, filename)

    def load(self, filename: str) -> None:
        """Read an index written by :meth:`save`."""
        state = torch.load(filename, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "index" not in state:
            fail(type(self).__name__, "a file written by TorchKNN.save", repr(filename))
        self.index = state["index"]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(distance={self.distance!r}, reset_before={self.reset_before}, "
            f"reset_after={self.reset_after}, batch_size={self.batch_size})"
        )
