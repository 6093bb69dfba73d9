"""Data helpers: datasets over tensors in memory and the training / evaluation ``DataLoader``s
(PML's ``common_functions`` data helpers)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from ._types import Tensor
from ._validation import fail

T = TypeVar("T")


class WholeBatchSampler(Sampler[list[int]]):
    """Base of the samplers whose items are whole batches of dataset indices.

    Give them to ``DataLoader(batch_sampler=...)``; the trainers do that themselves when one is
    passed as ``sampler=`` (as they do for ``torch.utils.data.BatchSampler``).
    """


class EmbeddingDataset(Dataset[tuple[Tensor, Tensor]]):
    """Item ``i`` is ``(embeddings[i], labels[i])``: feed precomputed embeddings to a tester."""

    def __init__(self, embeddings: Tensor, labels: Tensor) -> None:
        self.embeddings = embeddings
        self.labels = labels

    def __len__(self) -> int:
        return len(self.embeddings)

    def __getitem__(self, idx: int) -> tuple[Tensor, Tensor]:
        return self.embeddings[idx], self.labels[idx]


def make_train_loader(
    owner: str,
    dataset: Any,
    batch_size: int,
    sampler: Any,
    num_workers: int,
    collate_fn: Callable[..., Any] | None,
    allow_empty: bool,
) -> DataLoader[Any]:
    """``batch_sampler=sampler`` for samplers that yield whole batches; otherwise batches of
    ``batch_size`` (shuffled when there is no sampler), the last incomplete one dropped."""
    kwargs: dict[str, Any] = {"num_workers": num_workers, "collate_fn": collate_fn}
    if isinstance(sampler, (BatchSampler, WholeBatchSampler)):
        size = getattr(sampler, "batch_size", batch_size)
        if size != batch_size:
            fail(
                owner,
                f"the batch sampler's batch_size to equal the trainer's batch_size "
                f"({batch_size}): the sampler's batches are used as they come",
                f"{type(sampler).__name__} with batch_size={size}",
                "Pass the same batch_size to both (per rank, under torch.distributed).",
            )
        loader = DataLoader(dataset, batch_sampler=sampler, **kwargs)
    else:
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=True,
            shuffle=sampler is None,
            **kwargs,
        )
    if len(loader) == 0 and not allow_empty:
        fail(
            owner,
            "a dataset with at least `batch_size` items",
            f"{len(dataset)} items for batch_size={batch_size}",
        )
    return loader


def get_train_dataloader(
    dataset: Any,
    batch_size: int,
    sampler: Any,
    num_workers: int,
    collate_fn: Callable[..., Any] | None,
) -> DataLoader[Any]:
    """The trainers' loader: see :func:`make_train_loader`."""
    return make_train_loader(
        "get_train_dataloader",
        dataset,
        int(batch_size),
        sampler,
        num_workers,
        collate_fn,
        allow_empty=True,
    )


def get_eval_dataloader(
    dataset: Any, batch_size: int, num_workers: int, collate_fn: Callable[..., Any] | None
) -> DataLoader[Any]:
    """Batches in dataset order, the last one possibly smaller."""
    return DataLoader(
        dataset,
        batch_size=int(batch_size),
        shuffle=False,
        drop_last=False,
        num_workers=num_workers,
        collate_fn=collate_fn,
    )


def try_next_on_generator(gen: Iterator[T], iterable: Iterable[T]) -> tuple[Iterator[T], T]:
    """``(iterator, next item)``, starting a new pass over ``iterable`` when ``gen`` is done."""
    try:
        return gen, next(gen)
    except StopIteration:
        gen = iter(iterable)
        return gen, next(gen)


def return_input(x: T) -> T:
    """The identity (the default ``data_and_label_getter``)."""
    return x
