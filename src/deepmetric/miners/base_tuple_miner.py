"""``BaseTupleMiner``: the base of miners that return index tuples (pairs or triplets)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from .. import _validation as V
from .._types import Tensor
from ..distances import BaseDistance, LpDistance
from .base_miner import BaseMiner


class BaseTupleMiner(BaseMiner):
    """A miner whose output is ``(a, p, n)`` or ``(a1, p, a2, n)`` indices into the batch.

    PML 1.x called this ``BaseTupleMiner``; PML 2.x folded it into ``BaseMiner``. Here it is a
    thin layer over :class:`BaseMiner` (which already validates tuple output) that every tuple
    miner derives from, so ``isinstance(m, BaseTupleMiner)`` tells tuple miners from subset-batch
    miners. It declares the output-size stats ``num_pos_pairs``, ``num_neg_pairs`` and
    ``num_triplets`` (PML's ``BaseMiner`` stats) and the distance-matrix helper.
    """

    stats: ClassVar[tuple[str, ...]] = ("num_pos_pairs", "num_neg_pairs", "num_triplets")

    def distance_matrix(self, embeddings: Tensor, ref_emb: Tensor) -> Tensor:
        """``self.distance`` between ``embeddings`` (rows) and ``ref_emb`` (columns)."""
        return self.distance(embeddings, None if ref_emb is embeddings else ref_emb)


def require_unit_l2(owner: str, distance: BaseDistance) -> None:
    """Refuse any distance but ``LpDistance(p=2, power=1, normalize_embeddings=True)``
    (PML asserts the same), with a ``ValueError`` that names the fix."""
    if not (
        isinstance(distance, LpDistance)
        and distance.p == 2
        and distance.power == 1
        and distance.normalize_embeddings
    ):
        V.fail(
            owner,
            "distance LpDistance(p=2, power=1, normalize_embeddings=True)",
            repr(distance),
            "Leave `distance` unset to get it.",
        )


def check_generator(owner: str, generator: Any) -> torch.Generator | None:
    """``generator`` must be None (torch's global generator) or a ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        expected = "`generator` to be a torch.Generator or None"
        V.fail(owner, expected, type(generator).__name__, exc=TypeError)
    return generator
