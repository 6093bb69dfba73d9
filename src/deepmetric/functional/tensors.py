"""Small tensor helpers: dtype limits, casts and moves, reshapes and random choice.

These are the tensor utilities PML keeps in ``utils.common_functions``; the shim re-exports them.
Randomness goes through an optional ``torch.Generator`` (PML's global ``NUMPY_RANDOM`` is not used).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from .. import _validation as V
from .._types import Tensor

_T = TypeVar("_T")


# ------------------------------------------------------------------ dtype limits
def pos_inf(dtype: torch.dtype) -> float:
    """The largest finite value of a floating ``dtype`` (a mask value used instead of ``inf``)."""
    return torch.finfo(dtype).max


def neg_inf(dtype: torch.dtype) -> float:
    """The most negative finite value of a floating ``dtype``."""
    return torch.finfo(dtype).min


def small_val(dtype: torch.dtype) -> float:
    """The smallest positive normal value of a floating ``dtype``."""
    return torch.finfo(dtype).tiny


# ------------------------------------------------------------------ conversion
def is_list_or_tuple(x: Any) -> bool:
    return isinstance(x, (list, tuple))


def numpy_to_torch(v: Any) -> Any:
    """``torch.from_numpy(v)``; what torch cannot take (non-arrays, string arrays) is returned
    unchanged."""
    try:
        return torch.from_numpy(v)
    except TypeError:
        return v


def to_numpy(v: Any) -> Any:
    """A tensor as a numpy array (detached, on the CPU); anything else is returned unchanged."""
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v


def _autocast_on(device: torch.device) -> bool:
    try:
        return torch.is_autocast_enabled(device.type)
    except TypeError:  # torch < 2.4 has no device argument
        if device.type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def to_dtype(x: Tensor, tensor: Tensor | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """Cast ``x`` to ``dtype`` (or to ``tensor``'s dtype); no cast while autocast is active on
    ``x``'s device, so mixed precision keeps its choice."""
    if dtype is None:
        if tensor is None:
            V.fail("to_dtype", "`tensor` or `dtype`", "neither", exc=TypeError)
        dtype = tensor.dtype
    if _autocast_on(x.device) or x.dtype == dtype:
        return x
    return x.to(dtype)


def to_device(
    x: Tensor,
    tensor: Tensor | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Move ``x`` to ``device`` (or to ``tensor``'s device), then optionally :func:`to_dtype`."""
    if device is None:
        if tensor is None:
            V.fail("to_device", "`tensor` or `device`", "neither", exc=TypeError)
        device = tensor.device
    x = x.to(device)
    return x if dtype is None else to_dtype(x, dtype=dtype)


def use_cuda_if_available() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ------------------------------------------------------------------ shapes
def torch_arange_from_size(input: Tensor, size_dim: int = 0) -> Tensor:
    """``arange(input.size(size_dim))`` on ``input``'s device."""
    return torch.arange(input.size(size_dim), device=input.device)


def unslice_by_n(input_tensors: Sequence[Tensor]) -> Tensor:
    """Interleave the rows of n equally long tensors: row ``i`` of tensor ``k`` lands at ``i*n + k``
    (the inverse of slicing with ``x[k::n]``)."""
    return torch.stack(list(input_tensors), dim=1).flatten(0, 1)


def torch_all_from_dim_to_end(x: Tensor, dim: int) -> Tensor:
    """``all`` over every dimension from ``dim`` on: a tensor of shape ``x.shape[:dim]``."""
    return x.flatten(start_dim=dim).all(dim=-1)


def torch_standard_scaler(x: Tensor) -> Tensor:
    """Standardise each column: ``(x - mean) / std`` over dim 0, unbiased std."""
    return (x - x.mean(dim=0)) / x.std(dim=0)


def pca_project(x: Tensor, k: int) -> Tensor:
    """Project the rows of ``x`` (N, D) on their top-``k`` principal directions: (N, k).

    Principal directions are the right singular vectors of the column-centred ``x``; the sign of
    each direction is fixed so that its largest-magnitude entry is positive.
    """
    centred = x - x.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    top = vh[:k]
    pivot = top.abs().argmax(dim=1)
    signs = torch.sign(top.gather(1, pivot[:, None]))
    signs[signs == 0] = 1
    return centred @ (top * signs).T


# ------------------------------------------------------------------ random
def safe_random_choice(
    input_data: _T, size: int, *, generator: torch.Generator | None = None
) -> _T:
    """``size`` random elements of ``input_data`` (tensor or numpy array): without replacement
    when there are enough, with replacement otherwise."""
    n = len(input_data)  # type: ignore[arg-type]
    gen_device = generator.device if generator is not None else "cpu"
    if n >= size:
        idx = torch.randperm(n, generator=generator, device=gen_device)[:size]
    else:
        idx = torch.randint(n, (size,), generator=generator, device=gen_device)
    if isinstance(input_data, torch.Tensor):
        return input_data[idx.to(input_data.device)]  # type: ignore[return-value]
    return np.asarray(input_data)[idx.cpu().numpy()]  # type: ignore[return-value]


# ------------------------------------------------------------------ reference sets
def set_ref_emb(
    embeddings: Tensor, labels: Tensor | None, ref_emb: Tensor | None, ref_labels: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """``(ref_emb, ref_labels)``: the query set itself when ``ref_emb`` is None (the *same
    objects*: identity marks self-pairs downstream); else ``ref_labels`` moved to
    ``ref_emb``'s device and shape-checked."""
    if ref_emb is None:
        return embeddings, labels
    if ref_labels is not None:
        ref_labels = ref_labels.to(ref_emb.device)
    V.check_shapes(ref_emb, ref_labels, owner="set_ref_emb")
    return ref_emb, ref_labels
