"""``TuplesToWeightsSampler``: sample often what a miner picks often."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from .. import _validation as V
from .._registry import SAMPLERS
from .._types import Tensor
from ..functional import sampling as F
from ..functional.tuples import convert_to_weights
from ._common import check_int, make_generator

#: PML ``BaseTester`` keywords and their defaults. Those marked ``False`` do not change the
#: embeddings or labels a miner sees here, so they are accepted and have no effect.
_TESTER_KWARGS: dict[str, tuple[Any, bool]] = {
    "normalize_embeddings": (True, True),
    "use_trunk_output": (False, False),  # no embedder model here: the trunk output is used
    "batch_size": (32, True),
    "dataloader_num_workers": (2, True),
    "pca": (None, True),
    "data_device": (None, True),
    "dtype": (None, True),
    "data_and_label_getter": (None, True),
    "label_hierarchy_level": (0, True),
    "end_of_testing_hook": (None, False),
    "dataset_labels": (None, False),  # label remapping keeps which samples share a class
    "set_min_label_to_zero": (False, False),
    "accuracy_calculator": (None, False),
    "visualizer": (None, False),
    "visualizer_hook": (None, False),
}


def _tester_settings(owner: str, tester_kwargs: dict[str, Any]) -> dict[str, Any]:
    settings = {name: default for name, (default, _) in _TESTER_KWARGS.items()}
    for key, value in tester_kwargs.items():
        if key not in _TESTER_KWARGS:
            close = difflib.get_close_matches(key, list(_TESTER_KWARGS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"{owner}: unknown argument {key!r}.{hint} "
                f"Accepted tester arguments: {', '.join(_TESTER_KWARGS)}."
            )
        settings[key] = value
    if settings["pca"] is not None:
        V.fail(owner, "`pca=None`", f"pca={settings['pca']!r}", "PCA is not supported here yet.")
    settings["batch_size"] = check_int(owner, "batch_size", settings["batch_size"])
    settings["dataloader_num_workers"] = check_int(
        owner, "dataloader_num_workers", settings["dataloader_num_workers"], minimum=0
    )
    settings["label_hierarchy_level"] = check_int(
        owner, "label_hierarchy_level", settings["label_hierarchy_level"], minimum=0
    )
    device = settings["data_device"]
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    settings["data_device"] = torch.device(device)
    return settings


def _get_all_embeddings(
    model: torch.nn.Module, dataset: Any, s: dict[str, Any]
) -> tuple[Tensor, Tensor]:
    """Embeddings ``Tensor[N, D]`` and labels ``Tensor[N]`` of ``dataset``, in dataset order.

    The stand-in for ``BaseTester.get_all_embeddings`` until the testers exist: one pass of a
    non-shuffling ``DataLoader`` (``batch_size``, ``dataloader_num_workers``); each batch goes
    through ``data_and_label_getter`` (default: the batch is ``(data, labels)``), the data to
    ``data_device`` (and ``dtype``), then ``model`` in eval mode under ``no_grad``; the model's
    train/eval mode is restored afterwards (PML leaves it in eval mode). Embeddings are L2
    normalised when ``normalize_embeddings``. Labels of shape (B, levels) give the column
    ``label_hierarchy_level``. Both outputs lie on ``data_device``.
    """
    getter: Callable[[Any], Any] = s["data_and_label_getter"] or (lambda batch: batch)
    loader = DataLoader(
        dataset, batch_size=s["batch_size"], shuffle=False, num_workers=s["dataloader_num_workers"]
    )
    was_training = model.training
    model.eval()
    embeddings, labels = [], []
    try:
        with torch.no_grad():
            for batch in loader:
                data, label = getter(batch)
                data = data.to(s["data_device"])
                if s["dtype"] is not None:
                    data = data.to(s["dtype"])
                embeddings.append(model(data))
                label = torch.as_tensor(label)
                labels.append(label[:, s["label_hierarchy_level"]] if label.ndim == 2 else label)
    finally:
        model.train(was_training)
    emb = torch.cat(embeddings)
    if s["normalize_embeddings"]:
        emb = torch.nn.functional.normalize(emb, p=2, dim=1)
    return emb, torch.cat(labels).to(s["data_device"])


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
        **tester_kwargs: PML ``BaseTester`` options for computing the embeddings (see
            ``_get_all_embeddings``): ``normalize_embeddings``, ``batch_size``,
            ``dataloader_num_workers``, ``data_device``, ``dtype``, ``data_and_label_getter``,
            ``label_hierarchy_level``; the other BaseTester options are accepted and unused;
            ``pca`` must be None; anything else is a ``TypeError``.

    Differences from PML: no ``self.tester`` attribute (the embeddings come from a local
    helper until the testers exist); the model's train/eval mode is restored; randomness from a
    ``torch.Generator``.
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
        self._settings = _tester_settings(owner, tester_kwargs)
        self.device = self._settings["data_device"]
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

    def __iter__(self) -> Iterator[int]:
        indices = self._subset()
        data = self.dataset if self.subset_size is None else Subset(self.dataset, indices.tolist())
        embeddings, labels = _get_all_embeddings(self.model, data, self._settings)
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
