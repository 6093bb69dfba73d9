"""PML-compatible ``utils.inference``: re-exports only.

``TorchKNN`` (exact, no faiss) and ``TorchKMeans`` are deepmetric's defaults. Not provided: PML's
faiss plumbing functions (``try_gpu``, ``convert_to_gpu_index``, ``run_pca``, ``return_results``,
``get_topk``, ...); :func:`deepmetric.functional.retrieval.drop_self` is ``return_results``' rule.
"""

from __future__ import annotations

from ..inference.custom_knn import CustomKNN
from ..inference.faiss_kmeans import FaissKMeans
from ..inference.faiss_knn import FaissKNN
from ..inference.inference_model import InferenceModel
from ..inference.kmeans import TorchKMeans
from ..inference.match_finder import MatchFinder
from ..inference.torch_knn import TorchKNN

__all__ = [
    "CustomKNN",
    "FaissKMeans",
    "FaissKNN",
    "InferenceModel",
    "MatchFinder",
    "TorchKMeans",
    "TorchKNN",
]
