"""``RegularFaceRegularizer``: push every class vector away from its nearest other class."""

from __future__ import annotations

import torch

from .._registry import REGULARIZERS
from .._types import LossDict, Tensor
from .._validation import fail
from ..distances import BaseDistance, CosineSimilarity
from ..functional import regularizers as F
from .base_regularizer import BaseRegularizer


@REGULARIZERS.register
class RegularFaceRegularizer(BaseRegularizer):
    """``r_i = max_{j != i} cos(w_i, w_j)`` per class vector, mean-reduced.

    Zhao, Xu, Cheng, "RegularFace: Deep Face Recognition via Exclusive Regularization",
    CVPR 2019 (no arXiv version; project page https://kaizhao.net/regularface).
    The "exclusive regularization" ``L_r(W) = (1/C) sum_i max_{j != i} cos(w_i, w_j)`` enlarges
    the angle between each identity and its nearest neighbour. The neighbour is found without
    gradient; the gradient flows through the selected similarity. Meant as
    ``weight_regularizer=`` (one row per class). Memory: one ``C x C`` similarity matrix.

    The similarity is ``distance(w)``, which must be inverted (a similarity, larger = closer);
    the default is :class:`~deepmetric.distances.CosineSimilarity`.

    Args:
        collect_stats, reducer, distance: see :class:`BaseRegularizer`.
    """

    distance: BaseDistance

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def check_distance(self, distance: BaseDistance) -> None:
        if not distance.is_inverted:
            fail(
                type(self).__name__,
                "an inverted `distance` (a similarity such as CosineSimilarity)",
                f"{type(distance).__name__} with is_inverted=False",
            )

    def compute_loss(self, x: Tensor) -> LossDict:
        sim = self.distance(x)  # Tensor[C, C]
        terms = F.regular_face_terms(sim)  # Tensor[C]
        indices = torch.arange(x.shape[0], device=x.device)
        return {"loss": {"losses": terms, "indices": indices, "reduction_type": "element"}}
