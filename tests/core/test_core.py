"""Registry, optional imports, records and config: the small core pieces."""

from __future__ import annotations

import pytest
import torch

from deepmetric import config
from deepmetric._optional import MissingDependencyError, is_available, optional_import
from deepmetric._registry import LOSSES, Registry
from deepmetric.records import ModuleWithRecords


def test_registry_register_get_build():
    reg: Registry = Registry("widget")

    @reg.register
    class Widget:
        def __init__(self, size: int = 1) -> None:
            self.size = size

    assert reg.get("Widget") is Widget and "Widget" in reg and len(reg) == 1
    assert reg.build({"name": "Widget", "size": 3}).size == 3
    assert reg.build("Widget", size=4).size == 4
    with pytest.raises(ValueError, match="already registered"):
        reg.register(type("Widget", (), {}))
    with pytest.raises(ValueError, match="needs a 'name' key"):
        reg.build({"size": 3})
    with pytest.raises(TypeError, match=r"unknown argument 'sise'.*Did you mean 'size'"):
        reg.build({"name": "Widget", "sise": 3})
    with pytest.raises(ValueError, match=r"Unknown widget 'Widgte'.*Did you mean 'Widget'"):
        reg.get("Widgte")


def test_loss_spec_is_strict():
    loss = LOSSES.build({"name": "TripletMarginLoss", "margin": 0.3})
    assert loss.margin == 0.3
    with pytest.raises(TypeError, match="unknown argument 'margn'"):
        LOSSES.build({"name": "ContrastiveLoss", "margn": 0.3})


def test_optional_import_gives_install_hint():
    assert optional_import("math").sqrt(4) == 2
    assert is_available("math") and not is_available("surely_not_a_module_xyz")
    with pytest.raises(MissingDependencyError, match=r"FaissKNN needs .*deepmetric\[faiss\]"):
        optional_import("faiss.surely_missing_submodule", feature="FaissKNN")


class Recorder(ModuleWithRecords):
    recordable = ("margin",)
    stats = ("hits",)


def test_stats_exist_only_when_collected_and_must_be_declared():
    off = Recorder(collect_stats=False)
    assert getattr(off, "hits", None) is None and off.margin == 0
    off.record_stat("anything", 1)  # ignored when stats are off
    on = Recorder(collect_stats=True)
    on.record_stat("hits", torch.tensor(3.0, requires_grad=True))
    assert on.hits == 3 and not on.hits.requires_grad
    on.reset_stats()
    assert on.hits == 0
    with pytest.raises(AttributeError, match="stat 'misses' was not declared"):
        on.record_stat("misses", 1)


def test_collect_stats_context_manager_is_scoped():
    assert config.default_collect_stats() is False
    with config.collect_stats():
        assert Recorder().collect_stats is True
        with config.collect_stats(False):
            assert Recorder().collect_stats is False
    assert Recorder().collect_stats is False
