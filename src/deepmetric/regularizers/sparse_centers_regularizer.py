"""``SparseCentersRegularizer``: merge redundant centres of a multi-centre class model."""

from __future__ import annotations

import torch

from .._registry import REGULARIZERS
from .._types import LossDict, Tensor
from .._validation import fail
from ..distances import BaseDistance, CosineSimilarity
from ..functional import regularizers as F
from ..reducers import BaseReducer, DivisorReducer
from .base_regularizer import BaseRegularizer


def _check_int(owner: str, name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(owner, f"`{name}` to be an int", type(value).__name__, exc=TypeError)
    if value < minimum:
        fail(owner, f"`{name}` >= {minimum}", str(value))


@REGULARIZERS.register
class SparseCentersRegularizer(BaseRegularizer):
    """``R = sum_c sum_{t<s} sqrt(2 - 2 cos(w_c^t, w_c^s)) / (C K (K - 1))``.

    Qian, Shang, Sun, Hu, Li, Jin, "SoftTriple Loss: Deep Metric Learning Without Triplet
    Sampling", ICCV 2019, https://arxiv.org/abs/1909.05235. SoftTriple keeps ``K`` centres per
    class; this regularizer of the paper pulls the centres of each class together so that
    redundant ones merge. For unit vectors
    ``||w^t - w^s|| = sqrt(2 - 2 cos(w^t, w^s))``. The terms are reduced with
    :class:`~deepmetric.reducers.DivisorReducer` and ``divisor = C K (K - 1)`` (twice the number
    of within-class pairs), as in the paper and PML.

    ``x`` must hold ``num_classes * centers_per_class`` rows, class-major (rows ``c*K .. c*K+K-1``
    are the centres of class ``c``). Only the ``C`` within-class ``K x K`` blocks are computed,
    not the full ``CK x CK`` matrix (which is built, without gradient, only when stats are on).

    Deviation from PML: ``num_classes`` and ``centers_per_class`` are stored (PML declares them
    recordable but never assigns them, so they read 0 there); the masks are non-persistent
    buffers (they follow ``.to(device)``); stats are 0-dim tensors rather than Python floats;
    coincident centres get gradient 0 instead of inf/NaN.

    Args:
        num_classes: number of classes ``C``.
        centers_per_class: centres per class ``K`` (> 1; with one centre there is nothing to merge).
        collect_stats: record ``same_class_center_sim`` and ``diff_class_center_sim``, the mean
            cosine between centres of the same / of different classes.
        reducer: default :class:`~deepmetric.reducers.DivisorReducer`.
        distance: must be a :class:`~deepmetric.distances.CosineSimilarity` (the default).
    """

    recordable = ("num_classes", "centers_per_class")
    stats = ("same_class_center_sim", "diff_class_center_sim")

    distance: BaseDistance
    same_class_mask: Tensor
    diff_class_mask: Tensor

    def __init__(
        self,
        num_classes: int,
        centers_per_class: int,
        *,
        collect_stats: bool | None = None,
        reducer: BaseReducer | None = None,
        distance: BaseDistance | type | str | None = None,
    ) -> None:
        owner = type(self).__name__
        _check_int(owner, "num_classes", num_classes, 1)
        _check_int(owner, "centers_per_class", centers_per_class, 2)
        super().__init__(collect_stats=collect_stats, reducer=reducer, distance=distance)
        self.num_classes = num_classes
        self.centers_per_class = centers_per_class
        same, diff = F.center_class_masks(num_classes, centers_per_class)
        self.register_buffer("same_class_mask", same, persistent=False)
        self.register_buffer("diff_class_mask", diff, persistent=False)

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def get_default_reducer(self) -> BaseReducer:
        return DivisorReducer()

    def check_distance(self, distance: BaseDistance) -> None:
        if not isinstance(distance, CosineSimilarity):
            fail(
                type(self).__name__,
                "`distance` to be a CosineSimilarity",
                type(distance).__name__,
                "Omit `distance` to use the default.",
            )

    def compute_loss(self, x: Tensor) -> LossDict:
        expected = self.num_classes * self.centers_per_class
        if x.shape[0] != expected:
            fail(
                type(self).__name__,
                f"num_classes * centers_per_class = {self.num_classes} * "
                f"{self.centers_per_class} = {expected} rows",
                f"shape {tuple(x.shape)}",
            )
        unit = self.distance.maybe_normalize(x)  # Tensor[C*K, D]
        blocks = F.within_class_similarities(unit, centers_per_class=self.centers_per_class)
        if self.distance.power != 1:
            blocks = blocks**self.distance.power  # Tensor[C, K, K]
        terms = F.sparse_centers_terms(blocks)  # Tensor[C*K*(K-1)/2]
        if self.collect_stats:
            self._record_center_stats(x, blocks)
        return {
            "loss": {
                "losses": terms,
                "indices": torch.arange(terms.shape[0], device=x.device),
                "reduction_type": "element",
                "divisor": 2 * terms.shape[0],
            }
        }

    def _record_center_stats(self, x: Tensor, blocks: Tensor) -> None:
        with torch.no_grad():
            k = self.centers_per_class
            rows, cols = torch.triu_indices(k, k, offset=1, device=blocks.device)
            self.record_stat("same_class_center_sim", blocks[:, rows, cols].float().mean())
            sim = self.distance(x)  # Tensor[C*K, C*K]; stats only
            diff = self.diff_class_mask.to(sim.device)
            self.record_stat("diff_class_center_sim", sim[diff].float().mean())
