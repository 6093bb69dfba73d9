"""Shared pieces of the distributed wrappers: gradient scaling and the single-process warning."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from .._types import Tensor


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies the incoming gradient by ``factor``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.factor, None


def scale_grad(x: Tensor, factor: float) -> Tensor:
    """``x`` unchanged in value, with its gradient multiplied by ``factor``."""
    if factor == 1 or not x.requires_grad:
        return x
    out: Tensor = _ScaleGrad.apply(x, factor)
    return out


def warn_single_process(owner: str, wrapped: str, initialized: bool) -> None:
    why = "world size is 1" if initialized else "torch.distributed is not initialized"
    warnings.warn(
        f"{owner}: {why}; running the wrapped {wrapped} on this process's batch only "
        "(no gather). Initialize a process group (e.g. launch with torchrun) to gather across "
        "ranks.",
        UserWarning,
        stacklevel=3,
    )
