"""``P2SGradLoss``: squared error between cosines to unit class vectors and one-hot targets."""

from __future__ import annotations

from typing import Any, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..functional import margin_softmax as F
from ._class_vectors import check_class_batch, check_positive_int, follow_device, work_dtype
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class P2SGradLoss(BaseMetricLossFunction):
    """P2SGrad: a hyperparameter-free cosine loss whose gradient is the P2SGrad update.

    Zhang et al., "P2SGrad: Refined Gradients for Optimizing Deep Face Models", CVPR 2019,
    https://arxiv.org/abs/1905.02479 (eq. 9-10). With ``w_j`` the unit-norm columns of
    ``weight`` and ``cos_ij = clamp(x_i . w_j / ||x_i||, -1, 1)``::

        L = mean_{i, j} (cos_ij - 1[j == y_i])^2        (an already-reduced scalar)

    As in PML, the columns of ``weight`` are renormalised to unit norm in place (on
    ``weight.data``) at the start of every forward, so the gradient w.r.t. ``weight`` is taken
    at unit norm; ``distance`` is not used; ``indices_tuple`` and ``ref_emb`` are not supported.

    **``weight`` (``Tensor[descriptors_dim, num_classes]``, float32, initialised uniformly in
    [-1, 1] with unit-norm columns) is a learnable parameter of the loss: give it to an
    optimizer**, or it never trains. ``loss_fn.has_trainable_parameters()`` lets a trainer
    check this. The cosines are computed in float32 for float16/bfloat16 embeddings; the loss
    comes back in the embeddings' dtype.

    Differences from PML 2.9.0: labels are required and checked (PML fails inside); a zero
    embedding gives cosines 0 instead of NaN; :meth:`get_logits` (the cosines) is an addition.

    Args:
        descriptors_dim: ``D``; embeddings must have ``D`` columns (PML's name for
            ``embedding_size``).
        num_classes: ``C``; labels must lie in ``[0, C)``.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (unused),
            ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("descriptors_dim", "num_classes")
    requires_labels = True
    supports_indices_tuple = False
    supports_ref_emb = False

    weight: torch.nn.Parameter

    def __init__(self, descriptors_dim: int, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.descriptors_dim = check_positive_int(owner, "descriptors_dim", descriptors_dim)
        self.num_classes = check_positive_int(owner, "num_classes", num_classes)
        self.in_dim = self.descriptors_dim  # PML's attribute names
        self.out_dim = self.num_classes
        self.weight = torch.nn.Parameter(torch.empty(self.descriptors_dim, self.num_classes))
        with torch.no_grad():
            self.weight.uniform_(-1, 1)
        self._normalize_weight()

    def _normalize_weight(self) -> None:
        """Scale every column of ``weight`` with norm above 1e-5 to unit norm, in place."""
        self.weight.data.renorm_(2, 1, 1e-5).mul_(1e5)

    def cast_types(self, dtype: torch.dtype, device: torch.device) -> None:
        """Move ``weight`` to ``device`` (its dtype is kept)."""
        follow_device(self.weight, device)

    def _check_batch(self, embeddings: Tensor, labels: Tensor | None) -> None:
        check_class_batch(
            type(self).__name__,
            embeddings,
            labels,
            num_classes=self.weight.shape[1],
            embedding_size=self.weight.shape[0],
            size_name="descriptors_dim",
        )

    def get_logits(self, embeddings: Tensor) -> Tensor:
        """``Tensor[N, num_classes]``: the clamped cosines to the class vectors (no gradient
        through the renormalisation), in the embeddings' dtype."""
        V.check_embeddings(type(self).__name__, embeddings)
        self._check_batch(embeddings, None)
        self.cast_types(embeddings.dtype, embeddings.device)
        work = work_dtype(embeddings, self.weight)
        w = torch.nn.functional.normalize(self.weight.to(work), p=2, dim=0)
        x = torch.nn.functional.normalize(embeddings.to(work), p=2, dim=1)
        return (x @ w).clamp(-1, 1).to(embeddings.dtype)

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
        self._normalize_weight()
        loss = F.p2sgrad_terms(embeddings, self.weight, labels).mean()
        return {
            "loss": {
                "losses": loss.to(embeddings.dtype),
                "indices": None,
                "reduction_type": "already_reduced",
            }
        }
