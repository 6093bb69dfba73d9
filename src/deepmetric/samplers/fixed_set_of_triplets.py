"""``FixedSetOfTriplets``: one fixed set of random triplets, replayed in a new order each epoch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler

from .. import _validation as V
from .._registry import SAMPLERS
from ..functional import sampling as F
from ._common import as_labels, check_int, labels_to_indices, make_generator


@SAMPLERS.register
class FixedSetOfTriplets(Sampler[int]):
    """Yields ``a, p, n, a, p, n, ...`` from a set of triplets drawn once (PML's sampler).

    At construction, ``num_triplets`` triplets of dataset indices are drawn: an anchor class
    and a different negative class (uniform over ordered pairs of distinct classes), two
    distinct samples of the anchor class as anchor and positive (the same sample twice for a
    one-sample class), and a sample of the negative class. Each ``iter`` shuffles the triplets
    and yields them flattened. Use a ``DataLoader`` batch size divisible by 3 and
    ``EmbeddingsAlreadyPackagedAsTriplets`` as the miner.

    Length: ``len(sampler) = 3 * num_triplets`` (indices).

    Attributes:
        fixed_set_of_triplets: ``Tensor[num_triplets, 3]`` (int64) of (anchor, positive,
            negative) dataset indices (PML keeps a NumPy array).

    Args:
        labels: integer class id per dataset sample, shape (N,), at least two classes.
        num_triplets: how many triplets.
        generator / seed: source of randomness (keyword-only; see
            :mod:`deepmetric.samplers._common`).
    """

    def __init__(
        self,
        labels: Any,
        num_triplets: int,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.num_triplets = check_int(owner, "num_triplets", num_triplets, minimum=0)
        self._groups = F.group_by_label(as_labels(owner, labels))
        if len(self._groups.classes) < 2:
            V.fail(
                owner,
                "labels with at least 2 classes (a triplet needs a negative class)",
                f"{len(self._groups.classes)} class",
            )
        self.labels_to_indices = labels_to_indices(self._groups)
        self.generator = make_generator(owner, seed, generator)
        self.create_fixed_set_of_triplets()

    def create_fixed_set_of_triplets(self) -> None:
        """Draw ``fixed_set_of_triplets`` anew."""
        self.fixed_set_of_triplets = F.fixed_triplets(
            self._groups, self.num_triplets, generator=self.generator
        )

    def __len__(self) -> int:
        return self.num_triplets * 3

    def __iter__(self) -> Iterator[int]:
        order = F.random_subsets(self.num_triplets, self.num_triplets, 1, generator=self.generator)[
            0
        ]
        self.fixed_set_of_triplets = self.fixed_set_of_triplets[order]
        return iter(self.fixed_set_of_triplets.reshape(-1).tolist())
