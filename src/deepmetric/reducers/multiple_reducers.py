"""``MultipleReducers``: one reducer per named sub-loss; the results are summed."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .._registry import REDUCERS
from .._types import LossDict, Tensor
from .base_reducer import BaseReducer
from .mean_reducer import MeanReducer


@REDUCERS.register
class MultipleReducers(BaseReducer):
    """Reduces each sub-loss with ``reducers[name]`` (or ``default_reducer``) and returns the sum.

    Losses with several sub-losses (e.g. ``pos_loss`` / ``neg_loss``, or a regularizer term) wrap
    their reducer in this automatically.
    """

    def __init__(
        self,
        reducers: Mapping[str, BaseReducer],
        default_reducer: BaseReducer | None = None,
        collect_stats: bool | None = None,
    ) -> None:
        super().__init__(collect_stats=collect_stats)
        self.reducers = torch.nn.ModuleDict(dict(reducers))
        self.default_reducer = MeanReducer() if default_reducer is None else default_reducer

    def forward(self, loss_dict: LossDict, embeddings: Tensor, labels: Tensor | None) -> Tensor:
        self.reset_stats()
        reduced = [
            self._reducer_for(name)({name: sub_loss}, embeddings, labels)
            for name, sub_loss in loss_dict.items()
        ]
        return self.sub_loss_reduction(reduced, embeddings)

    def _reducer_for(self, name: str) -> BaseReducer:
        if name in self.reducers:
            return self.reducers[name]
        return self.default_reducer

    def sub_loss_reduction(self, sub_losses: list[Tensor], embeddings: Tensor) -> Tensor:
        if not sub_losses:
            return torch.sum(embeddings * 0)
        return torch.stack([s.to(embeddings.dtype).reshape(()) for s in sub_losses]).sum()
