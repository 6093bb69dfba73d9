"""Distributed training on ``torch.distributed``: loss and miner wrappers and gather helpers.

The helper functions live in :mod:`deepmetric.distributed.gather` (its ``gather`` function is not
re-exported here, so that ``deepmetric.distributed.gather`` stays the module).
"""

from .gather import (
    all_gather,
    all_gather_embeddings_and_labels,
    gather_emb_and_ref,
    gather_enqueue_mask,
    get_indices_tuple,
    is_distributed,
    select_ref_or_regular,
)
from .loss_wrapper import DistributedLossWrapper
from .miner_wrapper import DistributedMinerWrapper

__all__ = [
    "DistributedLossWrapper",
    "DistributedMinerWrapper",
    "all_gather",
    "all_gather_embeddings_and_labels",
    "gather_emb_and_ref",
    "gather_enqueue_mask",
    "get_indices_tuple",
    "is_distributed",
    "select_ref_or_regular",
]
