"""Weight initialisation with bound keyword arguments (for ``weight_init_func=``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._types import Tensor


class TorchInitWrapper:
    """``TorchInitWrapper(torch.nn.init.uniform_, a=-1, b=1)(w)`` calls ``init_func(w, a=-1, b=1)``.

    A picklable alternative to a lambda or ``functools.partial`` with a readable repr.
    """

    def __init__(self, init_func: Callable[..., Any], **kwargs: Any) -> None:
        self.init_func = init_func
        self.kwargs = kwargs

    def __call__(self, tensor: Tensor) -> Any:
        return self.init_func(tensor, **self.kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        name = getattr(self.init_func, "__name__", repr(self.init_func))
        return f"TorchInitWrapper({name}{', ' + args if args else ''})"
