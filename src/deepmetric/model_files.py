"""Model files: ``<folder>/<key>_<suffix>.pth`` per model, optimizer, scheduler or loss, saved
atomically without DDP / DataParallel wrappers, loaded back whether or not they were saved with
one, and the latest (or best) saved epoch found by file name.

These are PML's ``common_functions`` model helpers (``save_model``, ``load_model``,
``latest_version``, ...); the hooks save and load checkpoints with them.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ._io import atomic_torch_save
from ._logging import get_logger
from .distributed.ddp import unwrap_model

DDP_PREFIX = "module."


def modelpath_creator(folder: str, basename: str, identifier: Any, extension: str = ".pth") -> str:
    """``<folder>/<basename>_<identifier><extension>`` (``<basename><extension>`` when
    ``identifier`` is None)."""
    name = basename if identifier is None else f"{basename}_{identifier}"
    return os.path.join(folder, name + extension)


def save_model(model: Any, filepath: str) -> None:
    """Save ``model.state_dict()`` (of the module inside a DDP / DataParallel wrapper)."""
    atomic_torch_save(unwrap_model(model).state_dict(), filepath)


def _strip_ddp_prefix(state: Mapping[str, Any]) -> dict[str, Any] | None:
    if not state or not all(isinstance(k, str) and k.startswith(DDP_PREFIX) for k in state):
        return None
    return {k[len(DDP_PREFIX) :]: v for k, v in state.items()}


def load_model(model_def: Any, model_filename: str, device: torch.device | str | None) -> None:
    """Load the state saved at ``model_filename`` into ``model_def`` (into the module inside a
    DDP / DataParallel wrapper), mapped to ``device``. A file saved from a wrapped model (keys
    prefixed ``module.``) loads too."""
    target = unwrap_model(model_def)
    state = torch.load(model_filename, map_location=device, weights_only=False)
    try:
        target.load_state_dict(state)
    except (KeyError, RuntimeError):
        stripped = _strip_ddp_prefix(state) if isinstance(state, Mapping) else None
        if stripped is None:
            raise
        target.load_state_dict(stripped)


def operate_on_dict_of_models(
    input_dict: Mapping[str, Any],
    suffix: Any,
    folder: str,
    operation: Callable[[str, Any, str], Any],
    logging_string: str = "",
    log_if_successful: bool = False,
    assert_success: bool = False,
) -> None:
    """``operation(key, obj, path)`` for every object with a ``state_dict``; an ``OSError`` is
    logged as a warning (re-raised with ``assert_success``)."""
    logger = get_logger()
    for key, obj in input_dict.items():
        if not hasattr(unwrap_model(obj), "state_dict"):
            continue
        path = modelpath_creator(folder, key, suffix)
        try:
            operation(key, obj, path)
            if log_if_successful:
                logger.info("%s %s", logging_string, path)
        except OSError:
            logger.warning("Could not %s %s", logging_string, path)
            if assert_success:
                raise


def save_dict_of_models(
    input_dict: Mapping[str, Any], suffix: Any, folder: str, **kwargs: Any
) -> None:
    """Save each object as ``<folder>/<key>_<suffix>.pth``."""
    os.makedirs(folder, exist_ok=True)

    def operation(key: str, obj: Any, path: str) -> None:
        save_model(obj, path)

    operate_on_dict_of_models(input_dict, suffix, folder, operation, "SAVE", **kwargs)


def load_dict_of_models(
    input_dict: Mapping[str, Any],
    suffix: Any,
    folder: str,
    device: torch.device | str | None,
    **kwargs: Any,
) -> None:
    """Load each object from ``<folder>/<key>_<suffix>.pth`` (a missing file is logged)."""

    def operation(key: str, obj: Any, path: str) -> None:
        load_model(obj, path, device)

    operate_on_dict_of_models(input_dict, suffix, folder, operation, "LOAD", **kwargs)


def delete_dict_of_models(
    input_dict: Mapping[str, Any], suffix: Any, folder: str, **kwargs: Any
) -> None:
    """Delete ``<folder>/<key>_<suffix>.pth`` of each object, where it exists."""

    def operation(key: str, obj: Any, path: str) -> None:
        if os.path.exists(path):
            os.remove(path)

    operate_on_dict_of_models(input_dict, suffix, folder, operation, "DELETE", **kwargs)


def latest_version(
    folder: str, string_to_glob: str = "trunk_*.pth", best: bool = False
) -> tuple[int, Any]:
    """``(epoch, suffix)`` of the highest saved epoch among the files matching
    ``string_to_glob`` in ``folder``: suffix ``epoch`` (an int) for the latest files,
    ``"best<epoch>"`` with ``best=True``; ``(0, None)`` when there is none."""
    pattern = re.compile(r"_best(\d+)\.pth$" if best else r"_(\d+)\.pth$")
    epochs = [
        int(m.group(1))
        for path in glob.glob(os.path.join(glob.escape(folder), string_to_glob))
        if (m := pattern.search(os.path.basename(path)))
    ]
    if not epochs:
        return 0, None
    epoch = max(epochs)
    return epoch, (f"best{epoch}" if best else epoch)


def set_requires_grad(model: torch.nn.Module, requires_grad: bool) -> None:
    """Set ``requires_grad`` on every parameter of ``model``."""
    for param in model.parameters():
        param.requires_grad = requires_grad


def set_layers_to_eval(layer_name: str) -> Callable[[torch.nn.Module], None]:
    """A function for ``model.apply`` that puts every layer whose class name contains
    ``layer_name`` (e.g. ``"BatchNorm"``) in eval mode."""

    def set_to_eval(module: torch.nn.Module) -> None:
        if layer_name in type(module).__name__:
            module.eval()

    return set_to_eval
