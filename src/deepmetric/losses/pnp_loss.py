"""``PNPLoss``: penalise only the negatives ranked before each positive (a smooth AP surrogate)."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import ranking_losses as F
from ..functional import tuples as T
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class PNPLoss(BaseMetricLossFunction):
    """PNP loss: a function of the soft number of negatives ranked above each positive.

    Li, Zhou, Liu, Fang, Zhang, Lu, "Rethinking the Optimization of Average Precision: Only
    Penalizing Negative Instances before Positive Ones is Enough", AAAI 2022,
    https://arxiv.org/abs/2102.04640.

    For query ``q`` and each of its positives ``i`` (the query itself included, as in
    pytorch-metric-learning)::

        R_qi = sum_{j negative of q} sigmoid((s_qj - s_qi) / anneal)

    The variant maps ``R`` to a penalty: ``"O"`` ``R``; ``"Ds"`` ``log(1 + R)``; ``"Dq"``
    ``1 / (1 + R)^alpha``; ``"Iu"`` ``(1 + R) log(1 + R)``; ``"Ib"`` ``(b R - log(1 + b R)) / b^2``.
    The loss is the mean over queries that have another positive of the mean over their
    positives (``1 -`` that for ``"Dq"``); already reduced. Zero when no query has a positive.

    Memory: O(N^2) -- the soft ranks are computed in blocks and the gradient is accumulated in the
    forward pass; pytorch-metric-learning builds several ``N x N x N`` tensors.

    Args:
        b: slope of the ``"Ib"`` variant (> 0).
        alpha: exponent of the ``"Dq"`` variant.
        anneal: sigmoid temperature (> 0).
        variant: one of :attr:`VARIANTS`.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (must be ``CosineSimilarity``, the
            default), ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    VARIANTS: ClassVar[list[str]] = ["Ds", "Dq", "Iu", "Ib", "O"]
    requires_labels = True
    supports_indices_tuple = False
    supports_ref_emb = False

    def __init__(
        self,
        b: float = 2,
        alpha: float = 1,
        anneal: float = 0.01,
        variant: str = "O",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        if variant not in self.VARIANTS:
            V.fail(owner, f"`variant` to be one of {self.VARIANTS}", repr(variant))
        if not anneal > 0:
            V.fail(owner, "`anneal` > 0", repr(anneal))
        if variant == "Ib" and not b > 0:
            V.fail(owner, "`b` > 0 for variant 'Ib'", repr(b))
        self.b = b
        self.alpha = alpha
        self.anneal = anneal
        self.variant = variant

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def check_distance(self, distance: BaseDistance) -> None:
        if not isinstance(distance, CosineSimilarity):
            V.fail(
                type(self).__name__,
                "`distance` to be a CosineSimilarity",
                type(distance).__name__,
                "Omit `distance` to use the default.",
            )

    def extra_repr(self) -> str:
        return (
            f"b={self.b!r}, alpha={self.alpha!r}, anneal={self.anneal!r}, variant={self.variant!r}"
        )

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        labels = cast(Tensor, labels)  # guaranteed by `requires_labels`
        pos, neg = T.get_matches_and_diffs(labels)
        has_pos = pos.any(dim=1)  # [N] queries with another positive
        if not bool(has_pos.any()):
            return self.zero_losses()
        pos.diagonal().copy_(has_pos)  # the query counts as one of its own positives
        sim = self.distance(embeddings)
        per_query = F.pnp_query_losses(
            sim,
            pos,
            neg,
            variant=cast(F.PNPVariant, self.variant),
            b=self.b,
            alpha=self.alpha,
            anneal=self.anneal,
        )
        queries = has_pos.nonzero(as_tuple=True)[0]
        loss = per_query[queries].mean()
        if self.variant == "Dq":
            loss = 1 - loss
        return {"loss": {"losses": loss, "indices": queries, "reduction_type": "already_reduced"}}
