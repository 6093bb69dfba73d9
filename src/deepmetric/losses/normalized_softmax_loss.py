"""``NormalizedSoftmaxLoss``: softmax over cosines to normalised class vectors, with temperature."""

from __future__ import annotations

from typing import Any, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, DotProductSimilarity
from ..functional import margin_softmax as F
from ..functional import tuples as T
from ..reducers import BaseReducer
from ._class_vectors import (
    check_class_batch,
    check_positive_int,
    follow_device,
    init_parameter,
    work_dtype,
)
from .base_metric_loss_function import BaseMetricLossFunction
from .mixins import WeightInitFunc, WeightRegularizerMixin


@LOSSES.register
class NormalizedSoftmaxLoss(WeightRegularizerMixin, BaseMetricLossFunction):
    """Normalized softmax: cross-entropy over temperature-scaled similarities to class vectors.

    Zhai & Wu, "Classification is a Strong Baseline for Deep Metric Learning", BMVC 2019,
    https://arxiv.org/abs/1811.12649 (eq. 2). With ``w_j`` the L2-normalised columns of ``W``
    and ``sim`` the loss's distance (default ``DotProductSimilarity()``, which normalises the
    embeddings, so ``sim`` is the cosine)::

        logits_ij = sim(x_i, w_j) / temperature       (-d(x_i, w_j) / temperature for distances)
        L_i       = w_i^miner * CE(logits_i, y_i)

    Miner output only weights the samples (count / max count, all ones when empty). Labels are
    required; ``ref_emb`` is not supported.

    **The class vectors ``W`` (``Tensor[embedding_size, num_classes]``, float32, initialised by
    ``weight_init_func``, default ``torch.nn.init.normal_``) are learnable parameters of the
    loss: give them to an optimizer** (``torch.optim.SGD(loss_fn.parameters(), ...)``, or add
    them to the model's optimizer), or they never train. ``loss_fn.has_trainable_parameters()``
    lets a trainer check this. Logits and cross-entropy are computed in float32 for
    float16/bfloat16 embeddings; the loss comes back in the embeddings' dtype.

    Difference from PML 2.9.0: ``num_classes`` and ``embedding_size`` hold the given values (PML
    declares them recordable but never stores them, so they read 0).

    Args:
        num_classes: ``C``; labels must lie in ``[0, C)``.
        embedding_size: ``D``; embeddings must have ``D`` columns.
        temperature: divides the similarities.
        weight_regularizer: a regularizer given ``W.t()`` (one row per class).
        weight_reg_weight: the weight of that term.
        weight_init_func: in-place initialiser applied to ``W``.
        **kwargs: ``collect_stats``, ``reducer`` (default MeanReducer), ``distance`` (default
            ``DotProductSimilarity()``), ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("embedding_size", "num_classes", "temperature")
    requires_labels = True
    supports_ref_emb = False

    W: torch.nn.Parameter

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        temperature: float = 0.05,
        *,
        weight_regularizer: torch.nn.Module | None = None,
        weight_reg_weight: float = 1,
        weight_init_func: WeightInitFunc | None = None,
        reducer: BaseReducer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(reducer=reducer, **kwargs)
        owner = type(self).__name__
        self.num_classes = check_positive_int(owner, "num_classes", num_classes)
        self.embedding_size = check_positive_int(owner, "embedding_size", embedding_size)
        if temperature == 0:
            V.fail(owner, "a non-zero `temperature`", repr(temperature))
        self.temperature = temperature
        self.init_weight_regularizer(weight_regularizer, weight_reg_weight, weight_init_func)
        self.W = torch.nn.Parameter(torch.empty(self.embedding_size, self.num_classes))
        init_parameter(self.weight_init_func, self.W)
        self.set_reducer(reducer)

    def get_default_distance(self) -> BaseDistance:
        return DotProductSimilarity()

    def cast_types(self, dtype: torch.dtype, device: torch.device) -> None:
        """Move ``W`` to ``device`` (PML also casts it to ``dtype``; deepmetric keeps its dtype)."""
        follow_device(self.W, device)

    def _logits(self, embeddings: Tensor) -> Tensor:
        """``Tensor[N, C]`` in the work dtype (float32 for half inputs)."""
        w = self.W.to(device=embeddings.device, dtype=work_dtype(embeddings, self.W))
        w = torch.nn.functional.normalize(w, p=2, dim=0)
        logits = self.distance(embeddings.to(w.dtype), w.t()) / self.temperature
        return logits if self.distance.is_inverted else -logits

    def get_logits(self, embeddings: Tensor) -> Tensor:
        """``Tensor[N, num_classes]``: ``sim(x_i, w_j) / temperature``, in the embeddings' dtype."""
        V.check_embeddings(type(self).__name__, embeddings)
        self._check_batch(embeddings, None)
        self.cast_types(embeddings.dtype, embeddings.device)
        return self._logits(embeddings).to(embeddings.dtype)

    def _check_batch(self, embeddings: Tensor, labels: Tensor | None) -> None:
        check_class_batch(
            type(self).__name__,
            embeddings,
            labels,
            num_classes=self.W.shape[1],
            embedding_size=self.W.shape[0],
        )

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        labels = cast(Tensor, labels).long()
        self._check_batch(embeddings, labels)
        self.cast_types(embeddings.dtype, embeddings.device)
        logits = self._logits(embeddings)
        weights = (  # None: all ones, skipped
            None
            if indices_tuple is None
            else T.convert_to_weights(indices_tuple, labels, dtype=logits.dtype)
        )
        losses = F.weighted_cross_entropy(logits, labels, weights).to(embeddings.dtype)
        indices = torch.arange(len(labels), device=embeddings.device)
        loss_dict: LossDict = {
            "loss": {"losses": losses, "indices": indices, "reduction_type": "element"}
        }
        self.add_weight_regularization_to_loss_dict(loss_dict, self.W.t())
        return loss_dict
