"""Distance and similarity matrices between query rows and reference rows.

Every ``*_matrix`` takes ``x: Tensor[N, D]``, ``y: Tensor[M, D]`` and returns ``Tensor[N, M]``
in the input dtype; every ``*_pairwise`` takes two ``Tensor[N, D]`` and returns ``Tensor[N]``
(row i against row i).
"""

from __future__ import annotations

import torch

from .._types import Tensor
from ._dtype import upcast


def lp_distance_matrix(x: Tensor, y: Tensor, p: float = 2) -> Tensor:
    """``d_ij = ||x_i - y_j||_p``; half inputs run in float32 (cdist has no half kernel)."""
    return torch.cdist(upcast(x), upcast(y), p=p).to(x.dtype)


def lp_pairwise(x: Tensor, y: Tensor, p: float = 2) -> Tensor:
    """``d_i = ||x_i - y_i + eps||_p`` (torch.nn.functional.pairwise_distance)."""
    return torch.nn.functional.pairwise_distance(x, y, p=p)


def dot_product_matrix(x: Tensor, y: Tensor) -> Tensor:
    """``s_ij = <x_i, y_j>``."""
    return x @ y.transpose(0, 1)


def dot_product_pairwise(x: Tensor, y: Tensor) -> Tensor:
    """``s_i = <x_i, y_i>``."""
    return (x * y).sum(dim=1)


def snr_distance_matrix(x: Tensor, y: Tensor) -> Tensor:
    """Signal-to-noise-ratio distance ``d_ij = Var(x_i - y_j) / Var(x_i)`` (unbiased, over D).

    Yuan et al., "Signal-to-Noise Ratio: A Robust Distance Metric for Deep Metric Learning",
    CVPR 2019, https://arxiv.org/abs/1904.02616 (eq. 2).

    ``Var(x - y) = ||xc - yc||^2 / (D - 1)`` with ``xc``, ``yc`` the row-centred vectors, so the
    matrix needs one GEMM instead of an ``N x M x D`` difference tensor.
    """
    # The GEMM form cancels for near-identical rows: float32 inputs accumulate in float64.
    work = torch.float64 if x.dtype == torch.float32 else upcast(x).dtype
    xu, yu = x.to(work), y.to(work)
    xc = xu - xu.mean(dim=1, keepdim=True)
    yc = yu - yu.mean(dim=1, keepdim=True)
    sq = (xc * xc).sum(1, keepdim=True) + (yc * yc).sum(1) - 2 * (xc @ yc.transpose(0, 1))
    noise_var = sq.clamp_min(0) / (x.shape[1] - 1)
    return (noise_var / torch.var(xu, dim=1, keepdim=True)).to(x.dtype)


def snr_pairwise(x: Tensor, y: Tensor) -> Tensor:
    """``d_i = Var(x_i - y_i) / Var(x_i)``."""
    return torch.var(x - y, dim=1) / torch.var(x, dim=1)
