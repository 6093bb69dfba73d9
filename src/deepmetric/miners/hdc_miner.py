"""``HDCMiner``: keeps the hardest fraction of the positive and of the negative pairs."""

from __future__ import annotations

import numbers
from typing import Any

from .. import _validation as V
from .._registry import MINERS
from .._types import IndicesTuple, PairIndices, Tensor
from ..functional import mining as F
from ..functional import tuples as T
from .base_tuple_miner import BaseTupleMiner


@MINERS.register
class HDCMiner(BaseTupleMiner):
    """The ``ceil(filter_percentage * count)`` hardest positive pairs (largest distances) and
    likewise the hardest negative pairs (smallest distances); mirrored for similarities.

    Yuan et al., "Hard-Aware Deeply Cascaded Embedding", ICCV 2017,
    https://arxiv.org/abs/1611.05720 (sec. 3.2): a cascade of models, each refining the pairs its
    predecessor found hard. The pool is every pair of the batch or, after
    :meth:`set_idx_externally`, the given tuple; the pool is then filtered at every call (the
    cascade) until :meth:`reset_idx`. Pairs come out hardest first (``torch.topk`` order).

    Args:
        filter_percentage: fraction kept, in [0, 1].
        **kwargs: ``distance`` (default ``LpDistance()``), ``collect_stats``.

    State: ``a1, p, a2, n`` (the current pool, then the last output), ``was_set_externally``.
    """

    recordable = ("filter_percentage",)
    filter_percentage: float
    was_set_externally: bool

    def __init__(self, filter_percentage: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(filter_percentage, bool)
            or not isinstance(filter_percentage, numbers.Real)
            or not 0 <= filter_percentage <= 1
        ):
            V.fail(type(self).__name__, "`filter_percentage` in [0, 1]", repr(filter_percentage))
        self.filter_percentage = filter_percentage
        self.a1: Tensor | None = None
        self.p: Tensor | None = None
        self.a2: Tensor | None = None
        self.n: Tensor | None = None
        self.was_set_externally = False

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
    ) -> PairIndices:
        mat = self.distance_matrix(embeddings, ref_emb)
        self.set_idx(labels, ref_labels)
        pool = tuple(t.to(mat.device) for t in (self.a1, self.p, self.a2, self.n))  # type: ignore[union-attr]
        V.check_indices_tuple(type(self).__name__, pool, mat.shape[0], mat.shape[1])
        self.a1, self.p, self.a2, self.n = pool
        for name, anchor, other in (("pos", pool[0], pool[1]), ("neg", pool[2], pool[3])):
            if len(anchor) > 0:
                idx = F.hardest_fraction(
                    mat[anchor, other],
                    fraction=self.filter_percentage,
                    largest=self.should_select_largest(name),
                )
                self.filter_original_indices(name, idx)
        return self.a1, self.p, self.a2, self.n  # type: ignore[return-value]

    def should_select_largest(self, name: str) -> bool:
        """Whether the hardest ``name`` ("pos" or "neg") pairs have the largest values."""
        return (name == "pos") != self.distance.is_inverted

    def set_idx(self, labels: Tensor, ref_labels: Tensor | None) -> None:
        """Use every pair of the batch as the pool, unless one was set externally."""
        if not self.was_set_externally:
            self.a1, self.p, self.a2, self.n = T.get_all_pairs_indices(labels, ref_labels)

    def set_idx_externally(self, external_indices_tuple: IndicesTuple, labels: Tensor) -> None:
        """Make ``external_indices_tuple`` (pairs, or triplets converted to pairs) the pool."""
        self.a1, self.p, self.a2, self.n = T.convert_to_pairs(external_indices_tuple, labels)
        self.was_set_externally = True

    def reset_idx(self) -> None:
        """Forget the pool: the next call starts again from every pair of its batch."""
        self.a1, self.p, self.a2, self.n = None, None, None, None
        self.was_set_externally = False

    def filter_original_indices(self, name: str, idx: Tensor) -> None:
        """Keep the pool's ``name`` pairs at positions ``idx``."""
        if name == "pos":
            self.a1, self.p = self.a1[idx], self.p[idx]  # type: ignore[index]
        else:
            self.a2, self.n = self.a2[idx], self.n[idx]  # type: ignore[index]
