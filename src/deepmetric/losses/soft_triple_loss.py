"""``SoftTripleLoss``: softmax over classes represented by several learnable centers each."""

from __future__ import annotations

import math
from typing import Any, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import margin_softmax as MS
from ..functional import proxy_losses as F
from ..functional import tuples as T
from ..reducers import BaseReducer
from ..weight_init import TorchInitWrapper
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
class SoftTripleLoss(WeightRegularizerMixin, BaseMetricLossFunction):
    """SoftTriple: a softmax loss where each class has ``K`` centers, softly assigned.

    Qian et al., "SoftTriple Loss: Deep Metric Learning Without Triplet Sampling", ICCV 2019,
    https://arxiv.org/abs/1909.05235 (eq. 9-10). With ``s_ick`` the similarity of sample ``i``
    to center ``k`` of class ``c`` (default cosine)::

        S_ic = sum_k softmax_k(s_ick / gamma) * s_ick
        L_i  = w_i^miner * CE(la * (S_i - margin * onehot(y_i)), y_i)

    As in PML, ``gamma`` is stored inverted: after construction ``loss_fn.gamma == 1 / gamma``
    (10 by default). The paper's regularizer that merges similar centers is not built in; pass
    ``weight_regularizer=SparseCentersRegularizer(num_classes, centers_per_class)`` (it receives
    ``fc.t()``, one row per center). Miner output only weights the samples. Labels are required;
    ``ref_emb`` is not supported. The distance must be a similarity (``is_inverted``).

    **The centers ``fc`` (``Tensor[embedding_size, num_classes * centers_per_class]``, column
    ``c * centers_per_class + k``, float32, default init ``kaiming_uniform_(a=sqrt(5))``) are
    learnable parameters of the loss: give them to an optimizer**, or they never train.
    ``loss_fn.has_trainable_parameters()`` lets a trainer check this. The softmaxes are computed
    in float32 for float16/bfloat16 embeddings; the loss comes back in their dtype.

    Difference from PML 2.9.0: ``embedding_size`` holds the given value (PML reads 0).

    Args:
        num_classes: ``C``; labels must lie in ``[0, C)``.
        embedding_size: ``D``; embeddings must have ``D`` columns.
        centers_per_class: ``K``.
        la: the scale ``lambda`` of the class logits.
        gamma: the temperature of the soft assignment to centers.
        margin: ``delta``, subtracted from the target class's similarity.
        weight_regularizer: a regularizer given ``fc.t()``.
        weight_reg_weight: the weight of that term.
        weight_init_func: in-place initialiser applied to ``fc``.
        **kwargs: ``collect_stats``, ``reducer`` (default MeanReducer), ``distance`` (default
            ``CosineSimilarity()``; must be inverted), ``embedding_regularizer``,
            ``embedding_reg_weight``.
    """

    recordable = ("la", "gamma", "margin", "centers_per_class", "num_classes", "embedding_size")
    requires_labels = True
    supports_ref_emb = False

    fc: torch.nn.Parameter

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        centers_per_class: int = 10,
        la: float = 20,
        gamma: float = 0.1,
        margin: float = 0.01,
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
        self.centers_per_class = check_positive_int(owner, "centers_per_class", centers_per_class)
        if gamma == 0:
            V.fail(owner, "a non-zero `gamma`", repr(gamma))
        self.la = la
        self.gamma = 1.0 / gamma
        self.margin = margin
        self.init_weight_regularizer(weight_regularizer, weight_reg_weight, weight_init_func)
        self.fc = torch.nn.Parameter(
            torch.empty(self.embedding_size, self.num_classes * self.centers_per_class)
        )
        init_parameter(self.weight_init_func, self.fc)
        self.set_reducer(reducer)

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def check_distance(self, distance: BaseDistance) -> None:
        if not distance.is_inverted:
            V.fail(
                type(self).__name__,
                "an inverted `distance` (a similarity such as CosineSimilarity)",
                f"{type(distance).__name__} with is_inverted=False",
            )

    def get_default_weight_init_func(self) -> WeightInitFunc:
        return TorchInitWrapper(torch.nn.init.kaiming_uniform_, a=math.sqrt(5))

    def cast_types(self, dtype: torch.dtype, device: torch.device) -> None:
        """Move ``fc`` to ``device`` (PML also casts it to ``dtype``; deepmetric keeps its
        dtype)."""
        follow_device(self.fc, device)

    def _class_similarity(self, embeddings: Tensor) -> Tensor:
        """``Tensor[N, C]`` relaxed similarity to each class, in the work dtype."""
        fc = self.fc.to(device=embeddings.device, dtype=work_dtype(embeddings, self.fc))
        sim = self.distance(embeddings.to(fc.dtype), fc.t())  # [N, C * K]
        return F.soft_triple_class_similarity(
            sim, centers_per_class=self.centers_per_class, inverse_gamma=self.gamma
        )

    def get_logits(self, embeddings: Tensor) -> Tensor:
        """``Tensor[N, num_classes]``: the relaxed similarity ``S_ic`` (no margin, no ``la``), in
        the embeddings' dtype."""
        V.check_embeddings(type(self).__name__, embeddings)
        self._check_batch(embeddings, None)
        self.cast_types(embeddings.dtype, embeddings.device)
        return self._class_similarity(embeddings).to(embeddings.dtype)

    def _check_batch(self, embeddings: Tensor, labels: Tensor | None) -> None:
        check_class_batch(
            type(self).__name__,
            embeddings,
            labels,
            num_classes=self.num_classes,
            embedding_size=self.fc.shape[0],
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
        class_sim = self._class_similarity(embeddings)
        weights = (  # None: all ones, skipped
            None
            if indices_tuple is None
            else T.convert_to_weights(indices_tuple, labels, dtype=class_sim.dtype)
        )
        logits = F.soft_triple_logits(class_sim, labels, la=self.la, margin=self.margin)
        losses = MS.weighted_cross_entropy(logits, labels, weights).to(embeddings.dtype)
        indices = torch.arange(len(labels), device=embeddings.device)
        loss_dict: LossDict = {
            "loss": {"losses": losses, "indices": indices, "reduction_type": "element"}
        }
        self.add_weight_regularization_to_loss_dict(loss_dict, self.fc.t())
        return loss_dict
