"""Small data sets for examples and tests: ``Digits`` (embedded) and ``FashionMNIST``."""

from __future__ import annotations

from .digits import Digits
from .fashion_mnist import FashionMNIST

__all__ = ["Digits", "FashionMNIST"]
