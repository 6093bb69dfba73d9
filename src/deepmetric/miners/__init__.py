"""Miners (PML ``miners``): tuple miners pick pairs or triplets inside a batch; subset batch miners
pick a subset of the batch itself, before the loss."""

from .angular_miner import AngularMiner
from .base_miner import BaseMiner
from .base_subset_batch_miner import BaseSubsetBatchMiner
from .base_tuple_miner import BaseTupleMiner
from .batch_easy_hard_miner import BatchEasyHardMiner
from .batch_hard_miner import BatchHardMiner
from .distance_weighted_miner import DistanceWeightedMiner
from .embeddings_already_packaged_as_triplets import EmbeddingsAlreadyPackagedAsTriplets
from .hdc_miner import HDCMiner
from .maximum_loss_miner import MaximumLossMiner
from .multi_similarity_miner import MultiSimilarityMiner
from .pair_margin_miner import PairMarginMiner
from .triplet_margin_miner import TripletMarginMiner
from .uniform_histogram_miner import UniformHistogramMiner

__all__ = [
    "AngularMiner",
    "BaseMiner",
    "BaseSubsetBatchMiner",
    "BaseTupleMiner",
    "BatchEasyHardMiner",
    "BatchHardMiner",
    "DistanceWeightedMiner",
    "EmbeddingsAlreadyPackagedAsTriplets",
    "HDCMiner",
    "MaximumLossMiner",
    "MultiSimilarityMiner",
    "PairMarginMiner",
    "TripletMarginMiner",
    "UniformHistogramMiner",
]
