"""The public surface equals PML 2.9.0's: every exported class exists, and every constructor
parameter PML names exists here with the same default."""

from __future__ import annotations

import importlib
import inspect

import pytest

pytest.importorskip("pytorch_metric_learning")
pytestmark = pytest.mark.parity

PACKAGES = ["distances", "losses", "miners", "reducers", "regularizers", "samplers"]
_EMPTY = inspect.Parameter.empty
#: parameters PML's signature reaches through **kwargs but refuses when passed (TypeError or
#: assertion), so they are not part of the usable surface
FORCED = {
    ("CosineSimilarity", "normalize_embeddings"),
    ("CosineSimilarity", "is_inverted"),
    ("DotProductSimilarity", "is_inverted"),
    ("LpDistance", "is_inverted"),
    ("SNRDistance", "is_inverted"),
    ("AvgNonZeroReducer", "low"),
}
#: PML's mixins are cooperative __init__s; ours hold methods only (DESIGN.md §9)
MIXINS = {"EmbeddingRegularizerMixin", "WeightRegularizerMixin"}


def _public_classes(module):
    return {
        n: getattr(module, n)
        for n in dir(module)
        if n[:1].isupper() and inspect.isclass(getattr(module, n))
    }


def _own_params(cls):
    """Named parameters of ``cls`` and of the ``__init__``s its ``**kwargs`` reach."""
    params = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        sig = inspect.signature(init)
        for name, p in sig.parameters.items():
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                params.setdefault(name, p.default)
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    return params


CASES = [
    (pkg, name)
    for pkg in PACKAGES
    for name in _public_classes(importlib.import_module(f"pytorch_metric_learning.{pkg}"))
]


@pytest.mark.parametrize(("pkg", "name"), CASES)
def test_class_exists_with_pml_parameters(pkg, name):
    theirs = getattr(importlib.import_module(f"pytorch_metric_learning.{pkg}"), name)
    ours = getattr(importlib.import_module(f"deepmetric.{pkg}"), name, None)
    assert ours is not None, f"deepmetric.{pkg} lacks {name}"
    our_params = _own_params(ours)
    if name in MIXINS:
        return
    for param, default in _own_params(theirs).items():
        if (name, param) in FORCED:
            continue
        assert param in our_params, f"{name}: missing parameter {param!r}"
        if default is not _EMPTY and our_params[param] is not _EMPTY:
            assert our_params[param] == default or (
                callable(default) and callable(our_params[param])
            ), f"{name}.{param}: default {our_params[param]!r}, PML {default!r}"
