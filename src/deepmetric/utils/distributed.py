"""PML-compatibility shim: ``pytorch_metric_learning.utils.distributed`` names (logic lives in
:mod:`deepmetric.distributed`)."""

from ..distributed.gather import (
    all_gather,
    all_gather_embeddings_and_labels,
    gather,
    gather_emb_and_ref,
    gather_enqueue_mask,
    get_indices_tuple,
    is_distributed,
    select_ref_or_regular,
)
from ..distributed.loss_wrapper import DistributedLossWrapper
from ..distributed.miner_wrapper import DistributedMinerWrapper

__all__ = [
    "DistributedLossWrapper",
    "DistributedMinerWrapper",
    "all_gather",
    "all_gather_embeddings_and_labels",
    "gather",
    "gather_emb_and_ref",
    "gather_enqueue_mask",
    "get_indices_tuple",
    "is_distributed",
    "select_ref_or_regular",
]
