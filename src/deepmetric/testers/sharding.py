"""Split an evaluation dataset between ``torch.distributed`` ranks and collect the embeddings.

Rank ``r`` of ``W`` embeds the ``r``-th of ``W`` contiguous blocks of the dataset (block sizes
differ by at most one); rank 0 receives every block in rank order, i.e. the embeddings in dataset
order, and computes the metrics.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Subset

from .._types import Tensor
from .._validation import fail
from ..distributed.gather import gather_rows_to_main


def shard_dataset(dataset: Any, rank: int, world_size: int, owner: str) -> Subset[Any]:
    """Block ``rank`` of ``world_size`` contiguous blocks of ``dataset``."""
    n = len(dataset)
    if n < world_size:
        fail(
            owner,
            f"a split with at least as many items as ranks ({world_size}) to shard it",
            f"{n} items",
            "Evaluate tiny splits with distributed=False.",
        )
    block = torch.tensor_split(torch.arange(n), world_size)[rank]
    return Subset(dataset, block.tolist())


def gather_to_main(*tensors: Tensor) -> tuple[Tensor, ...] | None:
    """Each tensor's rows from every rank, in rank order, on rank 0; None on the other ranks."""
    gathered = [gather_rows_to_main(t) for t in tensors]
    if any(g is None for g in gathered):
        return None
    return tuple(g for g in gathered if g is not None)
