"""Shared type aliases: index tuples, the loss-dict contract and reduction types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypedDict

import torch
from typing_extensions import NotRequired

Tensor = torch.Tensor

#: ``(anchor, positive, negative)`` index tensors.
TripletIndices = tuple[Tensor, Tensor, Tensor]
#: ``(anchor1, positive, anchor2, negative)`` index tensors.
PairIndices = tuple[Tensor, Tensor, Tensor, Tensor]
#: What miners return and losses accept as ``indices_tuple``.
IndicesTuple = TripletIndices | PairIndices


@dataclass(frozen=True)
class PairMasks:
    """Every pair of a query x reference grid, given as masks instead of index lists.

    ``pos[i, j]`` marks (i, j) as a positive pair, ``neg[i, j]`` as a negative pair; both
    ``BoolTensor[N, M]``. Means the same as the pair tuple ``(*where(pos), *where(neg))`` (row-major
    order). Only losses that declare ``supports_pair_masks`` accept it as ``indices_tuple``
    (CrossBatchMemory uses it to avoid building every pair and triplet of batch x memory).
    """

    pos: Tensor
    neg: Tensor


ReductionType = Literal["element", "pos_pair", "neg_pair", "triplet", "already_reduced"]
REDUCTION_TYPES: tuple[ReductionType, ...] = (
    "element",
    "pos_pair",
    "neg_pair",
    "triplet",
    "already_reduced",
)


class SubLoss(TypedDict):
    """One named term of a loss before reduction.

    ``losses`` holds unreduced values (or a scalar for ``already_reduced``; ``0`` means "no loss");
    ``indices`` says which samples, pairs or triplets each value belongs to.
    """

    losses: Tensor | float
    indices: Tensor | tuple[Tensor, ...] | None
    reduction_type: ReductionType
    divisor: NotRequired[Tensor | float]
    #: Set by kernels that reduced on the fly (``already_reduced``): ``count(low, high)`` gives
    #: how many terms lay strictly inside (low, high), so the reducer can still record its stats.
    interval_counter: NotRequired[Callable[[float | None, float | None], Tensor]]


#: ``{sub_loss_name: SubLoss}`` as returned by ``compute_loss``.
LossDict = dict[str, SubLoss]
