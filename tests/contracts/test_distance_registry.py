"""Contracts every entry of the DISTANCES registry keeps."""

from __future__ import annotations

import copy
import inspect
import io
import pickle

import pytest
import torch

import deepmetric.distances  # noqa: F401  (fills the registry)
from deepmetric._registry import DISTANCES
from deepmetric.distances import BaseDistance

NAMES = DISTANCES.names()


def _inputs(dtype=torch.float64, requires_grad=False):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(6, 5, generator=g, dtype=torch.float64).to(dtype).requires_grad_(requires_grad)
    r = torch.randn(4, 5, generator=g, dtype=torch.float64).to(dtype).requires_grad_(requires_grad)
    return q, r


def test_registry_lists_the_pml_distances():
    assert {"LpDistance", "DotProductSimilarity", "CosineSimilarity", "SNRDistance"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_default_constructible(name):
    cls = DISTANCES.get(name)
    dist = cls()
    assert isinstance(dist, BaseDistance)
    assert isinstance(dist.is_inverted, bool)
    assert DISTANCES.build(name).__class__ is cls


@pytest.mark.parametrize("name", NAMES)
def test_output_shape(name):
    dist = DISTANCES.get(name)()
    q, r = _inputs()
    assert dist(q, r).shape == (6, 4)
    assert dist(q).shape == (6, 6)
    assert dist(q[:1], r).shape == (1, 4)
    assert dist.pairwise_distance(q, r[:1].expand(6, -1)).shape == (6,)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_dtype_kept(name, dtype):
    dist = DISTANCES.get(name)()
    q, r = _inputs(dtype)
    for out in (dist(q, r), dist(q)):
        assert out.dtype == dtype
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("with_ref", [True, False], ids=["ref", "noref"])
@pytest.mark.parametrize("name", NAMES)
def test_backprop(name, with_ref):
    dist = DISTANCES.get(name)()
    q, r = _inputs(torch.float32, requires_grad=True)
    out = dist(q, r if with_ref else None)
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()
    if with_ref:
        assert r.grad is not None and torch.isfinite(r.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_deepcopy_and_pickle_round_trip(name):
    dist = DISTANCES.get(name)(power=2)
    q, r = _inputs()
    expected = dist(q, r)
    for clone in (copy.deepcopy(dist), pickle.loads(pickle.dumps(dist))):
        assert type(clone) is type(dist)
        assert clone is not dist
        assert (clone.p, clone.power, clone.normalize_embeddings, clone.is_inverted) == (
            dist.p,
            dist.power,
            dist.normalize_embeddings,
            dist.is_inverted,
        )
        torch.testing.assert_close(clone(q, r), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_pickle_with_stats(name):
    dist = DISTANCES.get(name)(collect_stats=True)
    q, r = _inputs()
    dist(q, r)
    clone = pickle.loads(pickle.dumps(dist))
    assert clone.collect_stats is True
    assert float(clone.initial_avg_query_norm) == pytest.approx(float(dist.initial_avg_query_norm))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_loads(name):
    cls = DISTANCES.get(name)
    dist = cls()
    state = dist.state_dict()
    fresh = cls()
    result = fresh.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    q, r = _inputs()
    torch.testing.assert_close(fresh(q, r), dist(q, r))


@pytest.mark.parametrize("name", NAMES)
def test_repr_is_informative(name):
    cls = DISTANCES.get(name)
    dist = cls()
    text = repr(dist)
    assert text.startswith(f"{name}(")
    # Every constructor hyperparameter (and the similarity direction) is shown with its value.
    params = [p for p in inspect.signature(cls).parameters if p != "collect_stats"]
    for param in [*params, "is_inverted"]:
        assert f"{param}={getattr(dist, param)!r}" in text, (param, text)
    if "power" in params:
        assert "power=3" in repr(cls(power=3))
