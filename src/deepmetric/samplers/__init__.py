"""Samplers: class-balanced and mining-driven index streams (PML ``samplers``).

Besides PML's four, :class:`MPerClassBatchSampler` (whole m-per-class batches for
``batch_sampler=``) and :class:`DistributedMPerClassSampler` (disjoint m-per-class batches per
distributed rank).

Randomness: PML's samplers share NumPy's module-level ``c_f.NUMPY_RANDOM``; each deepmetric
sampler owns a ``torch.Generator`` instead: ``generator=`` (use this one), ``seed=`` (a private
one seeded with it), or neither (a private one seeded from torch's default generator when the
sampler is built, so ``torch.manual_seed`` makes runs reproducible).
``DistributedMPerClassSampler`` derives its generator from ``seed + epoch`` so that all ranks
agree. Index sequences therefore differ from PML's; lengths and batch structure do not.
"""

from .distributed_m_per_class_sampler import DistributedMPerClassSampler
from .fixed_set_of_triplets import FixedSetOfTriplets
from .hierarchical_sampler import HierarchicalSampler
from .m_per_class_batch_sampler import MPerClassBatchSampler
from .m_per_class_sampler import MPerClassSampler
from .tuples_to_weights_sampler import TuplesToWeightsSampler

__all__ = [
    "DistributedMPerClassSampler",
    "FixedSetOfTriplets",
    "HierarchicalSampler",
    "MPerClassBatchSampler",
    "MPerClassSampler",
    "TuplesToWeightsSampler",
]
