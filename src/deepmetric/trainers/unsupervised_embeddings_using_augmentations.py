"""``UnsupervisedEmbeddingsUsingAugmentations`` (PML 1.x): self-supervised training in which
every augmentation of the same source item shares a label."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .._validation import fail
from .metric_loss_only import MetricLossOnly


def _default_setter(batch: Any, data: torch.Tensor, labels: torch.Tensor) -> Any:
    return data, labels


class UnsupervisedEmbeddingsUsingAugmentations(MetricLossOnly):
    """``UnsupervisedEmbeddingsUsingAugmentations(transforms, data_and_label_setter=None, *args,
    **kwargs)``: each item of a batch is passed through every transform in ``transforms``; the
    augmented copies of item ``i`` get label ``i`` (dataset labels are ignored).
    ``data_and_label_setter(original_items, data, labels)`` builds the batch that
    ``data_and_label_getter`` then reads (default: ``(data, labels)``)."""

    def __init__(
        self,
        transforms: Sequence[Callable[[Any], torch.Tensor]],
        data_and_label_setter: Callable[..., Any] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
            fail(
                "UnsupervisedEmbeddingsUsingAugmentations",
                "`transforms` to be a list of callables",
                type(transforms).__name__,
                exc=TypeError,
            )
        if len(transforms) < 2 or not all(callable(t) for t in transforms):
            fail(
                "UnsupervisedEmbeddingsUsingAugmentations",
                "`transforms` to hold at least 2 callables (positives need 2 views)",
                f"{len(transforms)} entries",
            )
        self.transforms = list(transforms)
        self.data_and_label_setter = data_and_label_setter or _default_setter
        super().__init__(*args, **kwargs)
        self.collate_fn = self.custom_collate_fn

    def custom_collate_fn(self, items: list[Any]) -> Any:
        views = []
        labels = []
        for i, item in enumerate(items):
            source = item[0] if isinstance(item, (tuple, list)) else item
            for t in self.transforms:
                views.append(torch.as_tensor(t(source)))
                labels.append(i)
        return self.data_and_label_setter(items, torch.stack(views), torch.tensor(labels))
