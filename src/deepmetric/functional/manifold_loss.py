"""Manifold similarity loss with hard proxies.

Aziere & Todorovic, "Ensemble Deep Manifold Similarity Learning using Hard Proxies", CVPR 2019,
https://openaccess.thecvf.com/content_CVPR_2019/papers/Aziere_Ensemble_Deep_Manifold_Similarity_Learning_Using_Hard_Proxies_CVPR_2019_paper.pdf
(sec. 3.1-3.3).

The N embeddings and K proxies are the nodes of one graph. From their cosine similarities
``s`` (``Tensor[N+K, N+K]``)::

    W_ij = exp(max(s_ij, 0) / 0.5)  (i != j),   W_ii = 0                 affinities
    S    = D^-1/2 W D^-1/2,         D = diag(sum_j W_ij)                  normalised
    F    = (1 - alpha) (I - alpha S)^-1                                   random-walk similarity

Embedding ``i`` is assigned proxy ``c_i``. With ``m`` the margin, the *intrinsic* term compares
the manifold similarities of ``i`` to every other proxy with its own one, and the *context* term
does the same with the cosine similarity between the rows of ``F`` (``F_i.`` for the embedding,
``F_{N+k}.`` for proxy ``k``)::

    v_ik = F_{i,N+k} - F_{i,N+c_i} + m          (intrinsic)
    v_ik = cos(F_i., F_{N+k}.) - cos(F_i., F_{N+c_i}.) + m        (context)
    L_i  = log(1 + sum_{k != c_i, v_ik >= 0} exp(v_ik))

Cost: the inverse is O((N+K)^3) time and O((N+K)^2) memory; the context cosines are one
``N x K`` matrix product (never an ``N x K x (N+K)`` tensor).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._types import Tensor
from ._dtype import upcast

__all__ = ["manifold_similarity", "manifold_terms"]


def manifold_similarity(sim: Tensor, *, alpha: float) -> Tensor:
    """``F = (1 - alpha) (I - alpha D^-1/2 W D^-1/2)^-1`` from cosine similarities.

    Args:
        sim: ``Tensor[V, V]`` cosine similarities between all nodes (embeddings and proxies).
        alpha: random-walk parameter in ``[0, 1)``.

    Returns:
        ``Tensor[V, V]`` in the compute dtype (float32 for half inputs, else ``sim``'s dtype).
    """
    s = upcast(sim)
    eye = torch.eye(s.shape[0], dtype=torch.bool, device=s.device)
    affinity = torch.exp(s.clamp_min(0) / 0.5).masked_fill(eye, 0)  # [V, V]
    inv_sqrt_deg = affinity.sum(dim=1).rsqrt()  # [V]
    normalised = inv_sqrt_deg[:, None] * affinity * inv_sqrt_deg[None, :]
    system = torch.eye(s.shape[0], dtype=s.dtype, device=s.device) - alpha * normalised
    return (1 - alpha) * torch.linalg.inv(system)


def _hinge_logsumexp(scores: Tensor, own: Tensor, margin: float) -> Tensor:
    """Per row ``log(1 + sum_{k != own, v_k >= 0} exp(v_k))``, ``v_k = s_k - s_own + m``."""
    v = scores - scores.gather(1, own[:, None]) + margin  # [N, K]
    keep = v >= 0
    keep.scatter_(1, own[:, None], False)
    masked = v.masked_fill(~keep, torch.finfo(v.dtype).min)
    with_one = torch.cat([masked, v.new_zeros((v.shape[0], 1))], dim=1)
    return torch.logsumexp(with_one, dim=1)


def manifold_terms(
    sim: Tensor,
    assignment: Tensor,
    *,
    alpha: float,
    margin: float,
    intrinsic: bool = True,
    context: bool = True,
) -> tuple[Tensor | None, Tensor | None]:
    """Per-embedding intrinsic and context losses.

    Args:
        sim: ``Tensor[N+K, N+K]`` cosine similarities; rows ``0..N-1`` are the embeddings and rows
            ``N..N+K-1`` the proxies.
        assignment: ``LongTensor[N]``, the proxy ``c_i`` of each embedding, in ``[0, K)``.
        alpha: random-walk parameter in ``[0, 1)``.
        margin: ``m``.
        intrinsic, context: which terms to compute (the other is returned as None).

    Returns:
        ``(L_int, L_ctx)``, each ``Tensor[N]`` in the compute dtype or None.
    """
    n = assignment.shape[0]
    manifold = manifold_similarity(sim, alpha=alpha)  # [N+K, N+K]
    own = assignment.to(manifold.device)
    loss_int = loss_ctx = None
    if intrinsic:
        loss_int = _hinge_logsumexp(manifold[:n, n:], own, margin)
    if context:
        rows = F.normalize(manifold, dim=1, eps=1e-8)
        cosines = rows[:n] @ rows[n:].T  # [N, K] cos(F_i., F_{N+k}.)
        loss_ctx = _hinge_logsumexp(cosines, own, margin)
    return loss_int, loss_ctx
