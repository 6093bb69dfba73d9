"""``SelfSupervisedLoss``: a metric loss on two augmented views, labels made up from positions."""

from __future__ import annotations

from typing import Any

import torch

from .. import _validation as V
from .._types import Tensor
from .base_loss_wrapper import BaseLossWrapper

_OWNER = "SelfSupervisedLoss"


class SelfSupervisedLoss(BaseLossWrapper):
    """Wraps a metric loss for self-supervised pairs: ``ref_emb[i]`` is a view of the same input
    as ``embeddings[i]``, so row ``i`` of both gets label ``i`` and every other row is a negative.

    With ``symmetric=True`` the loss sees both views as one batch:
    ``loss(cat([embeddings, ref_emb]), cat([arange(N), arange(N)]))`` (each view is an anchor).
    With ``symmetric=False`` only ``embeddings`` are anchors, compared against ``ref_emb``:
    ``loss(embeddings, arange(N), ref_emb=ref_emb, ref_labels=arange(N))``.

    Works with any loss whose class declares ``supports_labels`` (and ``supports_ref_emb`` when
    ``symmetric=False``); others raise ``TypeError``. Losses that size a parameter by the number
    of classes (e.g. MarginLoss with learned per-class betas) would need ``num_classes >= N``.

    Args:
        loss: the wrapped loss.
        symmetric: use both views as anchors (see above).
        **kwargs: ``collect_stats``.
    """

    required_capabilities = ("supports_labels",)

    def __init__(self, loss: torch.nn.Module, symmetric: bool = True, **kwargs: Any) -> None:
        if not isinstance(symmetric, bool):
            V.fail(_OWNER, "`symmetric` to be a bool", repr(symmetric), exc=TypeError)
        super().__init__(loss, **kwargs)
        if not symmetric:
            self.check_loss_support(loss, ("supports_labels", "supports_ref_emb"))
        self.symmetric = symmetric

    def forward(self, embeddings: Tensor, ref_emb: Tensor) -> Any:
        """``embeddings``, ``ref_emb``: ``Tensor[N, D]``; row ``i`` of both from input ``i``."""
        V.check_tensor(_OWNER, embeddings, "embeddings")
        V.check_tensor(_OWNER, ref_emb, "ref_emb")
        if embeddings.ndim != 2 or ref_emb.shape != embeddings.shape:
            V.fail(
                _OWNER,
                "`embeddings` and `ref_emb` of the same shape (N, D)",
                f"{tuple(embeddings.shape)} and {tuple(ref_emb.shape)}",
            )
        labels = torch.arange(embeddings.shape[0], device=embeddings.device)
        if self.symmetric:
            both = torch.cat([embeddings, ref_emb], dim=0)
            return self.loss(both, torch.cat([labels, labels]))
        return self.loss(
            embeddings=embeddings, labels=labels, ref_emb=ref_emb, ref_labels=labels.clone()
        )
