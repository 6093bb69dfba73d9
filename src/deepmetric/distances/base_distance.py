"""``BaseDistance``: normalisation, power, stats and the query-by-reference matrix."""

from __future__ import annotations

from typing import Any

import torch

from .._types import Tensor
from ..records import ModuleWithRecords


class BaseDistance(ModuleWithRecords):
    """Computes a ``Tensor[len(query), len(ref)]`` matrix of distances or similarities.

    Args:
        normalize_embeddings: L_p-normalise rows before comparing them.
        p: the norm's order (for normalisation and Lp distances).
        power: raise every matrix entry to this power.
        is_inverted: ``False`` when small means similar (distances), ``True`` for similarities.
        collect_stats: record input norms (``None`` reads :mod:`deepmetric.config`).
    """

    recordable = ("p", "power")
    stats = (
        "initial_avg_query_norm",
        "initial_avg_ref_norm",
        "final_avg_query_norm",
        "final_avg_ref_norm",
    )

    def __init__(
        self,
        normalize_embeddings: bool = True,
        p: float = 2,
        power: float = 1,
        is_inverted: bool = False,
        collect_stats: bool | None = None,
    ) -> None:
        super().__init__(collect_stats=collect_stats)
        self.normalize_embeddings = normalize_embeddings
        self.p = p
        self.power = power
        self.is_inverted = is_inverted

    def forward(self, query_emb: Tensor, ref_emb: Tensor | None = None) -> Tensor:
        """``Tensor[N, M]``: entry (i, j) compares ``query_emb[i]`` with ``ref_emb[j]``."""
        self.reset_stats()
        self.check_shapes(query_emb, ref_emb)
        query = self.maybe_normalize(query_emb)
        ref = query if ref_emb is None else self.maybe_normalize(ref_emb)
        if self.collect_stats:
            self._record_norms(query_emb, ref_emb, query, ref)
        mat = self.compute_mat(query, ref)
        if self.power != 1:
            mat = mat**self.power
        return mat

    def _record_norms(
        self, query_emb: Tensor, ref_emb: Tensor | None, query: Tensor, ref: Tensor
    ) -> None:
        with torch.no_grad():
            ref_raw = query_emb if ref_emb is None else ref_emb
            self.record_stat("initial_avg_query_norm", self.get_norm(query_emb).mean())
            self.record_stat("initial_avg_ref_norm", self.get_norm(ref_raw).mean())
            self.record_stat("final_avg_query_norm", self.get_norm(query).mean())
            self.record_stat("final_avg_ref_norm", self.get_norm(ref).mean())

    def check_shapes(self, query_emb: Tensor, ref_emb: Tensor | None) -> None:
        """Both inputs must be 2-D with the same number of columns (override to accept N-D)."""
        for name, t in (("query_emb", query_emb), ("ref_emb", ref_emb)):
            if t is not None and t.ndim != 2:
                raise ValueError(
                    f"{type(self).__name__}: expected `{name}` of shape (N, D), "
                    f"got shape {tuple(t.shape)}."
                )
        if ref_emb is not None and query_emb.shape[1] != ref_emb.shape[1]:
            raise ValueError(
                f"{type(self).__name__}: expected `ref_emb` with D={query_emb.shape[1]} columns "
                f"like `query_emb`, got shape {tuple(ref_emb.shape)}."
            )

    def compute_mat(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        raise NotImplementedError

    def pairwise_distance(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        """One value per row pair (row i of each); no normalisation and no power applied."""
        raise NotImplementedError

    def smallest_dist(self, *args: Any, **kwargs: Any) -> Any:
        """The "most similar" reduction: ``max`` for similarities, ``min`` for distances."""
        return torch.max(*args, **kwargs) if self.is_inverted else torch.min(*args, **kwargs)

    def largest_dist(self, *args: Any, **kwargs: Any) -> Any:
        return torch.min(*args, **kwargs) if self.is_inverted else torch.max(*args, **kwargs)

    def margin(self, x: Any, y: Any) -> Any:
        """How far ``x`` lies beyond ``y`` in the dissimilar direction."""
        return y - x if self.is_inverted else x - y

    def normalize(self, embeddings: Tensor, dim: int = 1, **kwargs: Any) -> Tensor:
        return torch.nn.functional.normalize(embeddings, p=self.p, dim=dim, **kwargs)

    def maybe_normalize(self, embeddings: Tensor, dim: int = 1, **kwargs: Any) -> Tensor:
        return (
            self.normalize(embeddings, dim=dim, **kwargs)
            if self.normalize_embeddings
            else embeddings
        )

    def get_norm(self, embeddings: Tensor, dim: int = 1, **kwargs: Any) -> Tensor:
        return torch.linalg.vector_norm(embeddings, ord=self.p, dim=dim, **kwargs)

    def extra_repr(self) -> str:
        own = f"normalize_embeddings={self.normalize_embeddings!r}"
        own += f", is_inverted={self.is_inverted!r}"
        recorded = super().extra_repr()
        return f"{own}, {recorded}" if recorded else own
