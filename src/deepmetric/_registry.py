"""One registry per kind of component: the single list read by contract tests, docs and specs.

Building from a spec is strict: an unknown name or argument raises with a did-you-mean.
"""

from __future__ import annotations

import difflib
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

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, type[T]] = {}

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
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"Unknown {self.kind} {name!r}.{_suggest(name, self.names())} "
                f"Known: {', '.join(self.names())}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, type[T]]]:
        return [(name, self._entries[name]) for name in self.names()]

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


def _check_kwargs(factory: Callable[..., Any], kwargs: Mapping[str, Any], kind: str) -> None:
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    for key in kwargs:
        if key not in accepted:
            raise TypeError(
                f"{getattr(factory, '__name__', kind)}: unknown argument {key!r}."
                f"{_suggest(key, accepted)} Accepted: {', '.join(accepted)}."
            )


DISTANCES: Registry[Any] = Registry("distance")
LOSSES: Registry[Any] = Registry("loss")
MINERS: Registry[Any] = Registry("miner")
REDUCERS: Registry[Any] = Registry("reducer")
REGULARIZERS: Registry[Any] = Registry("regularizer")
SAMPLERS: Registry[Any] = Registry("sampler")
METRICS: Registry[Any] = Registry("metric")
KNN: Registry[Any] = Registry("knn")
