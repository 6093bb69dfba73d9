"""``DistanceWeightedMiner``: negatives sampled inversely to how common their distance is."""

from __future__ import annotations

from typing import Any

import torch

from .._registry import MINERS
from .._types import Tensor, TripletIndices
from ..distances import BaseDistance
from ..functional import mining as F
from ..functional import tuples as T
from .base_tuple_miner import BaseTupleMiner, check_generator, require_unit_l2


@MINERS.register
class DistanceWeightedMiner(BaseTupleMiner):
    """Random triplets whose negatives are drawn with probability ``~ 1 / q(d_an)``, ``q`` the
    density of distances between random points on the unit sphere, so that every distance is
    about equally represented.

    Wu et al., "Sampling Matters in Deep Embedding Learning", ICCV 2017,
    https://arxiv.org/abs/1706.07567 (sec. 4). With D the embedding size and
    ``d = max(d_an, cutoff)``::

        log w_an = (2 - D) log d - ((D - 3) / 2) log(1 - d^2 / 4)
        w_an = 0  if  d >= nonzero_loss_cutoff

    Each anchor that has a positive and a negative of non-zero weight gets as many triplets as
    the reference holds samples of its class (itself included), positives drawn uniformly.

    Args:
        cutoff: smallest distance used in the weights (variance control); stored as float.
        nonzero_loss_cutoff: negatives at this distance or farther are never drawn.
        generator: ``torch.Generator`` for the draws (None: torch's global generator).
        **kwargs: ``distance`` (must be ``LpDistance(p=2, power=1, normalize_embeddings=True)``,
            the default), ``collect_stats``.

    The output is grouped by anchor (PML groups it by label); the draws are not PML's stream.
    """

    recordable = ("cutoff", "nonzero_loss_cutoff")

    def __init__(
        self,
        cutoff: float = 0.5,
        nonzero_loss_cutoff: float = 1.4,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cutoff = float(cutoff)
        self.nonzero_loss_cutoff = float(nonzero_loss_cutoff)
        self.generator = check_generator(type(self).__name__, generator)

    def check_distance(self, distance: BaseDistance) -> None:
        require_unit_l2(type(self).__name__, distance)

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
    ) -> TripletIndices:
        mat = self.distance_matrix(embeddings, ref_emb)
        weights = F.distance_weighted_weights(
            mat,
            labels[:, None] == ref_labels[None, :],
            dim=embeddings.shape[1],
            cutoff=self.cutoff,
            nonzero_loss_cutoff=self.nonzero_loss_cutoff,
        )
        return T.get_random_triplet_indices(
            labels, ref_labels, weights=weights, generator=self.generator
        )
