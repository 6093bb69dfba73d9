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
            self._reducer_for(name)({name: sub_loss}, embeddings, labels).to(embeddings.dtype)
            for name, sub_loss in loss_dict.items()
        ]
        if not reduced:
            return torch.sum(embeddings * 0)
        sub_losses = torch.stack([s.reshape(()) for s in reduced])  # Tensor[len(loss_dict)]
        return self.sub_loss_reduction(sub_losses, embeddings, labels)

    def _reducer_for(self, name: str) -> BaseReducer:
        reducer = self.reducers[name] if name in self.reducers else self.default_reducer
        return reducer  # type: ignore[return-value]  # ModuleDict values are typed as Module

    def sub_loss_reduction(
        self, sub_losses: Tensor, embeddings: Tensor | None = None, labels: Tensor | None = None
    ) -> Tensor:
        """Combine the reduced sub-losses (``Tensor[S]``, one per loss-dict entry): their sum."""
        return sub_losses.sum()
