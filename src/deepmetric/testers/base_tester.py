"""The tester template: embed every split of a dataset dict, then score queries against references.

A tester is a plain Python object (not an ``nn.Module``). :meth:`BaseTester.test` embeds each split
once with ``trunk_model`` (and ``embedder_model``), optionally standardises + PCA-projects and
L2-normalises the embeddings, optionally hands them to a ``visualizer`` (anything with
``fit_transform``), then lets the subclass fill ``all_accuracies[query_split]`` with keys
``"<metric>_level<L>"`` (plus ``"epoch"`` and ``"AVERAGE_<metric>"`` when several label levels are
evaluated).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._logging import get_logger
from .._types import Tensor
from .._validation import fail
from ..data_utils import get_eval_dataloader, return_input
from ..distributed.ddp import unwrap_model
from ..distributed.runtime import broadcast_object, is_main_process, rank, world_size
from ..functional.labels import LabelMapper, process_label
from ..functional.tensors import (
    pca_project,
    to_device,
    to_numpy,
    torch_standard_scaler,
    use_cuda_if_available,
)
from ..metrics.accuracy_calculator import AccuracyCalculator
from .sharding import gather_to_main, shard_dataset
from .splits import SplitSpec, check_label_level, check_splits, is_int


class BaseTester:
    """Embeds the splits of a dataset dict and computes retrieval accuracies per query split.

    Args:
        normalize_embeddings: L2-normalise the embeddings before evaluation.
        use_trunk_output: evaluate the trunk's output and ignore the embedder.
        batch_size: evaluation batch size.
        dataloader_num_workers: ``num_workers`` of the evaluation ``DataLoader``.
        pca: project the (standardised) embeddings on this many principal components, or None.
        data_device: device the inputs and embeddings live on (None: cuda if available, else cpu).
        dtype: dtype the inputs are cast to (None: unchanged).
        data_and_label_getter: maps a dataloader batch to ``(data, labels)`` (None: identity).
        label_hierarchy_level: label column(s) to evaluate: an int, a list of ints, or ``"all"``.
        end_of_testing_hook: called as ``hook(tester)`` at the end of :meth:`test`.
        dataset_labels: every label of the dataset; needed by ``set_min_label_to_zero``.
        set_min_label_to_zero: map labels to ``0 .. C-1`` (per level) with a ``LabelMapper``.
        accuracy_calculator: an ``AccuracyCalculator`` (None: ``AccuracyCalculator()``).
        visualizer: any object with ``fit_transform(embeddings)`` (e.g. ``umap.UMAP()``).
        visualizer_hook: called as ``hook(visualizer, reduced, labels, split_name, keyname, epoch)``
            once per split and evaluated label level.
        distributed: under ``torch.distributed`` (world size > 1), every rank embeds its own
            block of each split, rank 0 gathers the embeddings and computes the metrics (and
            runs the visualizer), and every rank receives the same ``all_accuracies``. Every
            rank must then call :meth:`test`. Without a process group it changes nothing.
    """

    def __init__(
        self,
        normalize_embeddings: bool = True,
        use_trunk_output: bool = False,
        batch_size: int = 32,
        dataloader_num_workers: int = 2,
        pca: int | None = None,
        data_device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        data_and_label_getter: Callable[[Any], Any] | None = None,
        label_hierarchy_level: int | list[int] | str = 0,
        end_of_testing_hook: Callable[[BaseTester], Any] | None = None,
        dataset_labels: Any = None,
        set_min_label_to_zero: bool = False,
        accuracy_calculator: Any = None,
        visualizer: Any = None,
        visualizer_hook: Callable[..., Any] | None = None,
        distributed: bool = False,
    ) -> None:
        owner = type(self).__name__
        self.normalize_embeddings = normalize_embeddings
        self.use_trunk_output = use_trunk_output
        if not is_int(batch_size) or int(batch_size) < 1:
            fail(owner, "`batch_size` to be an int >= 1", repr(batch_size))
        self.batch_size = int(batch_size)
        if not is_int(dataloader_num_workers) or int(dataloader_num_workers) < 0:
            fail(owner, "`dataloader_num_workers` to be an int >= 0", repr(dataloader_num_workers))
        self.dataloader_num_workers = int(dataloader_num_workers)
        if pca is not None and (not is_int(pca) or int(pca) < 1):
            fail(owner, "`pca` to be None or an int >= 1", repr(pca))
        self.pca = None if pca is None else int(pca)
        self.data_device = use_cuda_if_available() if data_device is None else data_device
        if dtype is not None and not isinstance(dtype, torch.dtype):
            fail(owner, "`dtype` to be None or a torch.dtype", repr(dtype), exc=TypeError)
        self.dtype = dtype
        for name, fn in (
            ("data_and_label_getter", data_and_label_getter),
            ("end_of_testing_hook", end_of_testing_hook),
            ("visualizer_hook", visualizer_hook),
        ):
            if fn is not None and not callable(fn):
                fail(owner, f"`{name}` to be callable or None", type(fn).__name__, exc=TypeError)
        self.data_and_label_getter = (
            return_input if data_and_label_getter is None else data_and_label_getter
        )
        check_label_level(owner, label_hierarchy_level)
        self.label_hierarchy_level = label_hierarchy_level
        self.end_of_testing_hook = end_of_testing_hook
        self.dataset_labels = dataset_labels
        self.set_min_label_to_zero = set_min_label_to_zero
        if accuracy_calculator is not None and not hasattr(accuracy_calculator, "get_accuracy"):
            fail(
                owner,
                "`accuracy_calculator` with a `get_accuracy` method (an AccuracyCalculator)",
                type(accuracy_calculator).__name__,
                exc=TypeError,
            )
        self.accuracy_calculator = accuracy_calculator
        if visualizer is not None and not callable(getattr(visualizer, "fit_transform", None)):
            fail(
                owner,
                "`visualizer` with a `fit_transform` method (e.g. umap.UMAP())",
                type(visualizer).__name__,
                exc=TypeError,
            )
        self.visualizer = visualizer
        self.original_visualizer_hook = visualizer_hook
        if not isinstance(distributed, bool):
            fail(owner, "`distributed` to be a bool", repr(distributed), exc=TypeError)
        self.distributed = distributed
        self.reference_split_names: dict[str, list[str]] = {}
        self.label_levels: Sequence[int] = []
        self.initialize_label_mapper()
        self.initialize_accuracy_calculator()

    # ------------------------------------------------------------------ setup
    def initialize_label_mapper(self) -> None:
        self.label_mapper = LabelMapper(self.set_min_label_to_zero, self.dataset_labels).map

    def initialize_accuracy_calculator(self) -> None:
        if self.accuracy_calculator is None:
            self.accuracy_calculator = AccuracyCalculator()

    def visualizer_hook(self, *args: Any, **kwargs: Any) -> None:
        if self.original_visualizer_hook is not None:
            self.original_visualizer_hook(*args, **kwargs)

    # ------------------------------------------------------------------ naming
    def label_hierarchy_level_to_str(self, label_hierarchy_level: Any) -> str:
        if isinstance(label_hierarchy_level, (list, tuple)):
            return "_".join(str(x) for x in label_hierarchy_level)
        return str(label_hierarchy_level)

    def accuracies_keyname(
        self, metric: str, label_hierarchy_level: Any = 0, average: bool = False
    ) -> str:
        """``"AVERAGE_<metric>"`` or ``"<metric>_level<L>"``."""
        if average:
            return f"AVERAGE_{metric}"
        level = label_hierarchy_level
        if (level == "all" or isinstance(level, (list, tuple))) and len(self.label_levels) == 1:
            level = self.label_levels[0]
        return f"{metric}_level{self.label_hierarchy_level_to_str(level)}"

    def description_suffixes(self, base_name: str) -> str:
        """E.g. ``"accuracies_normalized_GlobalEmbeddingSpaceTester_level_0"``."""
        name = base_name
        if self.pca:
            name += f"_pca{self.pca}"
        if self.normalize_embeddings:
            name += "_normalized"
        if self.use_trunk_output:
            name += "_trunk"
        name += f"_{type(self).__name__}"
        name += f"_level_{self.label_hierarchy_level_to_str(self.label_hierarchy_level)}"
        describe = getattr(self.accuracy_calculator, "description", None)
        desc = describe() if callable(describe) else ""
        if desc:
            name += f"_{desc}"
        return name

    # ------------------------------------------------------------------ distributed
    def is_sharded(self) -> bool:
        """True when this tester splits the work between ``torch.distributed`` ranks."""
        return self.distributed and world_size() > 1

    def local_part(
        self, dataset: Any, trunk_model: Callable[..., Any], embedder_model: Callable[..., Any]
    ) -> tuple[Any, Callable[..., Any], Callable[..., Any]]:
        """This rank's block of ``dataset`` and the models to embed it with.

        Sharded, the models are taken out of their DDP wrappers: a DDP forward may broadcast
        buffers, a collective that ranks with one batch fewer would never join.
        """
        if not self.is_sharded():
            return dataset, trunk_model, embedder_model
        block = shard_dataset(dataset, rank(), world_size(), type(self).__name__)
        return block, unwrap_model(trunk_model), unwrap_model(embedder_model)

    def gather_embeddings(self, *tensors: Tensor) -> tuple[Tensor, ...] | None:
        """Sharded: every rank's rows on rank 0 (None on the others); else ``tensors``."""
        return gather_to_main(*tensors) if self.is_sharded() else tensors

    # ------------------------------------------------------------------ embeddings
    def get_eval_dataloader(self, dataset: Any, collate_fn: Callable[..., Any] | None) -> Any:
        return get_eval_dataloader(
            dataset, self.batch_size, self.dataloader_num_workers, collate_fn
        )

    def get_embeddings_for_eval(
        self, trunk_model: Callable[..., Any], embedder_model: Callable[..., Any], input_imgs: Any
    ) -> Tensor:
        if isinstance(input_imgs, torch.Tensor):
            input_imgs = to_device(input_imgs, device=self.data_device, dtype=self.dtype)
        trunk_output = trunk_model(input_imgs)
        if self.use_trunk_output:
            return trunk_output
        return embedder_model(trunk_output)

    def _split_batch(self, batch: Any) -> tuple[Any, Any]:
        got = self.data_and_label_getter(batch)
        if not isinstance(got, (list, tuple)) or len(got) != 2:
            fail(
                type(self).__name__,
                "each batch (after `data_and_label_getter`) to be (data, labels)",
                f"{type(got).__name__}"
                + (f" of length {len(got)}" if isinstance(got, (list, tuple)) else ""),
                "Pass data_and_label_getter=lambda batch: (data, labels).",
            )
        return got[0], got[1]

    def _labels_2d(self, labels: Any) -> Tensor:
        lab = process_label(labels, "all", self.label_mapper)
        if not isinstance(lab, torch.Tensor):
            lab = torch.as_tensor(np.asarray(lab))
        if lab.ndim == 1:
            lab = lab[:, None]
        if lab.ndim != 2:
            fail(type(self).__name__, "labels of shape (B,) or (B, levels)", str(tuple(lab.shape)))
        return lab

    def compute_all_embeddings(
        self, dataloader: Any, trunk_model: Callable[..., Any], embedder_model: Callable[..., Any]
    ) -> tuple[Tensor, Tensor]:
        embeddings, labels = [], []
        with torch.no_grad():
            for batch in dataloader:
                img, label = self._split_batch(batch)
                emb = self.get_embeddings_for_eval(trunk_model, embedder_model, img)
                embeddings.append(emb.to(self.data_device))
                labels.append(self._labels_2d(label).to(self.data_device))
        if not embeddings:
            fail(type(self).__name__, "a non-empty dataset", "a dataset with 0 items")
        return torch.cat(embeddings), torch.cat(labels)

    def maybe_normalize(self, embeddings: Tensor) -> Tensor:
        if self.pca:
            if self.pca > min(embeddings.shape):
                fail(
                    type(self).__name__,
                    f"`pca`={self.pca} <= min(N, D) of the embeddings",
                    f"embeddings of shape {tuple(embeddings.shape)}",
                )
            embeddings = pca_project(torch_standard_scaler(embeddings), self.pca)
        if self.normalize_embeddings:
            embeddings = F.normalize(embeddings)
        return embeddings

    def get_all_embeddings(
        self,
        dataset: Any,
        trunk_model: Callable[..., Any],
        embedder_model: Callable[..., Any] | None = None,
        collate_fn: Callable[..., Any] | None = None,
        eval: bool = True,
        return_as_numpy: bool = False,
    ) -> tuple[Any, Any]:
        """``(embeddings (N, D), labels (N, levels))``, tensors on ``data_device`` or numpy.

        With ``distributed=True`` under ``torch.distributed``, rank 0 gets the whole split and
        the other ranks ``(None, None)``.
        """
        if embedder_model is None:
            embedder_model = torch.nn.Identity()
        if eval:
            for model in (trunk_model, embedder_model):
                if isinstance(model, torch.nn.Module):
                    model.eval()
        dataset, trunk_model, embedder_model = self.local_part(dataset, trunk_model, embedder_model)
        loader = self.get_eval_dataloader(dataset, collate_fn)
        gathered = self.gather_embeddings(
            *self.compute_all_embeddings(loader, trunk_model, embedder_model)
        )
        if gathered is None:
            return None, None
        embeddings, labels = gathered
        embeddings = self.maybe_normalize(embeddings)
        if return_as_numpy:
            return to_numpy(embeddings), to_numpy(labels)
        return embeddings, labels

    def get_splits_to_compute_embeddings(
        self, dataset_dict: Mapping[str, Any], splits_to_eval: Sequence[SplitSpec]
    ) -> list[str]:
        needed = {q for q, _ in splits_to_eval} | {r for _, refs in splits_to_eval for r in refs}
        return [k for k in dataset_dict if k in needed]

    def get_all_embeddings_for_all_splits(
        self,
        dataset_dict: Mapping[str, Any],
        trunk_model: Callable[..., Any],
        embedder_model: Callable[..., Any],
        splits_to_compute_embeddings: Sequence[str],
        collate_fn: Callable[..., Any] | None,
    ) -> dict[str, tuple[Any, Any]]:
        return {
            split: self.get_all_embeddings(
                dataset_dict[split], trunk_model, embedder_model, collate_fn
            )
            for split in splits_to_compute_embeddings
        }

    # ------------------------------------------------------------------ evaluation pieces
    def maybe_visualize(self, embeddings_and_labels: Mapping[str, Any], epoch: int) -> None:
        if self.visualizer is None:
            return
        name = type(self.visualizer).__name__
        for split_name, (embeddings, labels) in embeddings_and_labels.items():
            reduced = self.visualizer.fit_transform(to_numpy(embeddings))
            labels_np = to_numpy(labels)
            for level in self.label_levels_to_evaluate(labels):
                keyname = self.accuracies_keyname(name, level)
                self.visualizer_hook(
                    self.visualizer, reduced, labels_np[:, level], split_name, keyname, epoch
                )

    def maybe_combine_splits(
        self, embeddings_and_labels: Mapping[str, Any], splits: Sequence[str]
    ) -> tuple[Tensor, Tensor]:
        embeddings = [embeddings_and_labels[s][0] for s in splits]
        labels = [embeddings_and_labels[s][1] for s in splits]
        return torch.cat(embeddings), torch.cat(labels)

    def set_reference_and_query(
        self,
        embeddings_and_labels: Mapping[str, Any],
        query_split_name: str,
        reference_split_names: Sequence[str],
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        query, query_labels = embeddings_and_labels[query_split_name]
        reference, reference_labels = self.maybe_combine_splits(
            embeddings_and_labels, reference_split_names
        )
        return query, query_labels, reference, reference_labels

    def label_levels_to_evaluate(self, query_labels: Any) -> Sequence[int]:
        available = query_labels.shape[1]
        level = self.label_hierarchy_level
        if level == "all":
            return range(available)
        levels = [int(x) for x in level] if isinstance(level, (list, tuple)) else [int(level)]
        if any(x >= available for x in levels):
            fail(
                type(self).__name__,
                f"`label_hierarchy_level` below the number of label columns ({available})",
                repr(level),
            )
        return levels

    def calculate_average_accuracies(
        self, accuracies: dict[str, Any], metrics: Sequence[str], label_levels: Sequence[int]
    ) -> None:
        for metric in metrics:
            values = [accuracies[self.accuracies_keyname(metric, level)] for level in label_levels]
            accuracies[self.accuracies_keyname(metric, average=True)] = float(np.mean(values))

    def ref_includes_query(
        self, query_split_name: str, reference_split_names: Sequence[str]
    ) -> bool:
        return query_split_name in reference_split_names

    def do_knn_and_accuracies(
        self,
        accuracies: dict[str, Any],
        embeddings_and_labels: Mapping[str, Any],
        query_split_name: str,
        reference_split_names: Sequence[str],
    ) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ entry point
    def test(
        self,
        dataset_dict: Mapping[str, Any],
        epoch: int,
        trunk_model: Callable[..., Any],
        embedder_model: Callable[..., Any] | None = None,
        splits_to_eval: Sequence[SplitSpec] | None = None,
        collate_fn: Callable[..., Any] | None = None,
    ) -> defaultdict[str, dict[str, Any]]:
        """Evaluate each ``(query_split, [reference_splits])``; returns ``all_accuracies``."""
        owner = type(self).__name__
        if not isinstance(dataset_dict, Mapping) or not dataset_dict:
            fail(
                owner,
                "`dataset_dict` to be a non-empty dict {split_name: dataset}",
                type(dataset_dict).__name__,
                exc=TypeError,
            )
        if not callable(trunk_model):
            fail(owner, "a callable `trunk_model`", type(trunk_model).__name__, exc=TypeError)
        if embedder_model is None:
            embedder_model = torch.nn.Identity()
        for model in (trunk_model, embedder_model):
            if isinstance(model, torch.nn.Module):
                model.eval()
        splits = check_splits(owner, dataset_dict, splits_to_eval)
        needed = self.get_splits_to_compute_embeddings(dataset_dict, splits)
        self.embeddings_and_labels = self.get_all_embeddings_for_all_splits(
            dataset_dict, trunk_model, embedder_model, needed, collate_fn
        )
        evaluates_here = not self.is_sharded() or is_main_process()
        if evaluates_here:
            self.maybe_visualize(self.embeddings_and_labels, epoch)
        self.all_accuracies: defaultdict[str, dict[str, Any]] = defaultdict(dict)
        for query, refs in splits:
            self.all_accuracies[query]["epoch"] = epoch
            self.reference_split_names[query] = refs
            if evaluates_here:
                self.do_knn_and_accuracies(
                    self.all_accuracies[query], self.embeddings_and_labels, query, refs
                )
        if self.is_sharded():
            self.all_accuracies, self.label_levels = broadcast_object(
                (self.all_accuracies, self.label_levels)
            )
        if self.end_of_testing_hook is not None:
            self.end_of_testing_hook(self)
        elif is_main_process():
            get_logger().info(dict(self.all_accuracies))
        del self.embeddings_and_labels
        return self.all_accuracies
