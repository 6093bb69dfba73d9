"""``ZeroMeanRegularizer``: keep each embedding's components centred at zero."""

from __future__ import annotations

import torch

from .._registry import REGULARIZERS
from .._types import LossDict, Tensor
from ..functional import regularizers as F
from .base_regularizer import BaseRegularizer


@REGULARIZERS.register
class ZeroMeanRegularizer(BaseRegularizer):
    """``r_i = |sum_j x_ij|`` per row, reduced with :class:`~deepmetric.reducers.MeanReducer`.

    Yuan et al., "Signal-to-Noise Ratio: A Robust Distance Metric for Deep Metric Learning",
    CVPR 2019, https://arxiv.org/abs/1904.02616. The SNR distance assumes
    zero-mean features; this term (the paper's regularizer, weighted by lambda there through
    ``embedding_reg_weight`` here) pushes every embedding's component sum to 0. The distance is
    unused.

    Args:
        collect_stats, reducer, distance: see :class:`BaseRegularizer`.
    """

    def compute_loss(self, x: Tensor) -> LossDict:
        terms = F.zero_mean_terms(x)  # Tensor[N]
        indices = torch.arange(x.shape[0], device=x.device)
        return {"loss": {"losses": terms, "indices": indices, "reduction_type": "element"}}
