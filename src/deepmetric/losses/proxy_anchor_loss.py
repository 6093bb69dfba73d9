"""``ProxyAnchorLoss``: each class proxy is an anchor pulling its samples and pushing the rest."""

from __future__ import annotations

from typing import Any, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import proxy_losses as F
from ..functional import tuples as T
from ..reducers import BaseReducer, DivisorReducer
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
class ProxyAnchorLoss(WeightRegularizerMixin, BaseMetricLossFunction):
    """Proxy Anchor loss: a soft, proxy-anchored version of the lifted-structure loss.

    Kim, Kim, Cho, Kwak, "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020,
    https://arxiv.org/abs/2003.13911 (eq. 4). With ``s_xc`` the similarity of sample ``x`` to
    proxy ``c`` (default cosine), ``P+`` the proxies with at least one sample in the batch and
    ``w_x`` the miner weight of ``x``::

        pos_c = log(1 + sum_{x: y_x = c} exp(-alpha (s_xc - margin) + (w_x - 1)))
        neg_c = log(1 + sum_{x: y_x != c} exp( alpha (s_xc + margin) + (w_x - 1)))
        L     = sum_c pos_c / |P+|  +  sum_c neg_c / num_classes

    (for a distance ``d`` the signs flip: ``alpha (d - margin)`` and ``alpha (-margin - d)``).
    The loss dict has ``"pos_loss"`` and ``"neg_loss"`` (element terms over the proxies, with
    those divisors); the default reducer is :class:`DivisorReducer`. As in PML, miner output is
    a per-sample weight added in the exponent (``w - 1``: samples the miner did not pick count
    ``e^-1`` times), not a mask; an empty tuple means all ones.

    **The proxies (``Tensor[num_classes, embedding_size]``, float32, default init
    ``kaiming_normal_(mode="fan_out")``) are learnable parameters of the loss: give them to an
    optimizer** (the paper uses a 100x larger learning rate for them), or they never train.
    ``loss_fn.has_trainable_parameters()`` lets a trainer check this. The exponentials are
    computed in float32 for float16/bfloat16 embeddings; the loss comes back in their dtype.

    Args:
        num_classes: ``C``; labels must lie in ``[0, C)``.
        embedding_size: ``D``; embeddings must have ``D`` columns.
        margin: ``delta``.
        alpha: the scale.
        weight_regularizer: a regularizer given ``proxies`` (one row per class).
        weight_reg_weight: the weight of that term.
        weight_init_func: in-place initialiser applied to ``proxies``.
        **kwargs: ``collect_stats``, ``reducer`` (default DivisorReducer), ``distance`` (default
            ``CosineSimilarity()``), ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("num_classes", "alpha", "margin")
    requires_labels = True
    supports_ref_emb = False

    proxies: torch.nn.Parameter

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float = 0.1,
        alpha: float = 32,
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
        self.margin = margin
        self.alpha = alpha
        self.init_weight_regularizer(weight_regularizer, weight_reg_weight, weight_init_func)
        self.proxies = torch.nn.Parameter(torch.empty(self.num_classes, self.embedding_size))
        init_parameter(self.weight_init_func, self.proxies)
        self.set_reducer(reducer)

    def get_default_reducer(self) -> BaseReducer:
        return DivisorReducer()

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def get_default_weight_init_func(self) -> WeightInitFunc:
        return TorchInitWrapper(torch.nn.init.kaiming_normal_, mode="fan_out")

    def _sub_loss_names(self) -> list[str]:
        return ["pos_loss", "neg_loss"]

    def cast_types(self, dtype: torch.dtype, device: torch.device) -> None:
        """Move the proxies to ``device`` (PML also casts them to ``dtype``; deepmetric keeps
        their dtype)."""
        follow_device(self.proxies, device)

    def _similarity(self, embeddings: Tensor) -> Tensor:
        proxies = self.proxies.to(
            device=embeddings.device, dtype=work_dtype(embeddings, self.proxies)
        )
        return self.distance(embeddings.to(proxies.dtype), proxies)

    def get_logits(self, embeddings: Tensor) -> Tensor:
        """``Tensor[N, num_classes]``: the distance matrix to the proxies (cosines by default),
        in the embeddings' dtype."""
        V.check_embeddings(type(self).__name__, embeddings)
        self._check_batch(embeddings, None)
        self.cast_types(embeddings.dtype, embeddings.device)
        return self._similarity(embeddings).to(embeddings.dtype)

    def _check_batch(self, embeddings: Tensor, labels: Tensor | None) -> None:
        check_class_batch(
            type(self).__name__,
            embeddings,
            labels,
            num_classes=self.proxies.shape[0],
            embedding_size=self.proxies.shape[1],
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
        sim = self._similarity(embeddings)  # [N, C]
        log_weights = None
        if indices_tuple is not None:
            log_weights = T.convert_to_weights(indices_tuple, labels, dtype=sim.dtype) - 1
        pos, neg = F.proxy_anchor_terms(
            sim,
            labels,
            margin=self.margin,
            alpha=self.alpha,
            is_inverted=self.distance.is_inverted,
            log_weights=log_weights,
        )
        num_classes = self.proxies.shape[0]
        with_pos = int(torch.count_nonzero(torch.bincount(labels, minlength=num_classes)))
        indices = torch.arange(num_classes, device=embeddings.device)
        loss_dict: LossDict = {
            "pos_loss": {
                "losses": pos.to(embeddings.dtype),
                "indices": indices,
                "reduction_type": "element",
                "divisor": with_pos,
            },
            "neg_loss": {
                "losses": neg.to(embeddings.dtype),
                "indices": indices,
                "reduction_type": "element",
                "divisor": num_classes,
            },
        }
        self.add_weight_regularization_to_loss_dict(loss_dict, self.proxies)
        return loss_dict
