"""``TorchKMeans``: k-means without faiss (the AccuracyCalculator's default for NMI/AMI)."""

from __future__ import annotations

from typing import cast

import torch

from .._logging import get_logger
from .._types import Tensor
from .._validation import check_embeddings, fail
from ..functional.clustering import kmeans


class TorchKMeans:
    """k-means++ seeding and Lloyd iterations in torch, on the input's device.

    Deterministic: seeded from ``seed`` through a ``torch.Generator``. With ``n_init > 1`` the
    run with the lowest inertia is kept.

    Args:
        max_iter: Lloyd iterations at most per run.
        tol: stop when the summed squared centre shift is at most ``tol`` times the mean
            per-dimension variance of the data (scikit-learn's rule), or no label changes.
        n_init: independent seedings.
        seed: seed of the generator.
    """

    def __init__(
        self, max_iter: int = 300, tol: float = 1e-4, n_init: int = 1, seed: int = 0
    ) -> None:
        for name, value in (("max_iter", max_iter), ("n_init", n_init)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail("TorchKMeans", f"`{name}` to be an int >= 1", repr(value))
        if not tol >= 0:
            fail("TorchKMeans", "`tol` >= 0", repr(tol))
        self.max_iter, self.tol, self.n_init, self.seed = max_iter, tol, n_init, seed

    def __call__(self, x: Tensor, nmb_clusters: int) -> Tensor:
        """Cluster id of each row: ``LongTensor[N]`` on ``x``'s device."""
        x = check_embeddings("TorchKMeans", x.detach(), "x")
        if isinstance(nmb_clusters, bool) or not isinstance(nmb_clusters, int) or nmb_clusters < 1:
            fail("TorchKMeans", "`nmb_clusters` to be an int >= 1", repr(nmb_clusters))
        if nmb_clusters > len(x):
            fail(
                "TorchKMeans",
                f"`nmb_clusters` <= the number of points ({len(x)})",
                str(nmb_clusters),
            )
        get_logger().info("running k-means clustering with k=%d", nmb_clusters)
        generator = torch.Generator(device=x.device).manual_seed(self.seed)
        best_labels, best_inertia = None, None
        for _ in range(self.n_init):
            _, labels, inertia, _ = kmeans(
                x, nmb_clusters, max_iter=self.max_iter, tol=self.tol, generator=generator
            )
            if best_inertia is None or float(inertia) < best_inertia:
                best_labels, best_inertia = labels, float(inertia)
        return cast(Tensor, best_labels)  # n_init >= 1 trials ran

    def __repr__(self) -> str:
        return (
            f"TorchKMeans(max_iter={self.max_iter}, tol={self.tol}, n_init={self.n_init}, "
            f"seed={self.seed})"
        )
