"""``MultipleLosses``: a weighted sum of several losses, each with an optional miner."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .. import _validation as V
from .._types import IndicesTuple, Tensor

_OWNER = "MultipleLosses"


class MultipleLosses(torch.nn.Module):
    """``sum_k weight_k * loss_k(embeddings, labels, indices_tuple_k)``.

    ``indices_tuple_k`` is ``miners[k](embeddings, labels)`` when loss ``k`` has a miner, else the
    ``indices_tuple`` passed to ``forward``. The result is a weighted **sum** (PML's docs say
    average; its code, which deepmetric follows, sums).

    Args:
        losses: a list (or tuple) of losses, or a dict ``{name: loss}``; kept as
            ``torch.nn.ModuleList`` / ``torch.nn.ModuleDict`` (``is_dict`` tells which).
        miners: the same container type: a list of the same length (``None`` for a loss without
            a miner), or a dict whose keys are some of the loss keys.
        weights: a list of the same length, or a dict with exactly the loss keys; default 1 each.
    """

    def __init__(
        self,
        losses: Sequence[torch.nn.Module] | Mapping[str, torch.nn.Module],
        miners: Sequence[Any] | Mapping[str, Any] | None = None,
        weights: Sequence[float] | Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.is_dict = isinstance(losses, Mapping)
        if not self.is_dict and not isinstance(losses, (list, tuple)):
            V.fail(_OWNER, "`losses` as a list or a dict", type(losses).__name__, exc=TypeError)
        if len(losses) == 0:
            V.fail(_OWNER, "at least one loss", "an empty container")
        keys = list(losses.keys()) if isinstance(losses, Mapping) else list(range(len(losses)))
        items = losses.items() if isinstance(losses, Mapping) else enumerate(losses)
        for key, loss in items:
            if not isinstance(loss, torch.nn.Module):
                V.fail(
                    _OWNER,
                    f"losses[{key!r}] to be a loss module (torch.nn.Module)",
                    type(loss).__name__,
                    exc=TypeError,
                )
        self.losses: torch.nn.ModuleDict | torch.nn.ModuleList = (
            torch.nn.ModuleDict(losses)
            if isinstance(losses, Mapping)
            else torch.nn.ModuleList(losses)
        )
        self.miners: torch.nn.ModuleDict | torch.nn.ModuleList | None = None
        if miners is not None:
            self._check_container("miners", miners, keys, all_keys=False)
            miner_items = miners.items() if isinstance(miners, Mapping) else enumerate(miners)
            for key, miner in miner_items:
                if miner is not None and not isinstance(miner, torch.nn.Module):
                    V.fail(
                        _OWNER,
                        f"miners[{key!r}] to be a miner module or None",
                        type(miner).__name__,
                        exc=TypeError,
                    )
            self.miners = (
                torch.nn.ModuleDict(miners)
                if isinstance(miners, Mapping)
                else torch.nn.ModuleList(miners)
            )
        if weights is None:
            self.weights: Any = {k: 1 for k in keys} if self.is_dict else [1] * len(keys)
        else:
            self._check_container("weights", weights, keys, all_keys=True)
            values = weights.items() if isinstance(weights, Mapping) else enumerate(weights)
            for key, w in values:
                number = isinstance(w, numbers.Real) and not isinstance(w, bool)
                scalar = isinstance(w, torch.Tensor) and w.numel() == 1
                if not (number or scalar):
                    V.fail(_OWNER, f"weights[{key!r}] to be a number", repr(w), exc=TypeError)
            self.weights = dict(weights) if isinstance(weights, Mapping) else list(weights)

    def _check_container(self, name: str, value: Any, keys: list[Any], all_keys: bool) -> None:
        if self.is_dict:
            if not isinstance(value, Mapping):
                V.fail(
                    _OWNER,
                    f"`{name}` as a dict (the losses are a dict)",
                    type(value).__name__,
                    exc=TypeError,
                )
            unknown = [k for k in value if k not in keys]
            if unknown:
                V.fail(_OWNER, f"`{name}` keys among the loss keys {keys}", f"unknown {unknown}")
            if all_keys and set(value) != set(keys):
                missing = [k for k in keys if k not in value]
                V.fail(_OWNER, f"`{name}` for every loss key {keys}", f"missing {missing}")
            return
        if not isinstance(value, (list, tuple)):
            V.fail(
                _OWNER,
                f"`{name}` as a list (the losses are a list)",
                type(value).__name__,
                exc=TypeError,
            )
        if len(value) != len(keys):
            V.fail(
                _OWNER,
                f"`{name}` of length {len(keys)} (one per loss; None for no miner)",
                f"length {len(value)}",
            )

    def _miner_for(self, key: Any) -> Any:
        if self.miners is None:
            return None
        if isinstance(self.miners, torch.nn.ModuleDict):
            return self.miners[key] if key in self.miners else None
        return self.miners[key]

    def get_indices_tuple(
        self, i: Any, embeddings: Tensor, labels: Tensor, indices_tuple: IndicesTuple | None
    ) -> IndicesTuple | None:
        """The tuple for loss ``i``: its miner's output, else ``indices_tuple``."""
        miner = self._miner_for(i)
        return indices_tuple if miner is None else miner(embeddings, labels)

    def forward(
        self, embeddings: Tensor, labels: Tensor, indices_tuple: IndicesTuple | None = None
    ) -> Tensor:
        items = (
            list(self.losses.items())
            if isinstance(self.losses, torch.nn.ModuleDict)
            else list(enumerate(self.losses))
        )
        if indices_tuple is not None:
            mined = [k for k, _ in items if self._miner_for(k) is not None]
            if mined:
                V.fail(
                    _OWNER,
                    "no `indices_tuple` when losses have miners (the miners make the tuples)",
                    f"an indices_tuple, with miners for {mined}",
                )
        terms = [
            loss_fn(
                embeddings, labels, self.get_indices_tuple(key, embeddings, labels, indices_tuple)
            )
            * self.weights[key]
            for key, loss_fn in items
        ]
        total = terms[0]  # there is at least one loss (checked in __init__)
        for term in terms[1:]:
            total = total + term
        return total

    # ----------------------------------------------------------------- learnable parameters
    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """``[(name, parameter)]`` that need an optimizer, those of the wrapped loss(es) included
        (e.g. ``("losses.0.W", ...)``); parameters not given to an optimizer never train."""
        return [(name, p) for name, p in self.named_parameters() if p.requires_grad]

    def has_trainable_parameters(self) -> bool:
        """Whether any wrapped loss learns parameters that must be given to an optimizer."""
        return any(p.requires_grad for p in self.parameters())
