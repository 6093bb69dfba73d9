"""Distributed training on ``torch.distributed``: the process group (:mod:`.runtime`), DDP model
wrapping (:mod:`.ddp`), loss and miner wrappers, and gather helpers.

The helper functions live in :mod:`deepmetric.distributed.gather` (its ``gather`` function is not
re-exported here, so that ``deepmetric.distributed.gather`` stays the module).
"""

from .ddp import unwrap_model, wrap_models
from .gather import (
    all_gather,
    all_gather_embeddings_and_labels,
    gather_emb_and_ref,
    gather_enqueue_mask,
    gather_rows_to_main,
    get_indices_tuple,
    select_ref_or_regular,
)
from .loss_wrapper import DistributedLossWrapper
from .miner_wrapper import DistributedMinerWrapper
from .runtime import (
    DistributedContext,
    all_gather_object,
    barrier,
    broadcast_object,
    init_distributed,
    is_distributed,
    is_main_process,
    rank,
    world_size,
)

__all__ = [
    "DistributedContext",
    "DistributedLossWrapper",
    "DistributedMinerWrapper",
    "all_gather",
    "all_gather_embeddings_and_labels",
    "all_gather_object",
    "barrier",
    "broadcast_object",
    "gather_emb_and_ref",
    "gather_enqueue_mask",
    "gather_rows_to_main",
    "get_indices_tuple",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "rank",
    "select_ref_or_regular",
    "unwrap_model",
    "world_size",
    "wrap_models",
]
