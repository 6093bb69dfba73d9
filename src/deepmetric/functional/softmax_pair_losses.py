"""Softmax losses over a batch similarity matrix: each row must pick out its own column.

* N-pair loss -- Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss Objective",
  NeurIPS 2016, https://papers.nips.cc/paper/6200 (eq. 3, the softmax form): with one positive
  pair ``(a_i, p_i)`` per class, ``L_i = -log softmax_j(s(a_i, p_j))[i]``.
* Instance loss -- Zheng et al., "Dual-Path Convolutional Image-Text Embeddings with Instance
  Loss", ACM TOMM 2020, https://arxiv.org/abs/1711.05535 (sec. 3.2), in pytorch-metric-learning's
  batch form: ``L_i = -log softmax_j(gamma * cos(x_i, x_j))[t_i]`` where ``t_i`` is the rank of
  ``x_i``'s label among the distinct labels of the batch.

Both are a cross-entropy over rows of a logit matrix; float16/bfloat16 run in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._types import Tensor
from ._dtype import upcast

__all__ = ["instance_terms", "npairs_terms", "row_cross_entropy"]


def row_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """``-log softmax(logits[i])[targets[i]]`` per row.

    Args:
        logits: ``Tensor[K, C]``; targets: ``LongTensor[K]`` column indices.

    Returns:
        ``Tensor[K]`` in ``logits``' dtype.
    """
    return F.cross_entropy(upcast(logits), targets, reduction="none").to(logits.dtype)


def npairs_terms(sim: Tensor) -> Tensor:
    """N-pair loss per pair from ``sim: Tensor[K, K]``, ``sim[i, j] = s(a_i, p_j)`` (larger =
    closer; negate distances first). Returns ``Tensor[K]``."""
    targets = torch.arange(sim.shape[0], device=sim.device)
    return row_cross_entropy(sim, targets)


def instance_terms(sim: Tensor, labels: Tensor, *, gamma: float) -> Tensor:
    """Instance loss per sample.

    Args:
        sim: ``Tensor[N, N]`` cosine similarities of the batch with itself.
        labels: ``Tensor[N]``; sample ``i``'s target column is the rank of ``labels[i]`` among
            the sorted distinct labels.
        gamma: logit scale.

    Returns:
        ``Tensor[N]``.
    """
    _, targets = torch.unique(labels, return_inverse=True)
    return row_cross_entropy(upcast(sim) * gamma, targets).to(sim.dtype)
