"""``DistributedLossWrapper``: compute a metric loss over the batches of every rank."""

from __future__ import annotations

from typing import Any

import torch

from .. import _validation as V
from .._types import IndicesTuple, Tensor
from ..losses.base_metric_loss_function import BaseMetricLossFunction
from ..losses.cross_batch_memory import CrossBatchMemory
from . import gather as G
from ._common import scale_grad, warn_single_process

_OWNER = "DistributedLossWrapper"


class DistributedLossWrapper(torch.nn.Module):
    """Gather embeddings and labels from every rank of ``torch.distributed``, then apply ``loss``.

    After the gather each rank holds its own batch first (with its autograd graph) and the other
    ranks' batches after it (as constants; their gradients are computed on their own ranks).

    * ``efficient=False``: the loss runs on all gathered embeddings (and gathered ``ref_emb`` if
      given), so every rank computes the same value ``L`` as one process would on the
      concatenated batch. The result is returned multiplied by the world size ``W`` (as PML
      does), and each rank's embeddings receive ``W * dL/d(own embeddings)``; DDP averages over
      ranks, so model parameters get exactly the single-process gradient.
    * ``efficient=True``: the local embeddings are the queries and the gathered embeddings
      (or gathered ``ref_emb``) the references. Less memory and compute, but the gradient is
      **not** the single-process one (references from other ranks carry no gradient). Without
      ``indices_tuple`` and ``ref_emb`` every (local, gathered) pair is used except each sample
      paired with itself; with ``ref_emb`` no pair is dropped, since reference row ``i`` is not
      sample ``i`` (PML 2.9.0 drops those ``(i, i)`` positives there too).

    Losses with parameters (ArcFace ``W``, proxies): the loss's parameters receive the gradient
    of the un-multiplied loss, ``dL/dW``, not ``W`` times it (PML gives ``W * dL/dW``, which DDP
    averaging does not undo; PML issue #710). With ``efficient=False`` that is the
    single-process gradient and it is identical on every rank, so the copies stay in sync with
    no extra step, and averaging them changes nothing (e.g.
    ``DistributedDataParallel(DistributedLossWrapper(ArcFaceLoss(...)))``, or ``all_reduce``
    then ``/ W``). With ``efficient=True`` each rank's ``dL_r/dW`` differs: put the loss's
    parameters under DDP or ``all_reduce`` their gradients and divide by ``W``.
    (Classification losses such as ArcFace take no ``ref_emb``, so they only run with
    ``efficient=False``.)

    ``CrossBatchMemory``: the gathered batch (and gathered ``enqueue_mask``) is passed on, so
    every rank's memory holds all ranks' embeddings; ``ref_emb`` is not accepted, and
    ``efficient=True`` raises (see the error for why).

    Without an initialized process group, or with world size 1, the wrapped loss runs on the
    local batch and a ``UserWarning`` is issued once per wrapper.

    Args:
        loss: a metric loss (``BaseMetricLossFunction``) or a ``CrossBatchMemory``.
        efficient: local queries against gathered references (see above).
    """

    def __init__(self, loss: torch.nn.Module, efficient: bool = False) -> None:
        super().__init__()
        if not isinstance(loss, BaseMetricLossFunction | CrossBatchMemory):
            V.fail(
                _OWNER,
                "`loss` to be a BaseMetricLossFunction or CrossBatchMemory",
                type(loss).__name__,
                exc=TypeError,
            )
        if not isinstance(efficient, bool):
            V.fail(_OWNER, "`efficient` to be a bool", repr(efficient), exc=TypeError)
        if efficient and isinstance(loss, CrossBatchMemory):
            V.fail(
                _OWNER,
                "efficient=False with a CrossBatchMemory loss",
                "efficient=True",
                "CrossBatchMemory already uses `ref_emb` for its memory, so the gathered batch "
                "cannot be passed as references, and a memory filled with local batches only "
                "would differ between ranks. Use efficient=False: every rank then stores the "
                "whole gathered batch.",
            )
        self.loss = loss
        self.efficient = efficient
        self._warned = False

    def extra_repr(self) -> str:
        return f"efficient={self.efficient}"

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor | None = None,
        indices_tuple: IndicesTuple | None = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
        enqueue_mask: Tensor | None = None,
    ) -> Any:
        is_cbm = isinstance(self.loss, CrossBatchMemory)
        self._check_inputs(embeddings, labels, ref_emb, ref_labels, enqueue_mask, is_cbm)
        ws = G.world_size()
        if ws <= 1:
            if not self._warned:
                warn_single_process(_OWNER, type(self.loss).__name__, G.is_distributed())
                self._warned = True
            if is_cbm:
                return self.loss(embeddings, labels, indices_tuple, enqueue_mask)
            return self.loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)

        # Local rows get W x the gradient (DDP divides by W); the returned value is W * L, but
        # its gradient w.r.t. the loss's own parameters is dL (see the class docstring).
        embeddings = scale_grad(embeddings, ws)
        if ref_emb is not None:
            ref_emb = scale_grad(ref_emb, ws)
        all_emb, all_labels, all_ref_emb, all_ref_labels, labels = G.gather_emb_and_ref(
            embeddings, labels, ref_emb, ref_labels
        )
        if is_cbm:
            all_mask = G.gather_enqueue_mask(enqueue_mask, all_emb.device)
            loss = self.loss(all_emb, all_labels, indices_tuple, all_mask)
        elif not self.efficient:
            loss = self.loss(all_emb, all_labels, indices_tuple, all_ref_emb, all_ref_labels)
        else:
            if all_ref_emb is None:
                all_ref_emb, all_ref_labels = all_emb, all_labels
                if indices_tuple is None:
                    if labels is None or all_labels is None:
                        V.fail(
                            _OWNER,
                            "`labels` or `indices_tuple` with efficient=True",
                            "neither",
                        )
                    indices_tuple = G.get_indices_tuple(labels, all_labels)
            loss = self.loss(embeddings, labels, indices_tuple, all_ref_emb, all_ref_labels)
        return loss + (ws - 1) * loss.detach()

    @staticmethod
    def _check_inputs(
        embeddings: Any,
        labels: Any,
        ref_emb: Any,
        ref_labels: Any,
        enqueue_mask: Any,
        is_cbm: bool,
    ) -> None:
        emb = V.check_embeddings(_OWNER, embeddings)
        if labels is not None:
            V.check_labels(_OWNER, labels, emb.shape[0])
        if ref_labels is not None and ref_emb is None:
            V.fail(_OWNER, "`ref_labels` only together with `ref_emb`", "ref_labels alone")
        if ref_emb is not None:
            ref = V.check_embeddings(_OWNER, ref_emb, "ref_emb")
            V.check_same_dim(_OWNER, emb, ref)
            if ref_labels is not None:
                V.check_labels(_OWNER, ref_labels, ref.shape[0], "ref_labels", "M")
        if is_cbm and (ref_emb is not None or ref_labels is not None):
            V.fail(
                _OWNER,
                "no `ref_emb`/`ref_labels` with a CrossBatchMemory loss",
                "ref_emb",
                "CrossBatchMemory compares the batch with its own memory.",
            )
        if not is_cbm and enqueue_mask is not None:
            V.fail(
                _OWNER,
                "`enqueue_mask` only with a CrossBatchMemory loss",
                "an enqueue_mask",
            )
