"""``DistributedMinerWrapper``: mine tuples over the batches of every rank."""

from __future__ import annotations

from typing import Any, cast

import torch

from .. import _validation as V
from .._types import IndicesTuple, Tensor
from ..miners.base_miner import BaseMiner
from . import gather as G
from ._common import warn_single_process

_OWNER = "DistributedMinerWrapper"


class DistributedMinerWrapper(torch.nn.Module):
    """Gather embeddings and labels from every rank, then run ``miner`` on them.

    The returned indices refer to the gathered batch with this rank's batch first, which is what
    :class:`~deepmetric.distributed.DistributedLossWrapper` builds, so pass them straight to it.

    * ``efficient=False``: ``miner(all_emb, all_labels, all_ref_emb, all_ref_labels)``; anchors
      index the gathered batch.
    * ``efficient=True``: ``miner(emb, labels, all_emb, all_labels)`` (local anchors, gathered
      references) with each anchor's own row removed as a positive; with ``ref_emb``,
      ``miner(emb, labels, all_ref_emb, all_ref_labels)`` with nothing removed (PML 2.9.0 also
      drops the ``(i, i)`` positives there, although reference row ``i`` is not sample ``i``).
      Use ``efficient=True`` here exactly when the loss wrapper uses it.

    Without an initialized process group, or with world size 1, the miner runs on the local batch
    and a ``UserWarning`` is issued once per wrapper (PML raises when there is no process group).

    Args:
        miner: a ``BaseMiner``.
        efficient: local anchors against gathered references (see above).
    """

    def __init__(self, miner: torch.nn.Module, efficient: bool = False) -> None:
        super().__init__()
        if not isinstance(miner, BaseMiner):
            V.fail(_OWNER, "`miner` to be a BaseMiner", type(miner).__name__, exc=TypeError)
        if not isinstance(efficient, bool):
            V.fail(_OWNER, "`efficient` to be a bool", repr(efficient), exc=TypeError)
        self.miner = miner
        self.efficient = efficient
        self._warned = False

    def extra_repr(self) -> str:
        return f"efficient={self.efficient}"

    def forward(
        self,
        emb: Tensor,
        labels: Tensor,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> IndicesTuple:
        self._check_inputs(emb, labels, ref_emb, ref_labels)
        if G.world_size() <= 1:
            if not self._warned:
                warn_single_process(_OWNER, type(self.miner).__name__, G.is_distributed())
                self._warned = True
            result: IndicesTuple = self.miner(emb, labels, ref_emb, ref_labels)
            return result
        with torch.no_grad():
            emb, labels = emb.detach(), labels.to(emb.device)
            all_emb, all_labels, all_ref_emb, all_ref_labels, _ = G.gather_emb_and_ref(
                emb, labels, None if ref_emb is None else ref_emb.detach(), ref_labels
            )
            if self.efficient:
                if all_ref_emb is None:
                    # labels are required, so the gathered labels exist
                    ref_lab = cast(Tensor, all_labels)
                    return G.get_indices_tuple(labels, ref_lab, emb, all_emb, self.miner)
                out: IndicesTuple = self.miner(emb, labels, all_ref_emb, all_ref_labels)
                return out
            out = self.miner(all_emb, all_labels, all_ref_emb, all_ref_labels)
            return out

    @staticmethod
    def _check_inputs(emb: Any, labels: Any, ref_emb: Any, ref_labels: Any) -> None:
        e = V.check_embeddings(_OWNER, emb, "emb")
        V.check_labels(_OWNER, labels, e.shape[0])
        if ref_labels is not None and ref_emb is None:
            V.fail(_OWNER, "`ref_labels` only together with `ref_emb`", "ref_labels alone")
        if ref_emb is not None:
            r = V.check_embeddings(_OWNER, ref_emb, "ref_emb")
            V.check_same_dim(_OWNER, e, r)
            if ref_labels is None:
                V.fail(_OWNER, "`ref_labels` together with `ref_emb`", "ref_emb alone")
            V.check_labels(_OWNER, ref_labels, r.shape[0], "ref_labels", "M")
