"""Inference: exact k-NN indexes, k-means, threshold matching and ``InferenceModel``.

``FaissKNN`` / ``FaissKMeans`` need ``faiss`` (``pip install deepmetric[faiss]``); they import
it when constructed, so this package imports without it.
"""

from .base_knn import BaseKNN, KNNFunc
from .custom_knn import CustomKNN
from .faiss_kmeans import FaissKMeans
from .faiss_knn import FaissKNN
from .inference_model import InferenceModel
from .kmeans import TorchKMeans
from .match_finder import MatchFinder
from .torch_knn import TorchKNN

__all__ = [
    "BaseKNN",
    "CustomKNN",
    "FaissKMeans",
    "FaissKNN",
    "InferenceModel",
    "KNNFunc",
    "MatchFinder",
    "TorchKMeans",
    "TorchKNN",
]
