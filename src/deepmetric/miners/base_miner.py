"""``BaseMiner``: selects informative pairs or triplets from a batch (no gradients)."""

from __future__ import annotations

import torch

from .. import _validation as V
from .._types import IndicesTuple, Tensor
from ..distances import BaseDistance, LpDistance, attach_distance
from ..records import ModuleWithRecords


class BaseMiner(ModuleWithRecords):
    """``miner(embeddings, labels, ref_emb=None, ref_labels=None)`` returns ``(a, p, n)`` or
    ``(a1, p, a2, n)`` index tensors; anchors index ``embeddings``, the others ``ref_emb``.

    Subclasses implement :meth:`mine`, which runs under ``torch.no_grad()``. After each call
    ``num_triplets`` (or ``num_pos_pairs`` / ``num_neg_pairs``) hold the output sizes.

    Args:
        distance: instance, class or name (default :meth:`get_default_distance`).
        collect_stats: record stats (``None`` reads :mod:`deepmetric.config`).
    """

    distance: BaseDistance

    def __init__(
        self, distance: BaseDistance | type | str | None = None, collect_stats: bool | None = None
    ) -> None:
        super().__init__(collect_stats=collect_stats)
        attach_distance(self, distance)

    def get_default_distance(self) -> BaseDistance:
        return LpDistance(p=2)

    def check_distance(self, distance: BaseDistance) -> None:
        """Raise if this miner cannot work with ``distance`` (default: any distance)."""

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
    ) -> IndicesTuple:
        raise NotImplementedError

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> IndicesTuple:
        self.reset_stats()
        owner = type(self).__name__
        with torch.no_grad():
            V.check_embeddings(owner, embeddings)
            labels = V.check_labels(owner, labels, embeddings.shape[0]).to(embeddings.device)
            if ref_emb is None:
                if ref_labels is not None:
                    V.fail(owner, "`ref_labels` only together with `ref_emb`", "ref_labels alone")
                ref_emb, ref_labels = embeddings, labels
            else:
                V.check_embeddings(owner, ref_emb, "ref_emb")
                V.check_same_dim(owner, embeddings, ref_emb)
                if ref_labels is None:
                    V.fail(owner, "`ref_labels` together with `ref_emb`", "None")
                ref_labels = V.check_labels(owner, ref_labels, ref_emb.shape[0], "ref_labels", "M")
                ref_labels = ref_labels.to(ref_emb.device)
            output = self.mine(embeddings, labels, ref_emb, ref_labels)
        self.output_assertion(output)
        return output

    def output_assertion(self, output: IndicesTuple) -> None:
        """Check the tuple's shape; set ``num_triplets`` or ``num_pos_pairs``/``num_neg_pairs``."""
        owner = type(self).__name__
        if not isinstance(output, tuple) or len(output) not in (3, 4):
            got = f"length {len(output)}" if isinstance(output, tuple) else type(output).__name__
            raise TypeError(
                f"{owner}: expected mine() to return 3 (a, p, n) or 4 (a1, p, a2, n) tensors, "
                f"got {got}."
            )
        if len(output) == 3:
            if not len(output[0]) == len(output[1]) == len(output[2]):
                raise ValueError(
                    f"{owner}: mined a, p, n of unequal lengths {[len(t) for t in output]}."
                )
            self.num_triplets = len(output[0])
        else:
            if len(output[0]) != len(output[1]) or len(output[2]) != len(output[3]):
                raise ValueError(
                    f"{owner}: mined pairs of unequal lengths {[len(t) for t in output]}."
                )
            self.num_pos_pairs = len(output[0])
            self.num_neg_pairs = len(output[2])
