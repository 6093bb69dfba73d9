"""What a trainer does when it is built under ``torch.distributed`` with more than one rank:
put its trainable models under ``DistributedDataParallel`` (unless the caller already did), and
warn about loss parameters that nothing keeps equal across ranks."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from ..distributed.ddp import wrap_models
from ..distributed.loss_wrapper import DistributedLossWrapper
from ..distributed.runtime import world_size

logger = logging.getLogger("deepmetric")


def wrap_trainable_models(
    owner: str, models: Mapping[str, torch.nn.Module], frozen: Iterable[str]
) -> dict[str, torch.nn.Module]:
    """``models`` with each unfrozen model that has trainable parameters under DDP (without
    DDP each rank would step its own copy with its own gradients, and the copies drift apart)."""
    skip = set(frozen)
    candidates = {
        k: m
        for k, m in models.items()
        if k not in skip and not isinstance(m, DistributedDataParallel)
    }
    wrapped = wrap_models(candidates)
    newly = [k for k in candidates if wrapped[k] is not candidates[k]]
    if newly:
        logger.info("%s: %s put under DistributedDataParallel", owner, newly)
    return {**models, **wrapped}


def warn_unsynchronised_loss_parameters(
    owner: str, loss_funcs: Mapping[str, Any], frozen: Iterable[str]
) -> None:
    """Warn about each loss that learns parameters (ArcFace's ``W``, proxies) but is neither a
    ``DistributedLossWrapper`` nor under DDP: its copies would drift apart between ranks."""
    skip = set(frozen)
    for key, loss in loss_funcs.items():
        if key in skip or isinstance(loss, (DistributedLossWrapper, DistributedDataParallel)):
            continue
        if not isinstance(loss, torch.nn.Module):
            continue
        if any(p.requires_grad for p in loss.parameters()):
            warnings.warn(
                f"{owner}: loss_funcs[{key!r}] learns parameters but is neither a "
                f"DistributedLossWrapper nor under DistributedDataParallel: each of the "
                f"{world_size()} ranks would update its own copy from its own batch, and the "
                "copies drift apart. Use DistributedLossWrapper(loss): its parameters then get "
                "the gradient of the whole global batch, the same on every rank.",
                UserWarning,
                stacklevel=4,
            )
