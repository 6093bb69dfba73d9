"""``MaximumLossMiner``: of a few random subsets of the batch, keep the highest-loss one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import _validation as V
from .._registry import MINERS
from .._types import Tensor
from ..functional.sampling import random_subsets
from .base_subset_batch_miner import BaseSubsetBatchMiner


@MINERS.register
class MaximumLossMiner(BaseSubsetBatchMiner):
    """Returns the indices of the highest-loss subset among ``num_trials`` random subsets.

    Each trial draws a subset of ``output_batch_size`` distinct rows (uniformly, in random order;
    :func:`~deepmetric.functional.sampling.random_subsets`), optionally mines it with ``miner``,
    and evaluates ``loss(emb[idx], labels[idx], indices_tuple)`` under ``no_grad``. The indices
    of the first trial reaching the maximum loss are returned. The loss and miner are used as
    they are (their stats update on every trial).

    Args:
        loss: callable ``loss(embeddings, labels, indices_tuple)`` returning a scalar.
        miner: optional tuple miner applied to each subset (``miner(emb, labels)``).
        num_trials: random subsets tried per call.
        output_batch_size: rows per subset (keyword-only, required).
        generator: ``torch.Generator`` for the subsets (None: torch's default generator); with a
            seeded generator the choice is reproducible.
        collect_stats: record stats (``None`` reads :mod:`deepmetric.config`).

    Differences from PML 0.9 (the last PML with subset batch miners): subsets are drawn without
    replacement (PML drew rows with replacement, so a subset could repeat a row); randomness from
    an explicit generator.
    """

    recordable = ("num_trials",)

    def __init__(
        self,
        loss: Callable[..., Any],
        miner: Callable[..., Any] | None = None,
        num_trials: int = 5,
        *,
        output_batch_size: int,
        generator: torch.Generator | None = None,
        collect_stats: bool | None = None,
    ) -> None:
        super().__init__(output_batch_size=output_batch_size, collect_stats=collect_stats)
        owner = type(self).__name__
        if not callable(loss):
            V.fail(owner, "a callable `loss`", type(loss).__name__, exc=TypeError)
        if miner is not None and not callable(miner):
            V.fail(owner, "a callable `miner` or None", type(miner).__name__, exc=TypeError)
        if isinstance(num_trials, bool) or not isinstance(num_trials, int):
            V.fail(owner, "`num_trials` to be an int", repr(num_trials), exc=TypeError)
        if num_trials < 1:
            V.fail(owner, "`num_trials` >= 1", str(num_trials))
        if generator is not None and not isinstance(generator, torch.Generator):
            V.fail(
                owner,
                "`generator` to be a torch.Generator",
                type(generator).__name__,
                exc=TypeError,
            )
        self.loss = loss
        self.miner = miner
        self.num_trials = num_trials
        self.generator = generator

    def mine(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        n = embeddings.shape[0]
        gen_device = self.generator.device if self.generator is not None else torch.device("cpu")
        subsets = random_subsets(
            n, self.output_batch_size, self.num_trials, generator=self.generator, device=gen_device
        ).to(embeddings.device)  # [num_trials, output_batch_size]
        losses = []
        for idx in subsets:
            emb, lab = embeddings[idx], labels[idx]
            indices_tuple = self.miner(emb, lab) if self.miner is not None else None
            value = torch.as_tensor(self.loss(emb, lab, indices_tuple))
            if value.numel() != 1:
                V.fail(
                    type(self).__name__,
                    "`loss` to return a scalar",
                    f"shape {tuple(value.shape)}",
                    "Use a reducer that reduces to one value.",
                )
            losses.append(
                value.detach().reshape(()).to(device=embeddings.device, dtype=torch.float64)
            )
        return subsets[torch.argmax(torch.stack(losses))]
