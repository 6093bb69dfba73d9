"""``CustomKNN``: exact k-NN under any distance (PML's ``utils.inference.CustomKNN``)."""

from __future__ import annotations

from .._registry import KNN
from ..distances.base_distance import BaseDistance
from .torch_knn import TorchKNN


@KNN.register
class CustomKNN(TorchKNN):
    """k-NN with ``distance``'s matrix (largest first for similarities such as
    ``CosineSimilarity``); returned "distances" are the distance object's values.

    ``batch_size`` bounds the queries per block (PML wraps the distance in ``BatchedDistance``);
    here every search is blockwise anyway, so it only tunes memory. Stateless: a call needs
    ``reference``. Ties go to the smaller reference index (PML's ``torch.topk`` leaves them
    unspecified).
    """

    def __init__(self, distance: BaseDistance | type | str, batch_size: int | None = None) -> None:
        super().__init__(distance=distance, batch_size=batch_size)
