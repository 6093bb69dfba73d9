"""``DoNothingReducer``: returns the loss dict itself, for custom reduction downstream."""

from __future__ import annotations

from .._registry import REDUCERS
from .._types import LossDict, Tensor
from .base_reducer import BaseReducer


@REDUCERS.register
class DoNothingReducer(BaseReducer):
    """A loss with this reducer returns its unreduced loss dict instead of a scalar."""

    def forward(  # type: ignore[override]
        self, loss_dict: LossDict, embeddings: Tensor, labels: Tensor | None
    ) -> LossDict:
        return loss_dict
