"""``FaissKMeans``: k-means through faiss (optional: ``pip install deepmetric[faiss]``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._logging import get_logger
from .._optional import optional_import
from .._types import Tensor
from .._validation import check_embeddings, fail


class FaissKMeans:
    """``faiss.Kmeans(d, nmb_clusters, **kwargs)``; calling it returns each row's cluster id.

    ``kwargs`` go to ``faiss.Kmeans`` unchanged (PML's AccuracyCalculator used ``niter=20``).
    """

    def __init__(self, **kwargs: Any) -> None:
        optional_import("faiss", feature="FaissKMeans")
        self.kwargs = kwargs

    def __call__(self, x: Tensor, nmb_clusters: int) -> Tensor:
        """Cluster ids ``LongTensor[N]`` on ``x``'s device."""
        faiss = optional_import("faiss", feature="FaissKMeans")
        x = check_embeddings("FaissKMeans", x.detach(), "x")
        if isinstance(nmb_clusters, bool) or not isinstance(nmb_clusters, int) or nmb_clusters < 1:
            fail("FaissKMeans", "`nmb_clusters` to be an int >= 1", repr(nmb_clusters))
        data = np.ascontiguousarray(x.cpu().numpy().astype(np.float32, copy=False))
        get_logger().info("running k-means clustering with k=%d", nmb_clusters)
        get_logger().info("embedding dimensionality is %d", data.shape[1])
        kmeans = faiss.Kmeans(data.shape[1], nmb_clusters, **self.kwargs)
        kmeans.train(data)
        _, idx = kmeans.index.search(data, 1)
        return torch.from_numpy(idx[:, 0].astype(np.int64)).to(x.device)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"FaissKMeans({args})"
