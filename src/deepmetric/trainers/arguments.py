"""Checks of a trainer's constructor arguments: the dataset / miners argument order and the keys
of its dicts (``models``, ``loss_funcs``, ``mining_funcs``, ``optimizers``, ``lr_schedulers``,
``gradient_clippers``, ``loss_weights``) against PML's naming rules."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from .._validation import fail

logger = logging.getLogger("deepmetric")

SCHEDULER_SUFFIXES = {
    "iteration": "_scheduler_by_iteration",
    "epoch": "_scheduler_by_epoch",
    "plateau": "_scheduler_by_plateau",
}

#: regex key patterns per dict: ``allowed``, ``essential`` (error if missing) and ``important``
#: (warning if missing)
KeySchema = dict[str, dict[str, list[str]]]


def regex_wrapper(x: str | list[str]) -> re.Pattern[str] | list[re.Pattern[str]]:
    """A compiled pattern, or a list of them for a list of patterns."""
    if isinstance(x, list):
        return [re.compile(z) for z in x]
    return re.compile(x)


def regex_replace(search: str, replace: str, contents: str) -> str:
    return re.sub(search, replace, contents)


def exclude(it: list[Any], targets: list[Any]) -> list[Any]:
    """The items of ``it`` not in ``targets``."""
    return [x for x in it if x not in targets]


def append_map(it: list[str], suf: str) -> list[str]:
    """Each string of ``it`` with ``suf`` appended."""
    return [x + suf for x in it]


def resolve_dataset_and_miners(owner: str, dataset: Any, mining_funcs: Any) -> tuple[Any, Any]:
    """``(dataset, mining_funcs)`` from PML 2.x order (dataset 5th) or PML 1.x order (mining
    functions 5th), told apart by type; ``mining_funcs`` None becomes ``{}``."""
    if isinstance(dataset, Mapping):
        if mining_funcs is None or isinstance(mining_funcs, Mapping):
            fail(
                owner,
                "a dataset (PML 2.x order: loss_funcs, dataset, mining_funcs; or PML 1.x "
                "order: loss_funcs, mining_funcs, dataset)",
                "a dict where the dataset should be and no dataset",
                "Pass the dataset as the 5th or 6th positional argument or as `dataset=`.",
                TypeError,
            )
        dataset, mining_funcs = mining_funcs, dataset  # PML 1.x order
    if dataset is None:
        fail(owner, "a `dataset`", "None", exc=TypeError)
    if not (hasattr(dataset, "__getitem__") or hasattr(dataset, "__iter__")):
        fail(
            owner,
            "`dataset` to be a torch Dataset (with __getitem__ and __len__)",
            type(dataset).__name__,
            exc=TypeError,
        )
    if mining_funcs is None:
        mining_funcs = {}
    if not isinstance(mining_funcs, Mapping):
        fail(
            owner,
            "`mining_funcs` to be a dict such as {'tuple_miner': miner}",
            type(mining_funcs).__name__,
            exc=TypeError,
        )
    return dataset, mining_funcs


def check_types(owner: str, models: Any, optimizers: Any, loss_funcs: Any, batch_size: Any) -> None:
    for name, value in (("models", models), ("optimizers", optimizers), ("loss_funcs", loss_funcs)):
        if not isinstance(value, Mapping):
            fail(owner, f"`{name}` to be a dict", type(value).__name__, exc=TypeError)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        fail(owner, "`batch_size` to be a positive int", repr(batch_size))


def check_keys(owner: str, name: str, keys: list[str], spec: Mapping[str, list[str]]) -> None:
    """Every key matches an ``allowed`` pattern and every ``essential`` pattern is matched;
    a missing ``important`` pattern is only logged."""
    for key in keys:
        if not any(re.fullmatch(p, key) for p in spec["allowed"]):
            fail(owner, f"`{name}` keys among {spec['allowed']}", repr(key))
    for pattern in spec["essential"]:
        if not any(re.fullmatch(pattern, k) for k in keys):
            fail(owner, f"`{name}` to contain the key {pattern!r}", repr(sorted(keys)))
    for pattern in spec.get("important", []):
        if not any(re.fullmatch(pattern, k) for k in keys):
            logger.warning("%s: %s has no key %r", owner, name, pattern)


def check_owned_keys(trainer: Any) -> None:
    """Keys of ``optimizers``, ``lr_schedulers``, ``gradient_clippers`` name a model or loss;
    ``loss_weights`` has exactly the loss names."""
    owner = trainer.owner
    owners = list(trainer.models) + list(trainer.loss_funcs)
    for key in trainer.optimizers:
        if not any(key == f"{o}_optimizer" for o in owners):
            fail(owner, "`optimizers` keys '<model or loss key>_optimizer'", repr(key))
    for model in trainer.models:
        if f"{model}_optimizer" not in trainer.optimizers and model not in trainer.freeze_these:
            logger.warning("%s: optimizers has no key %r", owner, f"{model}_optimizer")
    weights = trainer.loss_weights
    if weights is not None and set(weights) != set(trainer.loss_names):
        fail(
            owner,
            f"`loss_weights` keys to be exactly {sorted(trainer.loss_names)}",
            repr(sorted(weights)),
        )
    suffixes = tuple(SCHEDULER_SUFFIXES.values())
    for key in trainer.lr_schedulers or {}:
        if not any(key == f"{o}{s}" for o in owners for s in suffixes):
            fail(
                owner,
                "`lr_schedulers` keys '<model or loss key>' + one of " + ", ".join(suffixes),
                repr(key),
            )
    for key in trainer.gradient_clippers:
        if not any(key == f"{o}_grad_clipper" for o in owners):
            fail(owner, "`gradient_clippers` keys '<model or loss key>_grad_clipper'", repr(key))
