"""One registry per kind of component: the single list read by contract tests, docs and specs.

Building from a spec is strict: an unknown name or argument raises with a did-you-mean.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


class Registry(Generic[T]):
    """A named set of component classes of one kind (losses, reducers, ...).

    >>> REDUCERS = Registry("reducer")
    >>> @REDUCERS.register
    ... class MyReducer: ...
    >>> REDUCERS.get("MyReducer") is MyReducer
    True
    """

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind = kind
        self._package = package  # imported on first lookup: its modules register themselves
        self._entries: dict[str, type[T]] = {}

    def _load(self) -> dict[str, type[T]]:
        if self._package is not None:
            importlib.import_module(self._package)
        return self._entries

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: add ``cls`` under its class name."""
        name = cls.__name__
        if name in self._entries and self._entries[name] is not cls:
            raise ValueError(f"{self.kind} registry: {name!r} is already registered.")
        self._entries[name] = cls
        return cls

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``."""
        try:
            return self._load()[name]
        except KeyError:
            raise ValueError(
                f"Unknown {self.kind} {name!r}.{_suggest(name, self.names())} "
                f"Known: {', '.join(self.names())}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._load())

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._load())

    def items(self) -> list[tuple[str, type[T]]]:
        return [(name, self._load()[name]) for name in self.names()]

    def build(self, spec: str | Mapping[str, Any], **overrides: Any) -> T:
        """Instantiate from ``"Name"`` or ``{"name": "Name", **kwargs}``; unknown kwargs raise."""
        if isinstance(spec, str):
            name, kwargs = spec, {}
        else:
            if "name" not in spec:
                raise ValueError(f"A {self.kind} spec needs a 'name' key, got keys {sorted(spec)}.")
            name = spec["name"]
            kwargs = {k: v for k, v in spec.items() if k != "name"}
        kwargs.update(overrides)
        cls = self.get(name)
        _check_kwargs(cls, kwargs, self.kind)
        return cls(**kwargs)


def _accepted_kwargs(factory: Callable[..., Any]) -> list[str] | None:
    """Keyword names ``factory`` accepts, following ``**kwargs`` up a class's ``__init__`` chain;
    None when some ``**kwargs`` leads nowhere we can inspect (then anything may be accepted)."""
    inits = (
        [c.__dict__["__init__"] for c in factory.__mro__ if "__init__" in c.__dict__]
        if isinstance(factory, type)
        else [factory]
    )
    accepted: list[str] = []
    for init in inits:
        params = inspect.signature(init).parameters.values()
        accepted += [
            p.name
            for p in params
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"
        ]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return accepted
    return None


def _check_kwargs(factory: Callable[..., Any], kwargs: Mapping[str, Any], kind: str) -> None:
    accepted = _accepted_kwargs(factory)
    if accepted is None:
        return
    for key in kwargs:
        if key not in accepted:
            raise TypeError(
                f"{getattr(factory, '__name__', kind)}: unknown argument {key!r}."
                f"{_suggest(key, accepted)} Accepted: {', '.join(dict.fromkeys(accepted))}."
            )


DISTANCES: Registry[Any] = Registry("distance", "deepmetric.distances")
LOSSES: Registry[Any] = Registry("loss", "deepmetric.losses")
MINERS: Registry[Any] = Registry("miner", "deepmetric.miners")
REDUCERS: Registry[Any] = Registry("reducer", "deepmetric.reducers")
REGULARIZERS: Registry[Any] = Registry("regularizer", "deepmetric.regularizers")
SAMPLERS: Registry[Any] = Registry("sampler", "deepmetric.samplers")
METRICS: Registry[Any] = Registry("metric", "deepmetric.metrics")
KNN: Registry[Any] = Registry("knn", "deepmetric.inference")
