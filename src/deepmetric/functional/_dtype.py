"""dtype helpers shared by kernels."""

from __future__ import annotations

import torch

from .._types import Tensor

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def upcast(t: Tensor) -> Tensor:
    """float16/bfloat16 -> float32, other dtypes unchanged (half kernels: missing, imprecise)."""
    return t.float() if t.dtype in _LOW_PRECISION else t


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype to accumulate sums of ``dtype`` values in."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype
