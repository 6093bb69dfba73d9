"""PML-compatible ``utils.accuracy_calculator`` and ``utils.inference``: re-exports only."""

from __future__ import annotations

from deepmetric import inference, metrics
from deepmetric.utils import accuracy_calculator as ac_shim
from deepmetric.utils import inference as inference_shim


def test_accuracy_calculator_shim_reexports():
    assert ac_shim.AccuracyCalculator is metrics.AccuracyCalculator
    assert ac_shim.EQUALITY is metrics.EQUALITY
    assert set(ac_shim.__all__) == {"AccuracyCalculator", "EQUALITY", "PerClassTable"}


def test_inference_shim_reexports():
    for name in ("CustomKNN", "FaissKMeans", "FaissKNN", "InferenceModel", "MatchFinder"):
        assert getattr(inference_shim, name) is getattr(inference, name)  # PML's names
    assert inference_shim.TorchKNN is inference.TorchKNN
    assert inference_shim.TorchKMeans is inference.TorchKMeans
