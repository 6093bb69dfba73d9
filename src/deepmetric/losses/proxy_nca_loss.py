"""``ProxyNCALoss``: NCA against one learnable proxy per class."""

from __future__ import annotations

from typing import Any, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from .mixins import WeightInitFunc, WeightRegularizerMixin
from .nca_loss import NCALoss


@LOSSES.register
class ProxyNCALoss(WeightRegularizerMixin, NCALoss):
    """NCA loss with learnable class proxies as the reference set.

    Movshovitz-Attias et al., "No Fuss Distance Metric Learning using Proxies", ICCV 2017,
    https://arxiv.org/abs/1703.07464. With ``P`` the ``(num_classes, embedding_size)`` proxies
    and the default squared Euclidean distance between normalized vectors::

        L_i = -log softmax_{y_i}(-softmax_scale * d(x_i, P))

    With a miner's ``indices_tuple`` each term is multiplied by its anchor's weight (how often it
    is an anchor in the tuple over the largest count). Terms are per sample (``"element"``),
    reduced by default with :class:`MeanReducer`; a ``weight_regularizer`` receives ``proxies``
    (one row per class) and adds ``"weight_reg_loss"``.

    The proxies keep their own dtype and device: each forward uses a differentiable copy in the
    embeddings' dtype/device (pytorch-metric-learning instead converts the parameter in place).
    As in pytorch-metric-learning the recordable ``num_classes`` is declared but not stored, so
    it reads 0; ``proxies.shape[0]`` is the number of classes.

    Args:
        num_classes: number of proxies; labels must lie in ``[0, num_classes)``.
        embedding_size: dimension of the embeddings and proxies.
        weight_regularizer: a regularizer applied to ``proxies``.
        weight_reg_weight: the weight of that term.
        weight_init_func: initialises ``proxies`` in place (default ``torch.nn.init.normal_``).
        **kwargs: ``softmax_scale`` (default 1), ``collect_stats``, ``reducer``, ``distance``
            (default ``LpDistance(power=2)``), ``embedding_regularizer``,
            ``embedding_reg_weight``.
    """

    recordable = ("num_classes",)
    supports_ref_emb = False

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        *,
        weight_regularizer: torch.nn.Module | None = None,
        weight_reg_weight: float = 1,
        weight_init_func: WeightInitFunc | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("num_classes", num_classes), ("embedding_size", embedding_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                V.fail(type(self).__name__, f"`{name}` to be a positive int", repr(value))
        self.init_weight_regularizer(weight_regularizer, weight_reg_weight, weight_init_func)
        if weight_regularizer is not None:
            self.set_reducer(kwargs.get("reducer"))
        self.proxies = torch.nn.Parameter(torch.empty(num_classes, embedding_size))
        self.weight_init_func(self.proxies)
        self.proxy_labels = torch.arange(num_classes)

    def cast_types(self, dtype: torch.dtype, device: torch.device) -> None:
        """Convert ``proxies`` in place (pytorch-metric-learning's method; forward does not call
        it)."""
        self.proxies.data = self.proxies.data.to(device=device, dtype=dtype)

    def _proxies_like(self, embeddings: Tensor) -> Tensor:
        return self.proxies.to(device=embeddings.device, dtype=embeddings.dtype)

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        labels = cast(Tensor, labels)  # required (checked by the loss base)
        num_classes = self.proxies.shape[0]
        low, high = (int(v) for v in torch.stack([labels.min(), labels.max()]).tolist())
        if low < 0 or high >= num_classes:
            V.fail(
                type(self).__name__,
                f"`labels` in [0, num_classes={num_classes})",
                f"values in [{low}, {high}]",
            )
        proxies = self._proxies_like(embeddings)
        proxy_labels = torch.arange(num_classes, device=labels.device)
        loss_dict = self.nca_computation(embeddings, proxies, labels, proxy_labels, indices_tuple)
        self.add_weight_regularization_to_loss_dict(loss_dict, proxies)
        return loss_dict

    def get_logits(self, embeddings: Tensor) -> Tensor:
        """``distance(embeddings, proxies)``: ``Tensor[N, num_classes]`` raw distances (squared
        Euclidean by default; not negated)."""
        logits: Tensor = self.distance(embeddings, self._proxies_like(embeddings))
        return logits
