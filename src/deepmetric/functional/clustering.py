"""k-means clustering in torch: k-means++ seeding and Lloyd iterations, blockwise.

* Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 1982.
* Arthur & Vassilvitskii, "k-means++: The Advantages of Careful Seeding", SODA 2007,
  https://dl.acm.org/doi/10.5555/1283383.1283494 (greedy variant: ``2 + ln k`` candidates per
  step, the one lowering the potential most is kept).

Objective: ``sum_i min_c ||x_i - mu_c||^2`` (the inertia). Distances to the centroids are computed
in blocks of rows (``||x||^2 + ||mu||^2 - 2 <x, mu>``), so memory is ``O(block x k)``.
"""

from __future__ import annotations

import math

import torch

from .._types import Tensor
from ._dtype import upcast
from .retrieval import DEFAULT_BLOCK_ELEMENTS, squared_l2_distances


def nearest_centroid(
    x: Tensor, centroids: Tensor, max_elements: int = DEFAULT_BLOCK_ELEMENTS
) -> tuple[Tensor, Tensor]:
    """``(labels LongTensor[N], squared distance Tensor[N])`` of each row's nearest centroid
    (ties: the smaller centroid id)."""
    block = max(1, max_elements // max(1, len(centroids)))
    cn = (centroids * centroids).sum(1)
    labels, dists = [], []
    for s in range(0, len(x), block):
        d = squared_l2_distances(x[s : s + block], centroids, cn)
        v, i = d.min(1)
        labels.append(i)
        dists.append(v)
    return torch.cat(labels), torch.cat(dists)


def kmeans_plus_plus(
    x: Tensor, k: int, *, generator: torch.Generator | None = None, n_trials: int | None = None
) -> Tensor:
    """Greedy k-means++ seeding: ``Tensor[k, D]`` rows of ``x`` (``Tensor[N, D]``, ``k <= N``)."""
    n = len(x)
    trials = n_trials or 2 + int(math.log(k))
    first = int(torch.randint(n, (1,), generator=generator, device=x.device))
    centers = [x[first]]
    closest = squared_l2_distances(x, x[first : first + 1]).squeeze(1)  # [N]
    for _ in range(1, k):
        potential = closest.sum()
        # every point sits on a centre: draw uniformly
        weights = torch.ones_like(closest) if float(potential) <= 0 else closest
        cand = torch.multinomial(weights.double(), trials, replacement=True, generator=generator)
        d = squared_l2_distances(x, x[cand])  # [N, trials]
        new_closest = torch.minimum(closest.unsqueeze(1), d)
        best = int(new_closest.sum(0).argmin())
        closest = new_closest[:, best]
        centers.append(x[cand[best]])
    return torch.stack(centers)


def kmeans(
    x: Tensor,
    k: int,
    *,
    max_iter: int = 300,
    tol: float = 1e-4,
    generator: torch.Generator | None = None,
    init: Tensor | None = None,
    max_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[Tensor, Tensor, Tensor, int]:
    """Lloyd's k-means from k-means++ seeds (or ``init``).

    Stops when no label changes or the summed squared centre shift is at most
    ``tol * mean_d Var(x[:, d])`` (scikit-learn's rule). A cluster that empties is moved to the
    point farthest from its centre.

    Args:
        x: ``Tensor[N, D]``; half precision runs in float32.
        k: number of clusters, ``1 <= k <= N``.

    Returns:
        ``(centroids Tensor[k, D], labels LongTensor[N], inertia Tensor[], iterations)``.
    """
    x = upcast(x)
    n = len(x)
    centroids = kmeans_plus_plus(x, k, generator=generator) if init is None else init.to(x)
    threshold = tol * float(x.var(0, unbiased=False).mean()) if n > 1 else 0.0
    labels = torch.full((n,), -1, dtype=torch.long, device=x.device)
    iterations = 0
    for step in range(1, max_iter + 1):
        iterations = step
        new_labels, dist = nearest_centroid(x, centroids, max_elements)
        counts = torch.bincount(new_labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, new_labels, x)
        updated = sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype)
        empty = (counts == 0).nonzero().squeeze(1)
        if len(empty):
            far = dist.topk(len(empty)).indices
            updated[empty] = x[far]
        shift = float(((updated - centroids) ** 2).sum())
        centroids = updated
        converged = torch.equal(new_labels, labels) or shift <= threshold
        labels = new_labels
        if converged:
            break
    labels, dist = nearest_centroid(x, centroids, max_elements)
    return centroids, labels, dist.sum(), iterations
