"""deepmetric: deep metric learning for PyTorch.

The public surface mirrors pytorch-metric-learning 2.x
(``from deepmetric import losses, miners, ...``); the internals are a functional core
(:mod:`deepmetric.functional`) under thin modules.
Sub-packages are imported lazily so ``import deepmetric`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBPACKAGES = (
    "datasets",
    "distances",
    "distributed",
    "functional",
    "hooks",
    "inference",
    "losses",
    "metrics",
    "miners",
    "reducers",
    "regularizers",
    "reports",
    "samplers",
    "testers",
    "trainers",
    "utils",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'deepmetric' has no attribute {name!r}")
