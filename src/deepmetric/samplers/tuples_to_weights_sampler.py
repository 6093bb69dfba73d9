"""``TuplesToWeightsSampler``: sample often what a miner picks often."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import Subset

from .. import _validation as V
from .._registry import SAMPLERS
from .._types import Tensor
from ..functional import sampling as F
from ..functional.tuples import convert_to_weights
from ..testers.base_tester import BaseTester
from ._common import check_int, make_generator


def _tester(owner: str, tester_kwargs: dict[str, Any]) -> tuple[BaseTester, int]:
    """The ``BaseTester`` that embeds the data (PML's ``self.tester``); unknown keywords get a
    did-you-mean, and ``label_hierarchy_level`` must name one level (a miner takes 1-D labels)."""
    accepted = [p for p in inspect.signature(BaseTester.__init__).parameters if p != "self"]
    for key in tester_kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"{owner}: unknown argument {key!r}.{hint} "
                f"Accepted tester arguments: {', '.join(accepted)}."
            )
    level = check_int(
        owner, "label_hierarchy_level", tester_kwargs.get("label_hierarchy_level", 0), minimum=0
    )
    return BaseTester(**tester_kwargs), level


@SAMPLERS.register
class TuplesToWeightsSampler(torch.utils.data.Sampler[int]):
    """Draws indices with probability proportional to how often a miner uses each sample.

    Each ``iter``: take a random subset of ``subset_size`` dataset indices (all of them when
    ``subset_size`` is None; without replacement unless ``subset_size > len(dataset)``), embed it
    with ``model``, mine tuples with ``miner(embeddings, labels)``, and set ``self.weights``
    (``Tensor[len(dataset)]``, float32, zero outside the subset) to each sample's share of the
    mined tuples (:func:`~deepmetric.functional.tuples.convert_to_weights`). Then yield
    ``len(self)`` indices drawn with replacement from ``weights``.

    Length: ``subset_size`` if set, else ``len(dataset)`` (indices).

    Args:
        model: ``nn.Module`` mapping a batch of data to embeddings.
        miner: tuple miner, called as ``miner(embeddings, labels)``.
        dataset: map-style dataset of ``(data, label)`` items.
        subset_size: samples embedded per epoch (None: the whole dataset).
        generator / seed: source of randomness (keyword-only; see
            :mod:`deepmetric.samplers._common`).
        **tester_kwargs: ``BaseTester`` arguments of ``self.tester``, which embeds the data
            (``normalize_embeddings``, ``batch_size``, ``dataloader_num_workers``, ``pca``,
            ``data_device``, ``dtype``, ``data_and_label_getter``, ``label_hierarchy_level``
            (one level), ...); anything else is a ``TypeError``.

    Differences from PML: the model's train/eval mode is restored after embedding; randomness
    from a ``torch.Generator``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        miner: Callable[..., Any],
        dataset: Any,
        subset_size: int | None = None,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        **tester_kwargs: Any,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if not isinstance(model, torch.nn.Module):
            V.fail(owner, "`model` to be a torch.nn.Module", type(model).__name__, exc=TypeError)
        if not callable(miner):
            V.fail(owner, "a callable `miner`", type(miner).__name__, exc=TypeError)
        try:
            len(dataset)
        except TypeError:
            V.fail(
                owner, "a map-style `dataset` with a length", type(dataset).__name__, exc=TypeError
            )
        self.model = model
        self.miner = miner
        self.dataset = dataset
        self.subset_size = (
            None if subset_size is None else check_int(owner, "subset_size", subset_size)
        )
        self.tester, self._label_level = _tester(owner, tester_kwargs)
        self.device = torch.device(self.tester.data_device)
        self.generator = make_generator(owner, seed, generator)
        self.weights: Tensor | None = None

    def __len__(self) -> int:
        return self.subset_size if self.subset_size is not None else len(self.dataset)

    def _subset(self) -> Tensor:
        n = len(self.dataset)
        if self.subset_size is None:
            return torch.arange(n)
        if self.subset_size <= n:
            return F.random_subsets(n, self.subset_size, 1, generator=self.generator)[0]
        sizes = torch.tensor([n])
        return F.sample_with_replacement(sizes, self.subset_size, generator=self.generator)[0]

    def _embed(self, data: Any) -> tuple[Tensor, Tensor]:
        """``(embeddings Tensor[n, D], labels Tensor[n])`` of ``data``, on ``self.device``."""
        was_training = self.model.training
        try:
            embeddings, labels = self.tester.get_all_embeddings(data, self.model)
        finally:
            self.model.train(was_training)
        return embeddings, labels[:, self._label_level]

    def __iter__(self) -> Iterator[int]:
        indices = self._subset()
        data = self.dataset if self.subset_size is None else Subset(self.dataset, indices.tolist())
        embeddings, labels = self._embed(data)
        tuples = self.miner(embeddings, labels)
        w = convert_to_weights(tuples, labels, dtype=torch.float32)
        weights = torch.zeros(len(self.dataset), dtype=torch.float32, device=w.device)
        # a repeated index (subset_size > len(dataset)) keeps its largest weight
        self.weights = weights.scatter_reduce(0, indices.to(w.device), w, reduce="amax")
        draws = torch.multinomial(
            self.weights.to(self.generator.device),
            len(self),
            replacement=True,
            generator=self.generator,
        )
        return iter(draws.tolist())
