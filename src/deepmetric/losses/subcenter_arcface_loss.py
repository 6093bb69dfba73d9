"""``SubCenterArcFaceLoss``: ArcFace with several sub-centers per class (robust to label noise)."""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import Tensor
from ..functional import margin_softmax as F
from ._class_vectors import check_positive_int
from .arcface_loss import ArcFaceLoss


@LOSSES.register
class SubCenterArcFaceLoss(ArcFaceLoss):
    """Sub-center ArcFace: ``K`` class vectors per class; a sample uses the nearest of its class.

    Deng, Guo, Liu, Zafeiriou, "Sub-center ArcFace: Boosting Face Recognition by Large-scale Noisy
    Web Faces", ECCV 2020,
    https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/123560715.pdf (eq. 2). The cosine to
    class ``c`` is the largest cosine to its sub-centers, ``cos_ic = max_k cos(x_i, w_ck)``; the
    ArcFace loss (margin in **degrees**, see :class:`ArcFaceLoss`) is applied to these cosines.

    **The class vectors ``W`` (``Tensor[embedding_size, num_classes * sub_centers]``, column
    ``c * sub_centers + k``, float32, default init ``torch.nn.init.normal_``) are learnable
    parameters of the loss: give them to an optimizer** (``torch.optim.SGD(loss_fn.parameters(),
    ...)``, or add them to the model's optimizer), or they never train.
    ``loss_fn.has_trainable_parameters()`` lets a trainer check this.

    :meth:`get_outliers` finds, per class, the dominant sub-center and the samples far from it
    (the paper's step for dropping noisy samples).

    Differences from PML 2.9.0: PML requires ``num_classes=`` and ``embedding_size=`` as keywords
    and silently ignores every other keyword (``reducer``, ``distance``, ``weight_regularizer``,
    ``weight_init_func``, ``collect_stats``, ...). Here they may also be positional, and every
    keyword of :class:`ArcFaceLoss` is honoured (a ``weight_regularizer`` receives ``W.t()``, one
    row per sub-center). ``sub_centers`` is also a recordable attribute.

    Args:
        num_classes: ``C``; labels must lie in ``[0, C)``.
        embedding_size: ``D``; embeddings must have ``D`` columns.
        margin: the additive angular margin in **degrees**.
        scale: multiplies every logit.
        sub_centers: ``K``, class vectors per class.
        **kwargs: as for :class:`ArcFaceLoss`.
    """

    recordable = ("sub_centers",)

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        *,
        margin: float = 28.6,
        scale: float = 64,
        sub_centers: int = 3,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        num_classes = check_positive_int(owner, "num_classes", num_classes)
        sub_centers = check_positive_int(owner, "sub_centers", sub_centers)
        super().__init__(
            num_classes * sub_centers, embedding_size, margin=margin, scale=scale, **kwargs
        )
        self.sub_centers = sub_centers
        self.num_classes = num_classes

    def get_cosine(self, embeddings: Tensor) -> Tensor:
        """``Tensor[N, num_classes]``: the largest cosine to each class's sub-centers."""
        return F.max_over_sub_centers(self._cosine_to_columns(embeddings), self.sub_centers)

    def get_outliers(
        self,
        embeddings: Tensor,
        labels: Tensor,
        threshold: float = 75,
        return_dominant_centers: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """Samples whose angle to their class's dominant sub-center exceeds ``threshold`` degrees.

        The dominant sub-center of a class is the one nearest to most of the class's samples in
        this batch (ties: the lowest sub-center index).

        Args:
            embeddings: ``Tensor[N, embedding_size]``.
            labels: ``LongTensor[N]`` in ``[0, num_classes)``.
            threshold: the angle in **degrees**.
            return_dominant_centers: kept for PML compatibility; like PML, the pair is always
                returned.

        Returns:
            ``(outliers, dominant_centers)``: ``LongTensor`` of sample indices ordered by label,
            then by index; ``Tensor[embedding_size, num_classes]`` (no gradient) whose column
            ``c`` is class ``c``'s dominant sub-center (zeros for classes absent from the batch;
            PML leaves them uninitialised).
        """
        owner = type(self).__name__
        V.check_embeddings(owner, embeddings)
        V.check_labels(owner, labels, embeddings.shape[0])
        labels = labels.to(device=embeddings.device, dtype=torch.long)
        self._check_batch(embeddings, labels)
        self.cast_types(embeddings.dtype, embeddings.device)
        with torch.no_grad():
            cosine = self._cosine_to_columns(embeddings)  # [N, C * K]
            outliers, dominant = F.sub_center_outliers(
                cosine,
                labels,
                sub_centers=self.sub_centers,
                cos_threshold=math.cos(math.radians(threshold)),
            )
            centers = self.W.new_zeros(self.W.shape[0], self.num_classes)
            present = torch.nonzero(dominant >= 0).squeeze(1)
            columns = present * self.sub_centers + dominant[present]
            centers[:, present] = self.W[:, columns]
        return outliers, centers
