"""``CenterInvariantRegularizer``: equalise the squared norms of the class vectors."""

from __future__ import annotations

import torch

from .._registry import REGULARIZERS
from .._types import LossDict, Tensor
from .._validation import fail
from ..distances import BaseDistance, LpDistance
from ..functional import regularizers as F
from ..functional._dtype import upcast
from .base_regularizer import BaseRegularizer


@REGULARIZERS.register
class CenterInvariantRegularizer(BaseRegularizer):
    """``r_i = (||w_i||^2 - (1/C) sum_k ||w_k||^2)^2 / 4`` per class vector, mean-reduced.

    Wu, Liu, Li, Fu, "Deep Face Recognition with Center Invariant Loss", ACM Multimedia Thematic
    Workshops 2017 (no arXiv version). Classes with many samples grow larger weight norms;
    pulling every squared norm to the common mean removes that imbalance. Meant as
    ``weight_regularizer=`` (one row per class).

    The norm is ``distance.get_norm``, so the distance must be
    ``LpDistance(power=1, normalize_embeddings=False)`` (the default; ``p`` may change).

    Args:
        collect_stats, reducer, distance: see :class:`BaseRegularizer`.
    """

    distance: BaseDistance

    def get_default_distance(self) -> BaseDistance:
        return LpDistance(normalize_embeddings=False, power=1)

    def check_distance(self, distance: BaseDistance) -> None:
        ok = (
            isinstance(distance, LpDistance)
            and distance.power == 1
            and not distance.normalize_embeddings
        )
        if not ok:
            got = (
                f"{type(distance).__name__}(power={distance.power}, "
                f"normalize_embeddings={distance.normalize_embeddings})"
            )
            fail(
                type(self).__name__,
                "`distance` to be LpDistance(power=1, normalize_embeddings=False)",
                got,
                "The regularizer needs raw norms; omit `distance` to use the default.",
            )

    def compute_loss(self, x: Tensor) -> LossDict:
        norms = self.distance.get_norm(upcast(x))  # Tensor[C], float32 for half inputs
        terms = F.center_invariant_terms(norms).to(x.dtype)  # Tensor[C]
        indices = torch.arange(x.shape[0], device=x.device)
        return {"loss": {"losses": terms, "indices": indices, "reduction_type": "element"}}
