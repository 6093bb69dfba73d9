"""``BaseSubsetBatchMiner``: picks a subset of the batch itself, before the loss."""

from __future__ import annotations

from typing import ClassVar

import torch

from .. import _validation as V
from .._types import Tensor
from ..records import ModuleWithRecords


class BaseSubsetBatchMiner(ModuleWithRecords):
    """``miner(embeddings, labels)`` returns ``Tensor[output_batch_size]`` of batch indices.

    The second kind of miner (the first, :class:`~deepmetric.miners.base_miner.BaseMiner`,
    picks pairs or triplets inside a batch): a subset batch miner chooses which rows of the
    batch go on to the loss, e.g. ``idx = miner(emb, labels); loss(emb[idx], labels[idx])``.
    Subclasses implement :meth:`mine`, which runs under ``torch.no_grad()``. No ``ref_emb``.

    Args:
        output_batch_size: rows to keep; at most the batch size of each call.
        collect_stats: record stats (``None`` reads :mod:`deepmetric.config`).
    """

    #: Tells pipelines and contract tests that the output is a row subset, not a tuple.
    is_subset_batch_miner: ClassVar[bool] = True
    recordable = ("output_batch_size",)

    def __init__(self, output_batch_size: int, collect_stats: bool | None = None) -> None:
        owner = type(self).__name__
        if isinstance(output_batch_size, bool) or not isinstance(output_batch_size, int):
            V.fail(
                owner, "`output_batch_size` to be an int", repr(output_batch_size), exc=TypeError
            )
        if output_batch_size < 1:
            V.fail(owner, "`output_batch_size` >= 1", str(output_batch_size))
        super().__init__(collect_stats=collect_stats)
        self.output_batch_size = output_batch_size

    def mine(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        self.reset_stats()
        owner = type(self).__name__
        V.check_embeddings(owner, embeddings)
        labels = V.check_labels(owner, labels, embeddings.shape[0]).to(embeddings.device)
        n = embeddings.shape[0]
        if self.output_batch_size > n:
            V.fail(
                owner,
                f"a batch of at least output_batch_size={self.output_batch_size} embeddings",
                f"{n}",
                "Lower output_batch_size or enlarge the DataLoader's batch size.",
            )
        with torch.no_grad():
            output = self.mine(embeddings, labels)
        self.output_assertion(output, n)
        return output

    def output_assertion(self, output: Tensor, batch_size: int) -> None:
        """Check that ``output`` is ``output_batch_size`` int64 indices into the batch."""
        owner = type(self).__name__
        if not isinstance(output, torch.Tensor) or output.dtype != torch.long or output.ndim != 1:
            got = (
                f"{output.dtype} of shape {tuple(output.shape)}"
                if isinstance(output, torch.Tensor)
                else type(output).__name__
            )
            V.fail(owner, "mine() to return a 1-D LongTensor", got, exc=TypeError)
        if len(output) != self.output_batch_size:
            V.fail(
                owner,
                f"mine() to return output_batch_size={self.output_batch_size} indices",
                str(len(output)),
            )
        if len(output) and (int(output.min()) < 0 or int(output.max()) >= batch_size):
            V.fail(
                owner,
                f"indices within [0, {batch_size})",
                f"[{int(output.min())}, {int(output.max())}]",
            )
