"""``DivisorReducer``: the sum of the terms divided by a divisor that the loss supplies."""

from __future__ import annotations

from typing import Any

import torch

from .._registry import REDUCERS
from .._types import ReductionType, SubLoss, Tensor
from .base_reducer import BaseReducer, zero_loss


@REDUCERS.register
class DivisorReducer(BaseReducer):
    """``sum(losses) / divisor`` where each loss-dict entry carries a ``"divisor"`` key
    (e.g. MarginLoss divides by the number of active terms); 0 when the divisor is 0."""

    stats = ("divisor",)

    def unpack_loss_info(self, sub_loss: SubLoss) -> tuple[Any, Any, ReductionType, dict[str, Any]]:
        losses, indices, reduction_type, extra = super().unpack_loss_info(sub_loss)
        if reduction_type != "already_reduced":
            if "divisor" not in sub_loss:
                raise ValueError(
                    f"{type(self).__name__}: expected a 'divisor' key in the loss dict entry, got "
                    f"keys {sorted(sub_loss)}. Use this reducer only with losses that supply it."
                )
            extra = {"divisor": sub_loss["divisor"]}
        return losses, indices, reduction_type, extra

    def element_reduction(
        self,
        losses: Tensor,
        loss_indices: Any,
        embeddings: Tensor,
        labels: Tensor | None,
        divisor: Tensor | float = 1,
        **kwargs: Any,
    ) -> Tensor:
        self.record_stat("divisor", divisor)
        if float(divisor) == 0:
            return zero_loss(embeddings)
        total = losses.sum()
        if not bool(torch.isfinite(total)) and losses.dtype in (torch.float16, torch.bfloat16):
            # The half-precision sum overflowed; the quotient may still be representable.
            return (losses.float().sum() / divisor).to(losses.dtype)
        return total / divisor
