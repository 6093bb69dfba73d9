"""Miners (PML ``miners``): tuple miners pick pairs or triplets inside a batch; subset batch miners
pick a subset of the batch itself, before the loss."""

from .base_miner import BaseMiner
from .base_subset_batch_miner import BaseSubsetBatchMiner
from .maximum_loss_miner import MaximumLossMiner

__all__ = ["BaseMiner", "BaseSubsetBatchMiner", "MaximumLossMiner"]
