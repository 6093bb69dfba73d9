"""``SmoothAPLoss``: one minus a sigmoid-smoothed average precision per query."""

from __future__ import annotations

import numbers
from typing import Any, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import smooth_ap as F
from ..functional import tuples as T
from .base_metric_loss_function import BaseMetricLossFunction

_MAX_SHOWN = 20  # classes listed in the unequal-class-size error


@LOSSES.register
class SmoothAPLoss(BaseMetricLossFunction):
    """Smooth-AP: average precision with the ranking indicator replaced by a sigmoid.

    Brown, Xie, Kalogeiton, Zisserman, "Smooth-AP: Smoothing the Path Towards Large-Scale Image
    Retrieval", ECCV 2020, https://arxiv.org/abs/2007.12163.

    With cosine similarities ``s`` and ``G(d) = sigmoid(d / temperature)``, for each query ``q``
    and each of its positives ``i`` (the query itself included, as in pytorch-metric-learning and
    the authors' code)::

        R_all(q, i) = 1 + sum_{j != i} G(s_qj - s_qi)
        R_pos(q, i) = 1 + sum_{j positive of q, j != i} G(s_qj - s_qi)
        L_q = (1 - (1 / |P_q|) sum_{i in P_q} R_pos(q, i) / R_all(q, i)) * w_q

    where ``w`` are the miner weights (how often each sample occurs in ``indices_tuple``, over the
    maximum; all ones without a tuple or with an empty one). One term per sample, reduced with
    ``MeanReducer`` by default; the sub-loss is named ``"ap_loss"``.

    As in pytorch-metric-learning every class in the batch must have the same number of samples
    (``samplers.MPerClassSampler`` gives such batches). A batch of singletons (one sample per
    class) gives a zero loss that still backpropagates. Positives come from the labels, so the
    order of the batch does not matter; pytorch-metric-learning 2.9.0 instead scores consecutive
    blocks of C samples (C = number of classes) as the classes, which agrees only when the batch is
    sorted by class and C equals the class size (see ``docs/migration.md``).

    Memory: O(N^2) -- queries are processed in blocks and the gradient is accumulated in the
    forward pass; the straightforward form holds ``N x (samples per class) x N`` sigmoids.

    Args:
        temperature: the sigmoid temperature ``tau`` (> 0); smaller is closer to the true AP.
        **kwargs: ``collect_stats``, ``reducer`` (default ``MeanReducer``), ``distance`` (must be
            ``CosineSimilarity``, the default), ``embedding_regularizer``,
            ``embedding_reg_weight``.
    """

    temperature: float
    requires_labels = True
    supports_ref_emb = False

    def __init__(self, temperature: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
            V.fail(
                type(self).__name__,
                "`temperature` to be a number",
                repr(temperature),
                exc=TypeError,
            )
        if not temperature > 0:
            V.fail(type(self).__name__, "`temperature` > 0", repr(temperature))
        self.temperature = temperature

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

    def _sub_loss_names(self) -> list[str]:
        return ["ap_loss"]

    def extra_repr(self) -> str:
        return f"temperature={self.temperature!r}"

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        labels = cast(Tensor, labels)  # guaranteed by `requires_labels`
        per_class = self._samples_per_class(labels)
        n = labels.shape[0]
        indices = torch.arange(n, device=labels.device)
        if per_class == 1:  # no query has another positive
            losses = (embeddings * 0).sum(dim=1)
        else:
            weights = T.convert_to_weights(indices_tuple, labels, dtype=embeddings.dtype)
            pos = labels[:, None] == labels[None, :]  # [N, N], the query included
            sim = self.distance(embeddings)
            losses = F.smooth_ap_losses(sim, pos, temperature=self.temperature) * weights
        return {"ap_loss": {"losses": losses, "indices": indices, "reduction_type": "element"}}

    def _samples_per_class(self, labels: Tensor) -> int:
        """The common number of samples per class; raises if the classes differ in size."""
        classes, counts = torch.unique(labels, return_counts=True)
        sizes = counts.tolist()
        if any(c != sizes[0] for c in sizes):
            pairs = [f"{c}: {s}" for c, s in zip(classes.tolist(), sizes, strict=True)]
            shown = ", ".join(pairs[:_MAX_SHOWN])
            if len(pairs) > _MAX_SHOWN:
                shown += f", ... ({len(pairs)} classes)"
            V.fail(
                type(self).__name__,
                "every class in the batch to have the same number of samples",
                f"{{label: count}} = {{{shown}}}",
                "Build batches with samplers.MPerClassSampler (batch_size a multiple of m).",
            )
        return int(sizes[0])
