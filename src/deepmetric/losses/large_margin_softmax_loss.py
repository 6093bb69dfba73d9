"""``LargeMarginSoftmaxLoss``: softmax over learnable class vectors with a multiplicative angular
margin on the target class; the base of the ArcFace / CosFace / SphereFace family."""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
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
class LargeMarginSoftmaxLoss(WeightRegularizerMixin, BaseMetricLossFunction):
    """Large-margin softmax (L-Softmax) over learnable class vectors ``W``.

    Liu, Wen, Yu, Yang, "Large-Margin Softmax Loss for Convolutional Neural Networks", ICML 2016,
    https://arxiv.org/abs/1612.02295 (eq. 4-6). With ``theta_ij`` the angle between embedding
    ``x_i`` and class vector ``w_j`` (columns of ``W``), the target class gets
    ``psi(theta) = (-1)^k cos(m theta) - 2k``, ``k = floor(m theta / pi)``::

        logits_ij = ||w_j|| ||x_i|| * scale * (psi(theta_ij) if j == y_i else cos(theta_ij))
        L_i       = w_i^miner * CE(logits_i, y_i)

    ``margin`` is the integer multiplier ``m`` (a float is truncated to ``int``, as in PML).
    Miner output (``indices_tuple``) only weights the samples: ``w^miner`` from
    :func:`deepmetric.functional.tuples.convert_to_weights` (count / max count; all ones for an
    empty tuple). Labels are required; a reference set (``ref_emb``) is not supported.

    **The class vectors ``W`` (``Tensor[embedding_size, num_classes]``, float32, initialised by
    ``weight_init_func``, default ``torch.nn.init.normal_``) are learnable parameters of the
    loss: give them to an optimizer** (``torch.optim.SGD(loss_fn.parameters(), ...)``, or add
    them to the model's optimizer), or they never train. ``loss_fn.has_trainable_parameters()``
    lets a trainer check this. ``W`` follows the embeddings' device but keeps its dtype; the
    logits and the cross-entropy are computed in float32 for float16/bfloat16 embeddings and the
    loss is returned in the embeddings' dtype.

    Args:
        num_classes: ``C``; labels must lie in ``[0, C)``.
        embedding_size: ``D``; embeddings must have ``D`` columns.
        margin: the angular multiplier ``m >= 1``.
        scale: multiplies every logit.
        weight_regularizer: a regularizer given ``W.t()`` (one row per class), added as
            ``"weight_reg_loss"``.
        weight_reg_weight: the weight of that term.
        weight_init_func: in-place initialiser applied to ``W``.
        **kwargs: ``collect_stats`` (stat ``avg_angle`` in degrees), ``reducer`` (default
            MeanReducer), ``distance`` (must be a CosineSimilarity, the default),
            ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable: ClassVar[tuple[str, ...]] = ("num_classes", "margin", "scale")
    stats: ClassVar[tuple[str, ...]] = ("avg_angle",)
    requires_labels = True
    supports_ref_emb = False

    W: torch.nn.Parameter

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float = 4,
        scale: float = 1,
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
        self.margin: Any = margin
        self.scale = scale
        self.init_margin()
        self.init_weight_regularizer(weight_regularizer, weight_reg_weight, weight_init_func)
        self.W = torch.nn.Parameter(torch.empty(self.embedding_size, self.num_classes))
        init_parameter(self.weight_init_func, self.W)
        self.set_reducer(reducer)

    # ----------------------------------------------------------------- PML hooks
    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def check_distance(self, distance: BaseDistance) -> None:
        if not isinstance(distance, CosineSimilarity):
            V.fail(
                type(self).__name__,
                "`distance` to be a CosineSimilarity",
                type(distance).__name__,
                "These losses are defined on cosines; leave distance unset.",
            )

    def init_margin(self) -> None:
        """Store ``margin`` as the integer multiplier ``m >= 1``."""
        margin = int(self.margin)
        if margin < 1:
            V.fail(type(self).__name__, "`margin` to be an integer >= 1", repr(self.margin))
        self.margin = margin

    def cast_types(self, dtype: torch.dtype, device: torch.device) -> None:
        """Move ``W`` to ``device`` (PML also casts it to ``dtype``; deepmetric keeps its dtype)."""
        follow_device(self.W, device)

    def get_cos_with_margin(self, cosine: Tensor) -> Tensor:
        """``cos(m theta)`` from ``cos(theta)`` (a Chebyshev polynomial)."""
        return F.cos_multiple_angle(cosine, self.margin)

    def get_cosine(self, embeddings: Tensor) -> Tensor:
        """``Tensor[N, num_classes]`` cosines to the class vectors (float32 for half inputs)."""
        return self._cosine_to_columns(embeddings)

    def _cosine_to_columns(self, embeddings: Tensor) -> Tensor:
        """Cosines to every column of ``W``, in :func:`work_dtype`."""
        w = self.W.to(device=embeddings.device, dtype=work_dtype(embeddings, self.W))
        return self.distance(embeddings.to(w.dtype), w.t())

    def get_angles(self, cosine_of_target_classes: Tensor) -> Tensor:
        """Angles in radians; records ``avg_angle`` (degrees) when collecting stats."""
        angles = torch.acos(torch.clamp(cosine_of_target_classes, -1, 1))
        if self.collect_stats:
            with torch.no_grad():
                self.record_stat("avg_angle", torch.rad2deg(angles.mean()))
        return angles

    def get_target_mask(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """``Tensor[N, num_classes]`` with 1 at ``(i, labels[i])``, in the embeddings' dtype."""
        mask = torch.zeros(
            len(labels), self.num_classes, dtype=embeddings.dtype, device=embeddings.device
        )
        return mask.scatter_(1, labels[:, None].to(embeddings.device), 1)

    def modify_cosine_of_target_classes(self, cosine_of_target_classes: Tensor) -> Tensor:
        """``psi(theta) = (-1)^k cos(m theta) - 2k`` for the target cosines ``Tensor[N]``."""
        if self.collect_stats:
            with torch.no_grad():
                self.get_angles(cosine_of_target_classes)
        return F.large_margin_target(cosine_of_target_classes, margin=self.margin)

    def scale_logits(self, logits: Tensor, embeddings: Tensor) -> Tensor:
        """``logits_ij * ||w_j|| * ||x_i|| * scale``."""
        x_norms = self.distance.get_norm(embeddings.to(logits.dtype))  # [N]
        w_norms = self.distance.get_norm(self.W.to(logits.dtype), dim=0)  # [C]
        return logits * x_norms[:, None] * (w_norms * self.scale)[None, :]

    def get_logits(self, embeddings: Tensor) -> Tensor:
        """Scaled cosine logits without margin, ``Tensor[N, num_classes]`` in the embeddings'
        dtype (e.g. for classification accuracy)."""
        owner = type(self).__name__
        V.check_embeddings(owner, embeddings)
        self._check_batch(embeddings, None)
        self.cast_types(embeddings.dtype, embeddings.device)
        logits = self.scale_logits(self.get_cosine(embeddings), embeddings)
        return logits.to(embeddings.dtype)

    def _constant_logit_scale(self) -> float | None:
        """The number :meth:`scale_logits` multiplies by when it does nothing else (enables a
        fused cross-entropy kernel); None when the scale depends on the inputs."""
        return None

    # ----------------------------------------------------------------- loss
    def _check_batch(self, embeddings: Tensor, labels: Tensor | None) -> None:
        check_class_batch(
            type(self).__name__,
            embeddings,
            labels,
            num_classes=self.num_classes,
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
        labels = cast(Tensor, labels).long()  # requires_labels: validated by the base class
        self._check_batch(embeddings, labels)
        self.cast_types(embeddings.dtype, embeddings.device)
        cosine = self.get_cosine(embeddings)  # [N, C] in the work dtype
        weights = (  # None: all ones, skipped
            None
            if indices_tuple is None
            else T.convert_to_weights(indices_tuple, labels, dtype=cosine.dtype)
        )
        target = self.modify_cosine_of_target_classes(F.target_values(cosine, labels))
        scale = self._constant_logit_scale()
        if scale is not None:  # fused kernel, same value as the general path below
            losses = F.margin_cross_entropy(cosine, labels, target, scale=scale, weights=weights)
        else:
            logits = F.replace_target_logits(cosine, labels, target)
            logits = self.scale_logits(logits, embeddings)
            losses = F.weighted_cross_entropy(logits, labels, weights)
        losses = losses.to(embeddings.dtype)
        indices = torch.arange(len(labels), device=embeddings.device)
        loss_dict: LossDict = {
            "loss": {"losses": losses, "indices": indices, "reduction_type": "element"}
        }
        self.add_weight_regularization_to_loss_dict(loss_dict, self.W.t())
        return loss_dict
