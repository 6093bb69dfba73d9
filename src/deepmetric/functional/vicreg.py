"""VICReg terms: invariance, variance and covariance of two batches of embeddings.

Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised
Learning", ICLR 2022, https://arxiv.org/abs/2105.04906 (section 2, eqs. 1-6).

With ``Z, Z'`` of shape ``[N, D]`` (two views of the same N inputs)::

    s(Z, Z')  = 1/N sum_i  1/D sum_d (z_id - z'_id)^2                      (invariance, eq. 5)
    v(Z)      = 1/D sum_d  max(0, 1 - sqrt(Var_d(Z) + eps))                  (variance, eq. 1)
    c(Z)      = 1/D sum_{d != e} C(Z)_de^2,  C(Z) = (Z - mean)^T (Z - mean) / (N - 1)   (eq. 4)

    L = lambda * s(Z, Z') + mu * (v(Z) + v(Z')) / 2 + nu * (c(Z) + c(Z'))   (eq. 6)

The paper's eq. 6 has no ``/ 2`` on the variance part; pytorch-metric-learning (whose numbers
deepmetric reproduces) halves each view's variance term, so :func:`variance_terms` does too.

``Var`` is the unbiased (N - 1) variance. The functions return the *unreduced* terms (per sample,
per dimension); the mean over them is left to the caller's reducer. float16/bfloat16 inputs are
computed in float32 (sums of D^2 squared covariances overflow half precision) and returned in the
input dtype. For ``2 N <= D`` the covariance term never builds the ``D x D`` matrix (see
:func:`covariance_term`).
"""

from __future__ import annotations

import torch

from .._types import Tensor
from ._dtype import upcast

__all__ = ["covariance_term", "invariance_terms", "variance_terms"]


def invariance_terms(embeddings: Tensor, ref_emb: Tensor) -> Tensor:
    """Mean squared difference of each pair of views: ``1/D sum_d (z_id - z'_id)^2``.

    Args:
        embeddings, ref_emb: ``Tensor[N, D]``; row ``i`` of both comes from input ``i``.

    Returns:
        ``Tensor[N]``.
    """
    diff = upcast(embeddings) - upcast(ref_emb)
    return diff.square().mean(dim=1).to(embeddings.dtype)


def variance_terms(embeddings: Tensor, *, eps: float) -> Tensor:
    """Hinge on the standard deviation of each dimension, halved:
    ``max(0, 1 - sqrt(Var_d + eps)) / 2`` (the ``/ 2`` averages the two views' terms).

    Args:
        embeddings: ``Tensor[N, D]`` with N >= 2.
        eps: added to the variance before the square root.

    Returns:
        ``Tensor[D]``.
    """
    z = upcast(embeddings)
    std = torch.sqrt(z.var(dim=0) + eps)  # [D], unbiased
    return (torch.relu(1 - std) / 2).to(embeddings.dtype)


def covariance_term(embeddings: Tensor) -> Tensor:
    """Sum of the squared off-diagonal covariances over the dimension:
    ``1/D sum_{d != e} C_de^2``.

    Two exact forms, whichever is cheaper:

    * ``2 N <= D`` (the usual VICReg setting, e.g. N=256, D=8192): with ``G = Zc Zc^T / (N-1)``
      (``N x N``), ``||C||_F^2 = ||G||_F^2`` (both are the sum of the squared singular values of
      ``Zc`` / (N-1)), so ``sum_{d != e} C_de^2 = ||G||_F^2 - sum_d C_dd^2``. O(N^2 D) time and
      O(N^2) memory instead of O(N D^2) and O(D^2). The subtraction cancels when one dimension's
      variance dwarfs the others (float32 loses every digit at a 1e6 std ratio), so this form
      is computed in float64 whatever the input dtype (cheap at O(N^2 D); float32-accurate up to
      a 1e5 std ratio, about 5 digits at 1e6; not on MPS, which has no float64: there the
      second form is used).
    * otherwise the ``D x D`` covariance in the input dtype, its diagonal zeroed in place (no
      cancellation).

    Args:
        embeddings: ``Tensor[N, D]`` with N >= 2.

    Returns:
        0-dim ``Tensor``.
    """
    z = upcast(embeddings)
    n, d = z.shape
    if 2 * n <= d and z.device.type != "mps":
        wide = z.double()
        centered = wide - wide.mean(dim=0)  # [N, D]
        gram = centered @ centered.T / (n - 1)  # [N, N]
        variances = centered.square().sum(dim=0) / (n - 1)  # [D], the diagonal of C
        off_diagonal = gram.square().sum() - variances.square().sum()
    else:
        centered = z - z.mean(dim=0)  # [N, D]
        cov = centered.T @ centered / (n - 1)  # [D, D]
        cov.fill_diagonal_(0)
        off_diagonal = cov.square().sum()
    return (off_diagonal / d).to(embeddings.dtype)
