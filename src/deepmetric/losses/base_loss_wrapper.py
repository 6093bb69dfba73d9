"""``BaseLossWrapper``: a module that drives another loss, and the capability check it relies on.

Which losses a wrapper can drive is decided by the capability flags the loss classes declare
(``supports_labels``, ``supports_indices_tuple``, ``supports_ref_emb``, ... on
:class:`~deepmetric.losses.BaseMetricLossFunction`), never by a list of class names: a new loss,
or a user's own loss class, works with a wrapper as soon as it declares what it accepts.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from .._registry import LOSSES
from ..records import ModuleWithRecords


class BaseLossWrapper(ModuleWithRecords):
    """Base of the loss wrappers (CrossBatchMemory, SelfSupervisedLoss).

    Subclasses list in :attr:`required_capabilities` the flags a wrapped loss class must declare
    True; the constructor refuses any other loss with a ``TypeError`` that names what is missing.

    Args:
        loss: the loss to wrap (a ``torch.nn.Module``; registered as the child ``loss``).
        collect_stats: record stats (``None`` reads :mod:`deepmetric.config`).
    """

    #: Names of the capability flags a wrapped loss's class must declare True.
    required_capabilities: ClassVar[tuple[str, ...]] = ()

    def __init__(self, loss: torch.nn.Module, *, collect_stats: bool | None = None) -> None:
        super().__init__(collect_stats=collect_stats)
        self.check_loss_support(loss)
        self.loss = loss

    @classmethod
    def missing_capabilities(cls, loss: Any, required: tuple[str, ...] | None = None) -> list[str]:
        """The flags of ``required`` (default :attr:`required_capabilities`) that ``loss`` (an
        instance or a class) does not declare True."""
        loss_cls = loss if isinstance(loss, type) else type(loss)
        flags = cls.required_capabilities if required is None else required
        return [flag for flag in flags if getattr(loss_cls, flag, False) is not True]

    @classmethod
    def check_loss_support(cls, loss: Any, required: tuple[str, ...] | None = None) -> None:
        """Raise ``TypeError`` unless ``loss`` declares every required capability.

        Args:
            loss: a loss instance, a loss class, or the name of a registered loss (what PML
                passes).
            required: the flags to check (default :attr:`required_capabilities`).
        """
        owner = cls.__name__
        if isinstance(loss, str):
            loss = LOSSES.get(loss)
        if not isinstance(loss, torch.nn.Module) and not (
            isinstance(loss, type) and issubclass(loss, torch.nn.Module)
        ):
            raise TypeError(
                f"{owner}: expected `loss` to be a loss module (torch.nn.Module), "
                f"got {type(loss).__name__}."
            )
        missing = cls.missing_capabilities(loss, required)
        if missing:
            name = loss.__name__ if isinstance(loss, type) else type(loss).__name__
            flags = ", ".join(f"{flag}=True" for flag in missing)
            raise TypeError(
                f"{owner}: expected a loss whose class declares {flags}, got {name}, which does "
                f"not (missing capability: {', '.join(missing)}). Losses that qualify: "
                f"{', '.join(cls.supported_losses(required)) or 'none registered'}."
            )

    @classmethod
    def supported_losses(cls, required: tuple[str, ...] | None = None) -> list[str]:
        """Names of the registered losses that declare the required capabilities."""
        return [
            name
            for name, loss_cls in LOSSES.items()
            if not cls.missing_capabilities(loss_cls, required)
        ]

    # ----------------------------------------------------------------- learnable parameters
    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """``[(name, parameter)]`` that need an optimizer, those of the wrapped loss(es) included
        (e.g. ``("loss.W", ...)``); parameters not given to an optimizer never train."""
        return [(name, p) for name, p in self.named_parameters() if p.requires_grad]

    def has_trainable_parameters(self) -> bool:
        """Whether any wrapped loss learns parameters that must be given to an optimizer."""
        return any(p.requires_grad for p in self.parameters())
