"""``BaseRegularizer``: a loss on a set of vectors (embeddings or class weights)."""

from __future__ import annotations

import copy

import torch

from .. import _validation as V
from .._types import LossDict, Tensor
from ..distances import BaseDistance, LpDistance, attach_distance
from ..records import ModuleWithRecords
from ..reducers import BaseReducer, MeanReducer


class BaseRegularizer(ModuleWithRecords):
    """``regularizer(x: Tensor[N, D]) -> Tensor`` (0-dim): reduces :meth:`compute_loss`'s terms.

    Used as ``embedding_regularizer=`` on any loss, or ``weight_regularizer=`` on losses with
    class vectors (then ``x`` has one row per class).

    Args:
        collect_stats: record stats (``None`` reads :mod:`deepmetric.config`).
        reducer: default :meth:`get_default_reducer` (MeanReducer).
        distance: default :meth:`get_default_distance` (``LpDistance()``).
    """

    distance: BaseDistance
    reducer: BaseReducer

    def __init__(
        self,
        collect_stats: bool | None = None,
        reducer: BaseReducer | None = None,
        distance: BaseDistance | type | str | None = None,
    ) -> None:
        super().__init__(collect_stats=collect_stats)
        attach_distance(self, distance)
        # deep-copied like a loss's reducer: one reducer object never serves two components
        self.reducer = self.get_default_reducer() if reducer is None else copy.deepcopy(reducer)

    def get_default_reducer(self) -> BaseReducer:
        return MeanReducer()

    def get_default_distance(self) -> BaseDistance:
        return LpDistance(p=2)

    def check_distance(self, distance: BaseDistance) -> None:
        """Raise if this regularizer cannot work with ``distance`` (default: any)."""

    def compute_loss(self, x: Tensor) -> LossDict:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        self.reset_stats()
        owner = type(self).__name__
        V.check_tensor(owner, x, "x")
        if x.ndim != 2:
            V.fail(owner, "`x` of shape (N, D)", str(tuple(x.shape)))
        loss_dict = self.compute_loss(x)
        return self.reducer(loss_dict, x, torch.arange(x.shape[0], device=x.device))
