"""Plumbing shared by the losses that learn one vector per class (``W``, ``proxies``, ``fc``,
``weight``): argument checks, the compute dtype and device handling of those parameters."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch

from .. import _validation as V
from .._types import Tensor
from ..functional._dtype import accumulation_dtype


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """``value`` must be an integer (``int`` or a NumPy/torch integer, not bool) >= 1."""
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or isinstance(value, bool):
        V.fail(
            owner,
            f"`{name}` to be a positive int",
            f"{type(value).__name__} {value!r}",
            exc=TypeError,
        )
    if number < 1:
        V.fail(owner, f"`{name}` >= 1", repr(value))
    return number


def check_class_batch(
    owner: str,
    embeddings: Tensor,
    labels: Tensor | None,
    *,
    num_classes: int,
    embedding_size: int,
    size_name: str = "embedding_size",
) -> None:
    """Embeddings of the size the class vectors have; labels that index an existing class."""
    if embeddings.shape[1] != embedding_size:
        V.fail(
            owner,
            f"`embeddings` of shape (N, {embedding_size}) ({size_name}={embedding_size})",
            f"shape {tuple(embeddings.shape)}",
            f"Build the loss with {size_name}={embeddings.shape[1]}, or fix the model's output.",
        )
    if labels is None or labels.numel() == 0:
        return
    low, high = (int(v) for v in torch.aminmax(labels))
    if low < 0 or high >= num_classes:
        V.fail(
            owner,
            f"`labels` in [0, {num_classes}) (num_classes={num_classes})",
            f"labels in [{low}, {high}]",
            "Map the class ids to 0..num_classes-1, or build the loss with more classes.",
        )


def work_dtype(embeddings: Tensor, weight: Tensor) -> torch.dtype:
    """The dtype to compute in: float32 at least, float64 if either side is float64."""
    return torch.promote_types(accumulation_dtype(embeddings.dtype), weight.dtype)


def follow_device(param: torch.nn.Parameter, device: torch.device) -> None:
    """Move ``param`` (kept as the same Parameter object) to ``device`` if it is elsewhere.

    PML moves its class vectors to the embeddings' device on every call; doing the same keeps
    code that never called ``loss_fn.to(device)`` working. The dtype is never changed.
    """
    if param.device != device:
        param.data = param.data.to(device)
        if param.grad is not None:
            param.grad = param.grad.to(device)


def init_parameter(init_func: Callable[[Tensor], Any], param: torch.nn.Parameter) -> None:
    """Apply a ``weight_init_func`` (in-place, e.g. ``torch.nn.init.normal_``) to ``param``."""
    with torch.no_grad():
        init_func(param)
