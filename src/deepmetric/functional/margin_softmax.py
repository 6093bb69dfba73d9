"""Margin-based softmax kernels: target-class cosine transforms, logits, weighted cross-entropy.

Every classification loss with one learnable vector per class (``W: Tensor[D, C]``) follows one
recipe. With ``cos: Tensor[N, C]`` the cosine between each embedding and each class vector, the
target class ``y_i`` gets a harder logit ``psi(cos_{i, y_i})``, the logits are scaled, and the
per-sample cross-entropy is weighted by the miner's per-sample weights::

    logits_ij = s_ij * (psi(cos_ij) if j == y_i else cos_ij)
    L_i       = w_i * CE(logits_i, y_i)

The target transforms ``psi`` (``theta = acos(cos)``, ``m`` the margin):

* Large-margin softmax / SphereFace (integer ``m``): ``psi = (-1)^k cos(m theta) - 2k`` with
  ``k = floor(m theta / pi)``. Liu et al., "Large-Margin Softmax Loss for Convolutional Neural
  Networks", ICML 2016, https://arxiv.org/abs/1612.02295 (eq. 6); Liu et al., "SphereFace: Deep
  Hypersphere Embedding for Face Recognition", CVPR 2017, https://arxiv.org/abs/1704.08063
  (eq. 7).
* ArcFace (``m`` in radians): ``psi = cos(theta + m)`` while ``theta <= pi - m``, else the
  monotone continuation ``cos(theta) - m sin(m)``. Deng et al., "ArcFace: Additive Angular Margin
  Loss for Deep Face Recognition", CVPR 2019, https://arxiv.org/abs/1801.07698 (eq. 3).
* CosFace: ``psi = cos(theta) - m``. Wang et al., "CosFace: Large Margin Cosine Loss for Deep
  Face Recognition", CVPR 2018, https://arxiv.org/abs/1801.09414 (eq. 4).

Numerics. Nothing here calls ``acos`` on a path that carries gradient: ``cos(m theta)`` is the
Chebyshev polynomial ``T_m(cos)`` and ``cos(theta + m) = cos cos(m) - sin(theta) sin(m)`` with
``sin(theta) = sqrt(max(1 - cos^2, eps))``, so gradients stay finite at ``cos = +-1`` (where
``d acos / d cos`` is infinite). float16/bfloat16 inputs are computed in float32 and returned in
the input dtype; :func:`weighted_cross_entropy` always works in at least float32.

Memory: ``O(N * C)`` (the logits); nothing larger is built.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import FunctionCtx, once_differentiable

from .._types import Tensor
from ._dtype import upcast

__all__ = [
    "arcface_target",
    "cos_multiple_angle",
    "cosface_target",
    "large_margin_target",
    "margin_cross_entropy",
    "max_over_sub_centers",
    "p2sgrad_terms",
    "replace_target_logits",
    "sub_center_outliers",
    "target_values",
    "weighted_cross_entropy",
]


def target_values(mat: Tensor, labels: Tensor) -> Tensor:
    """``mat[i, labels[i]]`` for ``mat: Tensor[N, C]`` -> ``Tensor[N]``."""
    return mat.gather(1, labels[:, None]).squeeze(1)


def replace_target_logits(logits: Tensor, labels: Tensor, target: Tensor) -> Tensor:
    """A copy of ``logits: Tensor[N, C]`` with entry ``(i, labels[i])`` set to ``target[i]``.

    The gradient w.r.t. ``logits`` is zero at the target entries (they were replaced).
    """
    return logits.scatter(1, labels[:, None], target[:, None].to(logits.dtype))


def weighted_cross_entropy(logits: Tensor, labels: Tensor, weights: Tensor | None = None) -> Tensor:
    """``L_i = w_i * (logsumexp_j logits_ij - logits_{i, y_i})`` -> ``Tensor[N]``.

    Args:
        logits: ``Tensor[N, C]``; float16/bfloat16 are computed in float32.
        labels: ``LongTensor[N]`` in ``[0, C)``.
        weights: ``Tensor[N]`` per-sample weights (None: all ones).

    Returns:
        ``Tensor[N]`` in ``logits``' (upcast) dtype.
    """
    work = upcast(logits)
    losses = F.cross_entropy(work, labels, reduction="none")
    return losses if weights is None else losses * weights.to(work.dtype)


class _MarginCrossEntropy(torch.autograd.Function):
    """Cross-entropy over ``scale * cos`` with the target entries replaced by ``scale * target``.

    Fused: the forward keeps one ``N x C`` buffer (the shifted exponentials) and the backward
    writes the gradient in one pass, where autograd through scatter / mul / log_softmax / nll
    would make about a dozen passes and keep several ``N x C`` tensors.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx, cos: Tensor, labels: Tensor, target: Tensor, scale: float
    ) -> Tensor:
        col = labels[:, None]
        target = target.to(cos.dtype)
        # the row maximum of the logits (target included), from the unscaled cosines
        if scale >= 0:
            shift = torch.maximum(cos.amax(dim=1), target) * scale  # [N]
        else:
            shift = torch.minimum(cos.amin(dim=1), target) * scale
        z = torch.add(-shift[:, None], cos, alpha=scale)  # [N, C] scaled logits - shift
        z.scatter_(1, col, (target * scale - shift)[:, None])
        z_target = z.gather(1, col).squeeze(1)  # [N]
        z.exp_()
        total = z.sum(dim=1)  # [N], >= 1
        ctx.save_for_backward(z, total, labels)
        ctx.scale = scale  # type: ignore[attr-defined]
        return torch.log(total) - z_target

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        exp_z, total, labels = ctx.saved_tensors  # type: ignore[attr-defined]
        scale = ctx.scale  # type: ignore[attr-defined]
        col = labels[:, None]
        g = grad.to(exp_z.dtype) * scale
        grad_cos = exp_z * (g / total)[:, None]  # softmax * g * scale
        grad_target = grad_cos.gather(1, col).squeeze(1) - g
        grad_cos.scatter_(1, col, 0)
        return grad_cos, None, grad_target, None


def margin_cross_entropy(
    cos: Tensor, labels: Tensor, target: Tensor, *, scale: float, weights: Tensor | None = None
) -> Tensor:
    """``L_i = w_i * CE(scale * cos_i with cos_{i, y_i} replaced by target_i, y_i)``, ``Tensor[N]``.

    Equal to ``weighted_cross_entropy(scale * replace_target_logits(cos, labels, target), ...)``
    (ArcFace / CosFace logits) in about half the time and memory.

    Args:
        cos: ``Tensor[N, C]``; float16/bfloat16 are computed in float32.
        labels: ``LongTensor[N]`` in ``[0, C)``.
        target: ``Tensor[N]`` the margin-modified target cosines.
        scale: multiplies every logit.
        weights: ``Tensor[N]`` per-sample weights (None: all ones).

    Returns:
        ``Tensor[N]`` in ``cos``' (upcast) dtype.
    """
    work = upcast(cos)
    losses = _MarginCrossEntropy.apply(work, labels, target.to(work.dtype), float(scale))
    return losses if weights is None else losses * weights.to(work.dtype)


# ------------------------------------------------------------------ target transforms
def cos_multiple_angle(cos: Tensor, m: int) -> Tensor:
    """``cos(m * theta)`` from ``cos = cos(theta)``: the Chebyshev polynomial ``T_m(cos)``.

    Evaluated with ``T_0 = 1``, ``T_1 = c``, ``T_{k+1} = 2 c T_k - T_{k-1}``; its derivative
    ``m U_{m-1}(c)`` is finite everywhere (unlike the route through ``acos``).
    """
    if m < 0:
        raise ValueError(f"cos_multiple_angle: expected m >= 0, got {m}.")
    prev, curr = torch.ones_like(cos), cos
    if m == 0:
        return prev
    for _ in range(m - 1):
        prev, curr = curr, 2 * cos * curr - prev
    return curr


def large_margin_target(cos_t: Tensor, *, margin: int) -> Tensor:
    """``psi(theta) = (-1)^k cos(m theta) - 2k``, ``k = floor(theta / (pi / m))`` -> ``Tensor[N]``.

    L-Softmax eq. 6 / SphereFace eq. 7: monotone in ``theta`` on ``[0, pi]`` and equal to
    ``cos(m theta)`` on ``[0, pi / m]``. ``k`` carries no gradient.

    Args:
        cos_t: ``Tensor[N]`` cosine to the target class.
        margin: the integer angular multiplier ``m >= 1``.
    """
    work = upcast(cos_t)
    cos_m = cos_multiple_angle(work, margin)
    with torch.no_grad():
        theta = torch.acos(work.clamp(-1, 1))
        k = torch.floor(theta / (math.pi / margin))
        sign = 1 - 2 * torch.remainder(k, 2)
    return (sign * cos_m - 2 * k).to(cos_t.dtype)


def arcface_target(cos_t: Tensor, *, margin: float) -> Tensor:
    """``cos(theta + m)`` if ``theta <= pi - m`` else ``cos(theta) - m sin(m)`` -> ``Tensor[N]``.

    ``cos(theta + m)`` is evaluated as ``c cos(m) - sqrt(max(1 - c^2, eps)) sin(m)`` on the
    clamped cosine ``c`` (``eps`` the dtype's machine epsilon), which keeps both branches and
    their gradients finite at ``c = +-1``; ``theta <= pi - m`` is tested as
    ``c >= cos(pi - m)``, with no ``acos``.

    Args:
        cos_t: ``Tensor[N]`` cosine to the target class.
        margin: the additive angular margin ``m`` in **radians**.
    """
    c = upcast(cos_t).clamp(-1, 1)
    sin_t = (1 - c * c).clamp_min(torch.finfo(c.dtype).eps).sqrt()
    shifted = c * math.cos(margin) - sin_t * math.sin(margin)
    fallback = c - margin * math.sin(margin)
    limit = math.pi - margin
    # theta <= pi - m  <=>  c >= cos(pi - m); never when m > pi
    out = fallback if limit < 0 else torch.where(c >= math.cos(limit), shifted, fallback)
    return out.to(cos_t.dtype)


def cosface_target(cos_t: Tensor, *, margin: float) -> Tensor:
    """``cos(theta) - m`` (CosFace eq. 4) -> ``Tensor[N]``."""
    return cos_t - margin


# ------------------------------------------------------------------ sub-centers
def max_over_sub_centers(cos: Tensor, sub_centers: int) -> Tensor:
    """``cos: Tensor[N, C * K]`` (column ``c * K + k``) -> ``Tensor[N, C]``, max over ``k``.

    Deng et al., "Sub-center ArcFace: Boosting Face Recognition by Large-scale Noisy Web Faces",
    ECCV 2020, https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/123560715.pdf (eq. 2).
    """
    n = cos.shape[0]
    return cos.view(n, -1, sub_centers).amax(dim=2)


def sub_center_outliers(
    cos: Tensor, labels: Tensor, *, sub_centers: int, cos_threshold: float
) -> tuple[Tensor, Tensor]:
    """Samples far from their class's dominant sub-center.

    For each class present in ``labels``, the dominant sub-center is the one that is nearest
    (largest cosine) to most of the class's samples (ties: the lowest index). A sample is an
    outlier when its cosine to its class's dominant sub-center is below ``cos_threshold``.

    Args:
        cos: ``Tensor[N, C * K]`` cosines to every sub-center (column ``c * K + k``).
        labels: ``LongTensor[N]`` in ``[0, C)``.
        sub_centers: ``K``.
        cos_threshold: the cosine of the angle threshold.

    Returns:
        ``(outliers, dominant)``: ``LongTensor`` of outlier indices ordered by label, then index;
        ``LongTensor[C]`` dominant sub-center of each class (-1 for classes not in the batch).
    """
    n = cos.shape[0]
    per_class = cos.view(n, -1, sub_centers)  # [N, C, K]
    num_classes = per_class.shape[1]
    rows = torch.arange(n, device=cos.device)
    own = per_class[rows, labels]  # [N, K] cosines to the own class's sub-centers
    nearest = own.argmax(dim=1)  # [N]
    votes = torch.zeros(num_classes, sub_centers, dtype=torch.long, device=cos.device)
    votes.index_put_((labels, nearest), torch.ones_like(nearest), accumulate=True)
    dominant = torch.where(votes.sum(dim=1) > 0, votes.argmax(dim=1), -1)  # [C]
    to_dominant = own.gather(1, dominant[labels][:, None]).squeeze(1)  # [N]
    candidates = torch.nonzero(to_dominant < cos_threshold).squeeze(1)
    order = torch.argsort(labels[candidates], stable=True)
    return candidates[order], dominant


# ------------------------------------------------------------------ P2SGrad
def p2sgrad_terms(embeddings: Tensor, weight: Tensor, labels: Tensor) -> Tensor:
    """``(cos_ij - 1[j = y_i])^2`` with ``cos_ij = clamp(x_i . w_j / ||x_i||, -1, 1)``.

    Zhang et al., "P2SGrad: Refined Gradients for Optimizing Deep Face Models", CVPR 2019,
    https://arxiv.org/abs/1905.02479 (eq. 9-10: the gradient of this squared error is the
    P2SGrad update when the class vectors ``w_j`` have unit norm).

    Args:
        embeddings: ``Tensor[N, D]``.
        weight: ``Tensor[D, C]`` with unit-norm columns.
        labels: ``LongTensor[N]`` in ``[0, C)``.

    Returns:
        ``Tensor[N, C]`` squared errors, in the upcast dtype of ``embeddings`` and ``weight``.
    """
    work = torch.promote_types(upcast(embeddings).dtype, weight.dtype)
    x = F.normalize(embeddings.to(work), p=2, dim=1)
    cos = (x @ weight.to(work)).clamp(-1, 1)  # [N, C]
    target = torch.zeros_like(cos).scatter_(1, labels[:, None], 1.0)
    return (cos - target) ** 2
