"""Lazy optional imports that fail with an install hint instead of a NameError."""

from __future__ import annotations

import importlib
from types import ModuleType

#: import name -> the extra of deepmetric that installs it
_EXTRAS = {
    "faiss": "faiss",
    "umap": "umap",
    "matplotlib": "umap",
    "tensorboard": "tensorboard",
    "torch.utils.tensorboard": "tensorboard",
    "torchvision": "vision",
    "pytorch_metric_learning": "test",
}


class MissingDependencyError(ImportError):
    """An optional dependency is needed for the requested feature but is not installed."""


def optional_import(module: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = _EXTRAS.get(module, module.split(".")[0])
        what = f"{feature} needs" if feature else "This feature needs"
        raise MissingDependencyError(
            f"{what} the optional package {module!r}, which is not installed. "
            f"Install it with: pip install 'deepmetric[{extra}]'"
        ) from err


def is_available(module: str) -> bool:
    """True when ``module`` can be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
