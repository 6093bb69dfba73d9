"""``LpRegularizer``: penalise the L_p norm of each row (embeddings or class vectors)."""

from __future__ import annotations

import numbers

import torch

from .._registry import REGULARIZERS
from .._types import LossDict, Tensor
from .._validation import fail
from ..distances import BaseDistance
from ..functional import regularizers as F
from ..reducers import BaseReducer
from .base_regularizer import BaseRegularizer


def _check_real(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(owner, f"`{name}` to be a real number", type(value).__name__, exc=TypeError)


@REGULARIZERS.register
class LpRegularizer(BaseRegularizer):
    """``r_i = ||x_i||_p ** power`` per row, reduced with :class:`~deepmetric.reducers.MeanReducer`.

    The classic norm penalty (weight decay on class vectors, or an embedding-norm penalty);
    there is no single paper behind it. Krogh & Hertz, "A Simple Weight Decay Can Improve
    Generalization", NeurIPS 1991 (no arXiv version) studies the squared-L2 case
    (``p=2, power=2``). The distance is unused.

    Args:
        p: order of the norm (any value :func:`torch.linalg.vector_norm` accepts).
        power: exponent applied to each norm.
        collect_stats, reducer, distance: see :class:`BaseRegularizer`.
    """

    recordable = ("p", "power")

    def __init__(
        self,
        p: float = 2,
        power: float = 1,
        *,
        collect_stats: bool | None = None,
        reducer: BaseReducer | None = None,
        distance: BaseDistance | type | str | None = None,
    ) -> None:
        _check_real(type(self).__name__, "p", p)
        _check_real(type(self).__name__, "power", power)
        super().__init__(collect_stats=collect_stats, reducer=reducer, distance=distance)
        self.p = p
        self.power = power

    def compute_loss(self, x: Tensor) -> LossDict:
        terms = F.lp_norm_terms(x, p=self.p, power=self.power)  # Tensor[N]
        indices = torch.arange(x.shape[0], device=x.device)
        return {"loss": {"losses": terms, "indices": indices, "reduction_type": "element"}}
