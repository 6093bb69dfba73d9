"""``InferenceModel``: embed inputs with a trained model, then search or match them."""

from __future__ import annotations

from typing import Any

import torch

from .._types import Tensor
from .._validation import fail
from ..distances.cosine_similarity import CosineSimilarity
from ..functional.tensors import to_device, use_cuda_if_available
from .match_finder import MatchFinder
from .torch_knn import TorchKNN


class InferenceModel:
    """Embeddings from ``embedder(trunk(x))`` (eval mode, no grad, L2-normalised by default),
    a k-NN index over them and threshold matching.

    Args:
        trunk: the model (any callable ``nn.Module``; inputs need not be tensors).
        embedder: applied after the trunk (default identity).
        match_finder: default ``MatchFinder(CosineSimilarity(), threshold=0.9)``.
        normalize_embeddings: L2-normalise the embeddings.
        knn_func: the index; default ``TorchKNN(reset_before=False, reset_after=False)`` (PML
            used faiss; pass :class:`~deepmetric.inference.faiss_knn.FaissKNN` for that).
        data_device: where tensor inputs are moved (default CUDA when available).
        dtype: dtype tensor inputs are cast to (default: unchanged).
    """

    def __init__(
        self,
        trunk: torch.nn.Module,
        embedder: torch.nn.Module | None = None,
        match_finder: MatchFinder | None = None,
        normalize_embeddings: bool = True,
        knn_func: Any = None,
        data_device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.trunk = trunk
        self.embedder = torch.nn.Identity() if embedder is None else embedder
        self.match_finder = (
            MatchFinder(distance=CosineSimilarity(), threshold=0.9)
            if match_finder is None
            else match_finder
        )
        self.knn_func = (
            TorchKNN(reset_before=False, reset_after=False) if knn_func is None else knn_func
        )
        self.normalize_embeddings = normalize_embeddings
        self.data_device = (
            use_cuda_if_available() if data_device is None else torch.device(data_device)
        )
        self.dtype = dtype

    # -------------------------------------------------------------- embeddings
    def process_if_list(self, x: Any) -> Any:
        """A list of tensors becomes one stacked tensor; anything else is returned as is."""
        if isinstance(x, list) and x and all(isinstance(v, torch.Tensor) for v in x):
            return torch.stack(x)
        return x

    def get_embeddings(self, x: Any) -> Tensor:
        """Embeddings of one batch of inputs."""
        x = self.process_if_list(x)
        if isinstance(x, torch.Tensor):
            x = to_device(x, device=self.data_device, dtype=self.dtype)
        self.trunk.eval()
        self.embedder.eval()
        with torch.no_grad():
            emb = self.embedder(self.trunk(x))
        if self.normalize_embeddings:
            emb = torch.nn.functional.normalize(emb, p=2, dim=1)
        return emb

    def get_embeddings_from_tensor_or_dataset(self, inputs: Any, batch_size: int) -> Tensor:
        """Embeddings of a tensor or list (in slices of ``batch_size``) or of a Dataset whose
        items are ``(input, anything)``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            fail("InferenceModel", "`batch_size` to be an int >= 1", repr(batch_size))
        inputs = self.process_if_list(inputs)
        parts = []
        if isinstance(inputs, (torch.Tensor, list)):
            for i in range(0, len(inputs), batch_size):
                parts.append(self.get_embeddings(inputs[i : i + batch_size]))
        elif isinstance(inputs, torch.utils.data.Dataset):
            loader = torch.utils.data.DataLoader(inputs, batch_size=batch_size)
            for inp, _ in loader:
                parts.append(self.get_embeddings(inp))
        else:
            fail(
                "InferenceModel",
                "inputs as a tensor, a list or a torch Dataset",
                type(inputs).__name__,
                exc=TypeError,
            )
        if not parts:
            fail("InferenceModel", "at least one input", "none")
        return torch.cat(parts)

    # -------------------------------------------------------------- k-NN
    def call_knn(self, func: Any, inputs: Any, batch_size: int) -> None:
        func(self.get_embeddings_from_tensor_or_dataset(inputs, batch_size))

    def train_knn(self, inputs: Any, batch_size: int = 64) -> None:
        """Build the index from the embeddings of ``inputs``."""
        self.call_knn(self.knn_func.train, inputs, batch_size)

    def add_to_knn(self, inputs: Any, batch_size: int = 64) -> None:
        """Add the embeddings of ``inputs`` to the index."""
        self.call_knn(self.knn_func.add, inputs, batch_size)

    def get_nearest_neighbors(self, query: Any, k: int) -> tuple[Tensor, Tensor]:
        """``(distances, indices)`` of the ``k`` indexed items nearest to each query."""
        if getattr(self.knn_func, "index", True) is None:
            fail(
                "InferenceModel",
                "a built index",
                "an empty one",
                "Call train_knn(...) or load_knn_func(...) first.",
                RuntimeError,
            )
        return self.knn_func(self.get_embeddings(query), k)

    def save_knn_func(self, filename: str) -> None:
        self.knn_func.save(filename)

    def load_knn_func(self, filename: str) -> None:
        self.knn_func.load(filename)

    # -------------------------------------------------------------- matching
    def get_matches(
        self,
        query: Any,
        ref: Any = None,
        threshold: float | None = None,
        return_tuples: bool = False,
    ) -> Any:
        """Matching (query, reference) pairs; ``ref=None`` matches the queries among themselves."""
        query_emb = self.get_embeddings(query)
        ref_emb = query_emb if ref is None else self.get_embeddings(ref)
        return self.match_finder.get_matching_pairs(query_emb, ref_emb, threshold, return_tuples)

    def is_match(self, x: Any, y: Any, threshold: float | None = None) -> Any:
        """Whether input ``i`` of ``x`` matches input ``i`` of ``y``."""
        return self.match_finder.is_match(self.get_embeddings(x), self.get_embeddings(y), threshold)
