"""``FaissKNN``: k-NN through a faiss index (optional: ``pip install deepmetric[faiss]``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .._logging import get_logger
from .._optional import optional_import
from .._registry import KNN
from .._types import Tensor
from .._validation import fail
from ..functional.retrieval import drop_self
from .base_knn import BaseKNN

#: the largest k faiss' GPU indexes accept (CUDA >= 9.5)
MAX_GPU_K = 2048


def _faiss(feature: str) -> Any:
    return optional_import("faiss", feature=feature)


def _as_float32(x: Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float32, copy=False))


@KNN.register
class FaissKNN(BaseKNN):
    """PML's default k-NN: a faiss index (``IndexFlatL2``, so squared L2 distances).

    Args:
        reset_before, reset_after: start a fresh index before / drop it after each call.
        index_init_fn: ``dim -> faiss index`` (default ``faiss.IndexFlatL2``).
        gpus: GPU ids to put the index on (a non-empty list or tuple); the index also goes to the
            GPUs for CUDA queries when faiss has GPU support and ``k`` <= 2048.

    With ``ref_includes_query`` it searches ``k + 1`` neighbours and drops each query's own
    index (or the last column when it is absent).
    """

    def __init__(
        self,
        reset_before: bool = True,
        reset_after: bool = True,
        index_init_fn: Callable[[int], Any] | None = None,
        gpus: Sequence[int] | None = None,
    ) -> None:
        faiss = _faiss("FaissKNN")
        super().__init__(reset_before, reset_after)
        self.index_init_fn = faiss.IndexFlatL2 if index_init_fn is None else index_init_fn
        if gpus is not None:
            if not isinstance(gpus, (list, tuple)):
                fail(
                    "FaissKNN",
                    "`gpus` as a list or tuple of GPU ids",
                    type(gpus).__name__,
                    exc=TypeError,
                )
            if len(gpus) < 1:
                fail("FaissKNN", "at least one GPU id in `gpus`", "an empty sequence")
        self.gpus = gpus

    def _new_index(self, dim: int) -> Any:
        return self.index_init_fn(dim)

    def _add(self, embeddings: Tensor) -> None:
        if embeddings.shape[1] != self.index.d:
            fail(
                "FaissKNN",
                f"embeddings with D={self.index.d} columns like the index",
                str(tuple(embeddings.shape)),
            )
        self.index.add(_as_float32(embeddings))

    def _size(self) -> tuple[int, int]:
        return int(self.index.ntotal), int(self.index.d)

    def _search_index(self, query: Tensor, k: int) -> Any:
        faiss = _faiss("FaissKNN")
        wants_gpu = query.is_cuda or self.gpus is not None
        if wants_gpu and faiss.get_num_gpus() > 0:
            if k <= MAX_GPU_K:
                if self.gpus is None:
                    return faiss.index_cpu_to_all_gpus(self.index)
                return faiss.index_cpu_to_gpus_list(self.index, gpus=list(self.gpus))
            get_logger().warning(
                "Using CPU for k-nn search because k = %d > %d, which is the maximum allowable "
                "on GPU.",
                k,
                MAX_GPU_K,
            )
        return self.index

    def _search(self, query: Tensor, k: int, ref_includes_query: bool) -> tuple[Tensor, Tensor]:
        width = k + int(ref_includes_query)
        d, i = self._search_index(query, width).search(_as_float32(query), width)
        distances, indices = torch.from_numpy(d), torch.from_numpy(i).long()
        if ref_includes_query:
            distances, indices = drop_self(distances, indices)
        return distances, indices

    def save(self, filename: str) -> None:
        """``faiss.write_index`` (GPU indexes are copied to the CPU first)."""
        faiss = _faiss("FaissKNN.save")
        if self.index is None:
            fail("FaissKNN", "a built index to save", "an empty index", exc=RuntimeError)
        index = self.index
        if "Gpu" in type(index).__name__:
            index = faiss.index_gpu_to_cpu(index)
        faiss.write_index(index, filename)

    def load(self, filename: str) -> None:
        """``faiss.read_index``."""
        self.index = _faiss("FaissKNN.load").read_index(filename)
