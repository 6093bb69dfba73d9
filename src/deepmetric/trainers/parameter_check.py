"""Find loss parameters that need training but that no optimizer holds (e.g. ArcFace's ``W``
in PML's tutorial, which then stays at its random initial value)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch


def _trainable(loss: Any) -> list[tuple[str, torch.nn.Parameter]]:
    get = getattr(loss, "trainable_parameters", None)
    if get is not None:
        return list(get())
    if isinstance(loss, torch.nn.Module):
        return [(n, p) for n, p in loss.named_parameters() if p.requires_grad]
    return []


def unoptimized_loss_parameters(
    loss_funcs: Mapping[str, Any], optimizers: Iterable[Any], frozen: Iterable[str]
) -> list[str]:
    """``"<loss key>.<parameter name>"`` of each trainable loss parameter that none of
    ``optimizers`` holds; losses under a ``frozen`` key are skipped."""
    held = {
        id(p)
        for opt in optimizers
        if opt is not None
        for group in opt.param_groups
        for p in group["params"]
    }
    skip = set(frozen)
    return [
        f"{key}.{name}"
        for key, loss in loss_funcs.items()
        if key not in skip
        for name, p in _trainable(loss)
        if id(p) not in held
    ]
