"""Testers against PML 2.9.0: constructor signatures, result keys and accuracy numbers."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.utils.data import TensorDataset

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import testers as pml_testers  # noqa: E402
from pytorch_metric_learning.utils.accuracy_calculator import (  # noqa: E402
    AccuracyCalculator as PMLAccuracyCalculator,
)

from deepmetric.metrics.accuracy_calculator import AccuracyCalculator  # noqa: E402
from deepmetric.testers.base_tester import BaseTester  # noqa: E402
from deepmetric.testers.global_embedding_space import GlobalEmbeddingSpaceTester  # noqa: E402
from deepmetric.testers.global_two_stream_embedding_space import (  # noqa: E402
    GlobalTwoStreamEmbeddingSpaceTester,
)
from deepmetric.testers.with_same_parent_label import WithSameParentLabelTester  # noqa: E402

pytestmark = pytest.mark.parity

METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")
PAIRS = {
    "base": (BaseTester, pml_testers.BaseTester),
    "global": (GlobalEmbeddingSpaceTester, pml_testers.GlobalEmbeddingSpaceTester),
    "two_stream": (
        GlobalTwoStreamEmbeddingSpaceTester,
        pml_testers.GlobalTwoStreamEmbeddingSpaceTester,
    ),
    "same_parent": (WithSameParentLabelTester, pml_testers.WithSameParentLabelTester),
}


def _params(fn):
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", list(PAIRS))
def test_signatures_match(name):
    ours, theirs = PAIRS[name]
    # PML's parameters in PML's order and with PML's defaults, then deepmetric's additions
    ours_init, theirs_init = _params(ours.__init__), _params(theirs.__init__)
    assert ours_init[: len(theirs_init)] == theirs_init
    assert ours_init[len(theirs_init) :] == [("distributed", False)]
    assert _params(ours.test) == _params(theirs.test)
    if name != "two_stream":
        assert _params(ours.get_all_embeddings) == _params(theirs.get_all_embeddings)
    else:  # PML has no defaults there; ours adds them
        assert [n for n, _ in _params(ours.get_all_embeddings)] == [
            n for n, _ in _params(theirs.get_all_embeddings)
        ]


def _data(seed: int = 0, n: int = 60, levels: bool = True):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 6, (n,), generator=g)
    x = torch.randn(n, 5, generator=g) + y[:, None].double() * 0.7
    x = x.double()
    labels = torch.stack([y, y // 2], dim=1) if levels else y
    return x, labels, g


def _trunk():
    torch.manual_seed(3)
    return torch.nn.Linear(5, 4).double()


def _run(cls, calc_cls, dataset_dict, splits_to_eval=None, **kwargs):
    tester = cls(
        dataloader_num_workers=0,
        batch_size=16,
        data_device="cpu",
        accuracy_calculator=calc_cls(include=METRICS),
        **kwargs,
    )
    result = tester.test(dataset_dict, 2, _trunk(), splits_to_eval=splits_to_eval)
    return {k: dict(v) for k, v in result.items()}


def _compare(ours, theirs):
    assert set(ours) == set(theirs)
    for split in ours:
        assert set(ours[split]) == set(theirs[split])
        for key, value in theirs[split].items():
            assert ours[split][key] == pytest.approx(float(value), rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize(
    ("kwargs", "splits_to_eval"),
    [
        ({}, None),
        ({"label_hierarchy_level": "all"}, None),
        ({"label_hierarchy_level": [1]}, None),
        ({"normalize_embeddings": False}, [("val", ["train"])]),
        ({"use_trunk_output": True}, [("val", ["train", "val"]), ("train", ["train"])]),
    ],
)
def test_global_tester_parity(kwargs, splits_to_eval):
    x, y, _ = _data()
    dsd = {"train": TensorDataset(x[:30], y[:30]), "val": TensorDataset(x[30:], y[30:])}
    ours = _run(GlobalEmbeddingSpaceTester, AccuracyCalculator, dsd, splits_to_eval, **kwargs)
    theirs = _run(
        pml_testers.GlobalEmbeddingSpaceTester, PMLAccuracyCalculator, dsd, splits_to_eval, **kwargs
    )
    _compare(ours, theirs)


@pytest.mark.parametrize("splits_to_eval", [None, [("val", ["train"])]])
def test_same_parent_tester_parity(splits_to_eval):
    x, y, _ = _data(seed=1)
    dsd = {"train": TensorDataset(x[:40], y[:40]), "val": TensorDataset(x[40:], y[40:])}
    ours = _run(WithSameParentLabelTester, AccuracyCalculator, dsd, splits_to_eval)
    theirs = _run(pml_testers.WithSameParentLabelTester, PMLAccuracyCalculator, dsd, splits_to_eval)
    _compare(ours, theirs)


def test_two_stream_tester_parity():
    x, y, g = _data(seed=2, levels=False)
    posneg = x + 0.5 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    dsd = {"val": TensorDataset(x, posneg, y)}
    ours = _run(GlobalTwoStreamEmbeddingSpaceTester, AccuracyCalculator, dsd)
    theirs = _run(pml_testers.GlobalTwoStreamEmbeddingSpaceTester, PMLAccuracyCalculator, dsd)
    _compare(ours, theirs)


def test_get_all_embeddings_parity():
    x, y, _ = _data()
    ds = TensorDataset(x, y)
    ours = GlobalEmbeddingSpaceTester(dataloader_num_workers=0, data_device="cpu")
    theirs = pml_testers.GlobalEmbeddingSpaceTester(dataloader_num_workers=0, data_device="cpu")
    for as_numpy in (False, True):
        e1, l1 = ours.get_all_embeddings(ds, _trunk(), return_as_numpy=as_numpy)
        e2, l2 = theirs.get_all_embeddings(ds, _trunk(), return_as_numpy=as_numpy)
        assert type(e1) is type(e2) and e1.shape == e2.shape and l1.shape == l2.shape
        assert l1.dtype == l2.dtype
        torch.testing.assert_close(torch.as_tensor(e1), torch.as_tensor(e2))
        torch.testing.assert_close(torch.as_tensor(l1), torch.as_tensor(l2))


def test_description_suffixes_parity():
    for kwargs in ({}, {"pca": 3, "use_trunk_output": True, "label_hierarchy_level": [0, 1]}):
        ours = GlobalEmbeddingSpaceTester(**kwargs)
        theirs = pml_testers.GlobalEmbeddingSpaceTester(**kwargs)
        assert ours.description_suffixes("accuracies") == theirs.description_suffixes("accuracies")
