"""Put a trainer's models under ``DistributedDataParallel`` and take them out again.

DDP averages the models' gradients over the ranks during ``backward``. Together with
:class:`~deepmetric.distributed.DistributedLossWrapper` (which returns every rank's share of the
gradient of the loss over the *gathered* batch, times the world size) each rank's parameters then
receive the single-process gradient of the concatenated batch, and all copies stay equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from .. import _validation as V
from .runtime import world_size

_OWNER = "wrap_models"


def unwrap_model(model: Any) -> Any:
    """The module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper, else ``model``.

    Checkpoints store the unwrapped module's ``state_dict`` so that they load in one process
    and under any number of ranks alike.
    """
    if isinstance(model, (DistributedDataParallel, torch.nn.DataParallel)):
        return model.module
    return model


def _has_trainable_parameters(model: torch.nn.Module) -> bool:
    return any(p.requires_grad for p in model.parameters())


def wrap_models(
    models: Mapping[str, torch.nn.Module],
    device: torch.device | str | None = None,
    **ddp_kwargs: Any,
) -> dict[str, torch.nn.Module]:
    """Move every model to ``device`` and wrap each one that has trainable parameters in DDP.

    Models without trainable parameters (``nn.Identity`` embedders, frozen trunks) are only
    moved: DDP refuses them and they have no gradients to average. On a CUDA device the
    wrapper gets ``device_ids=[device.index]``. In a single process (no process group, or world
    size 1) the models are moved and returned unwrapped, so one script runs both ways.

    Args:
        models: the trainer's ``models`` dict (``{"trunk": ..., "embedder": ...}``).
        device: where the models live (None: leave them where they are).
        **ddp_kwargs: passed to ``DistributedDataParallel`` (e.g. ``find_unused_parameters``).
    """
    if not isinstance(models, Mapping):
        V.fail(_OWNER, "`models` to be a dict of nn.Modules", type(models).__name__, exc=TypeError)
    out: dict[str, torch.nn.Module] = {}
    for key, model in models.items():
        if not isinstance(model, torch.nn.Module):
            V.fail(
                _OWNER, f"models[{key!r}] to be an nn.Module", type(model).__name__, exc=TypeError
            )
        if device is not None:
            model = model.to(device)
        already = isinstance(model, DistributedDataParallel)
        if world_size() > 1 and not already and _has_trainable_parameters(model):
            model = _ddp(model, device, ddp_kwargs)
        out[key] = model
    return out


def _ddp(model: torch.nn.Module, device: Any, ddp_kwargs: dict[str, Any]) -> torch.nn.Module:
    kwargs = dict(ddp_kwargs)
    dev = None if device is None else torch.device(device)
    if dev is not None and dev.type == "cuda" and "device_ids" not in kwargs:
        kwargs["device_ids"] = [dev.index if dev.index is not None else torch.cuda.current_device()]
    return DistributedDataParallel(model, **kwargs)
