"""Per-row terms of the embedding / class-weight regularizers.

Every function takes tensors (rows, norms or a similarity matrix) and keyword-only
hyperparameters, and returns the **unreduced** terms in the input dtype; the reducer of the
``deepmetric.regularizers`` class turns them into a scalar. Memory stays at ``N x N`` at most
(``SparseCentersRegularizer`` only builds ``C`` blocks of ``K x K``). Half-precision inputs are
upcast to float32 where squares, sums or square roots would overflow or lose the gradient.
"""

from __future__ import annotations

import torch

from .._types import Tensor
from ._dtype import accumulation_dtype, upcast


def lp_norm_terms(x: Tensor, *, p: float = 2, power: float = 1) -> Tensor:
    """``r_i = ||x_i||_p ** power`` for ``x: Tensor[N, D]`` -> ``Tensor[N]``.

    The norm is accumulated in float32 for half inputs (squares of values above ~256 overflow
    float16). ``p`` is any order accepted by :func:`torch.linalg.vector_norm`.
    """
    norms = torch.linalg.vector_norm(x, ord=p, dim=1, dtype=accumulation_dtype(x.dtype))
    if power != 1:
        norms = norms**power
    return norms.to(x.dtype)


def center_invariant_terms(norms: Tensor) -> Tensor:
    """``r_i = (||w_i||^2 - mean_k ||w_k||^2)^2 / 4`` from ``norms: Tensor[C]`` -> ``Tensor[C]``.

    Wu et al., "Deep Face Recognition with Center Invariant Loss", ACM MM Thematic Workshops
    2017 (the center invariant term, with its 1/4 factor). ``norms`` are the norms of
    the class vectors ``w_i`` (not squared). Computed in float32 for half inputs.
    """
    sq = upcast(norms) ** 2
    deviation = sq - sq.mean()
    return (deviation**2 / 4).to(norms.dtype)


def regular_face_terms(sim: Tensor) -> Tensor:
    """``r_i = max_{j != i} s_ij`` for a similarity matrix ``sim: Tensor[C, C]`` -> ``Tensor[C]``.

    Zhao, Xu, Cheng, "RegularFace: Deep Face Recognition via Exclusive Regularization",
    CVPR 2019 (the exclusive regularization term): each class is pushed away from its nearest
    other class. The nearest neighbour ``j*(i)`` is chosen without gradient; the gradient flows
    through ``s_{i, j*(i)}`` only (the sub-gradient of the max). With a single row there is no
    ``j != i`` and the row's own similarity is returned, as PML does.
    """
    with torch.no_grad():
        masked = sim.detach().clone()
        masked.fill_diagonal_(torch.finfo(sim.dtype).min)
        nearest = masked.argmax(dim=1, keepdim=True)  # Tensor[C, 1]
    return sim.gather(1, nearest).squeeze(1)


def within_class_similarities(centers: Tensor, *, centers_per_class: int) -> Tensor:
    """``Tensor[C*K, D]`` of (already normalised) centres -> ``Tensor[C, K, K]`` Gram blocks.

    Rows ``c*K .. c*K + K - 1`` are the ``K = centers_per_class`` centres of class ``c``; block
    ``c`` holds their pairwise inner products. Only ``C*K*K`` values, never the full
    ``CK x CK`` matrix.
    """
    num_rows, dim = centers.shape
    blocks = centers.reshape(num_rows // centers_per_class, centers_per_class, dim)
    return blocks @ blocks.transpose(1, 2)


def center_class_masks(num_classes: int, centers_per_class: int) -> tuple[Tensor, Tensor]:
    """``(same_class, diff_class)`` boolean ``Tensor[C*K, C*K]`` masks over the centres.

    ``same_class[i, j]`` marks ``i < j`` within one class block (each within-class pair once);
    ``diff_class[i, j]`` marks centres of different classes (both orders).
    """
    class_of = torch.arange(num_classes * centers_per_class) // centers_per_class
    diff_class = class_of[:, None] != class_of[None, :]
    same_class = torch.triu(~diff_class, diagonal=1)
    return same_class, diff_class


def sparse_centers_terms(block_sim: Tensor) -> Tensor:
    """``r_{c,t,s} = sqrt(2 - 2 s_{c,t,s})`` for ``t < s`` from ``block_sim: Tensor[C, K, K]``.

    Qian et al., "SoftTriple Loss: Deep Metric Learning Without Triplet Sampling", ICCV 2019,
    https://arxiv.org/abs/1909.05235 (the centre-merging regularizer): for unit-norm centres
    ``w_c^t, w_c^s`` of one class, ``||w_c^t - w_c^s||_2 = sqrt(2 - 2 <w_c^t, w_c^s>)``.
    Returns the ``C*K*(K-1)/2`` upper-triangle terms in class-major, row-major order.

    ``2 s`` is clamped at 2 (rounding can push a cosine above 1). Coincident centres
    (``s = 1``) get the sub-gradient 0 instead of the infinite derivative of ``sqrt`` at 0.
    Computed in float32 for half inputs.
    """
    k = block_sim.shape[-1]
    rows, cols = torch.triu_indices(k, k, offset=1, device=block_sim.device)
    s = upcast(block_sim[:, rows, cols]).reshape(-1)
    gap = 2 - torch.clamp(2 * s, max=2)
    tiny = torch.finfo(gap.dtype).tiny
    safe = torch.sqrt(gap.clamp_min(tiny))
    return torch.where(gap > 0, safe, torch.zeros_like(safe)).to(block_sim.dtype)


def zero_mean_terms(x: Tensor) -> Tensor:
    """``r_i = |sum_j x_ij|`` for ``x: Tensor[N, D]`` -> ``Tensor[N]``.

    Yuan et al., "Signal-to-Noise Ratio: A Robust Distance Metric for Deep Metric Learning",
    CVPR 2019, https://arxiv.org/abs/1904.02616 (the zero-mean regularization term): keeps each
    embedding's components centred at zero, the assumption behind the SNR distance. The sum
    is accumulated in float32 for half inputs.
    """
    return x.sum(dim=1, dtype=accumulation_dtype(x.dtype)).abs().to(x.dtype)
