"""Testers on tiny synthetic data: result structure, split semantics, hooks, PCA, bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torch.utils.data import TensorDataset

from deepmetric.metrics.accuracy_calculator import AccuracyCalculator
from deepmetric.testers.base_tester import BaseTester, pca_project
from deepmetric.testers.global_embedding_space import GlobalEmbeddingSpaceTester
from deepmetric.testers.global_two_stream_embedding_space import (
    GlobalTwoStreamEmbeddingSpaceTester,
)
from deepmetric.testers.with_same_parent_label import WithSameParentLabelTester

METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")


def _clustered(n_per_class: int = 10, classes: int = 4, dim: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = 10 * torch.randn(classes, dim, generator=g)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    x = centres[labels] + 0.1 * torch.randn(len(labels), dim, generator=g)
    return x, labels


def _trunk(dim: int = 6, out: int = 4) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(dim, out)


def _tester(cls=GlobalEmbeddingSpaceTester, **kwargs):
    kwargs.setdefault("accuracy_calculator", AccuracyCalculator(include=METRICS))
    return cls(dataloader_num_workers=0, batch_size=7, data_device="cpu", **kwargs)


def test_clustered_data_gives_perfect_precision_and_pml_structure():
    x, y = _clustered()
    tester = _tester()
    result = tester.test({"val": TensorDataset(x, y)}, 3, _trunk())
    assert set(result) == {"val"}
    assert set(result["val"]) == {"epoch"} | {f"{m}_level0" for m in METRICS}
    assert result["val"]["epoch"] == 3
    assert result["val"]["precision_at_1_level0"] == pytest.approx(1.0)
    assert result["val"]["r_precision_level0"] == pytest.approx(1.0)
    assert tester.all_accuracies is result
    assert tester.reference_split_names == {"val": ["val"]}
    assert not hasattr(tester, "embeddings_and_labels")


def test_random_labels_score_low():
    x, _ = _clustered()
    y = torch.arange(len(x)) % 4  # labels unrelated to the clusters
    result = _tester().test({"val": TensorDataset(x, y)}, 0, _trunk())
    assert result["val"]["precision_at_1_level0"] < 0.6


def test_default_accuracy_calculator_and_signature_defaults():
    tester = GlobalEmbeddingSpaceTester()
    assert isinstance(tester.accuracy_calculator, AccuracyCalculator)
    assert tester.batch_size == 32 and tester.dataloader_num_workers == 2
    assert tester.normalize_embeddings and not tester.use_trunk_output
    assert tester.label_hierarchy_level == 0 and tester.pca is None
    assert tester.description_suffixes("accuracies") == (
        "accuracies_normalized_GlobalEmbeddingSpaceTester_level_0"
    )


def test_description_suffixes_with_options():
    tester = GlobalEmbeddingSpaceTester(pca=2, use_trunk_output=True, label_hierarchy_level=[0, 1])
    assert tester.description_suffixes("acc") == (
        "acc_pca2_normalized_trunk_GlobalEmbeddingSpaceTester_level_0_1"
    )


def test_get_all_embeddings_shapes_numpy_and_normalization():
    x, y = _clustered()
    tester = _tester()
    emb, labels = tester.get_all_embeddings(TensorDataset(x, y), _trunk())
    assert emb.shape == (40, 4) and labels.shape == (40, 1)
    assert labels.dtype == torch.int64
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(40))
    emb_np, labels_np = tester.get_all_embeddings(
        TensorDataset(x, y), _trunk(), return_as_numpy=True
    )
    assert isinstance(emb_np, np.ndarray) and isinstance(labels_np, np.ndarray)
    np.testing.assert_allclose(emb_np, emb.numpy(), rtol=1e-6)


def test_trunk_output_embedder_and_no_normalization():
    x, y = _clustered()
    trunk = _trunk()
    embedder = torch.nn.Linear(4, 2)
    ds = TensorDataset(x, y)
    raw = _tester(normalize_embeddings=False)
    emb, _ = raw.get_all_embeddings(ds, trunk, embedder)
    with torch.no_grad():
        torch.testing.assert_close(emb, embedder(trunk(x)))
    trunk_only = _tester(normalize_embeddings=False, use_trunk_output=True)
    emb, _ = trunk_only.get_all_embeddings(ds, trunk, embedder)
    with torch.no_grad():
        torch.testing.assert_close(emb, trunk(x))


def test_dtype_and_data_and_label_getter():
    x, y = _clustered()
    ds = TensorDataset(y, x.double())  # (label, data): the getter swaps them
    tester = _tester(dtype=torch.float64, data_and_label_getter=lambda batch: (batch[1], batch[0]))
    trunk = _trunk().double()
    emb, labels = tester.get_all_embeddings(ds, trunk)
    assert emb.dtype == torch.float64 and labels[:, 0].tolist() == y.tolist()


def test_models_set_to_eval():
    x, y = _clustered()
    trunk = torch.nn.Sequential(_trunk(), torch.nn.Dropout(0.5))
    trunk.train()
    _tester().test({"val": TensorDataset(x, y)}, 0, trunk)
    assert not trunk.training


def test_multilevel_labels_average_and_levels():
    x, y = _clustered()
    y2 = torch.stack([y, y // 2], dim=1)
    tester = _tester(label_hierarchy_level="all")
    result = tester.test({"val": TensorDataset(x, y2)}, 0, _trunk())["val"]
    for m in METRICS:
        assert f"{m}_level0" in result and f"{m}_level1" in result
        expected = (result[f"{m}_level0"] + result[f"{m}_level1"]) / 2
        assert result[f"AVERAGE_{m}"] == pytest.approx(expected)
    assert list(tester.label_levels) == [0, 1]
    one = _tester(label_hierarchy_level=1).test({"val": TensorDataset(x, y2)}, 0, _trunk())
    assert set(one["val"]) == {"epoch"} | {f"{m}_level1" for m in METRICS}
    assert one["val"]["precision_at_1_level1"] == result["precision_at_1_level1"]


def test_accuracies_keyname():
    tester = _tester(label_hierarchy_level=[0, 1])
    assert tester.accuracies_keyname("m", 2) == "m_level2"
    assert tester.accuracies_keyname("m", average=True) == "AVERAGE_m"
    tester.label_levels = [0, 1]
    assert tester.accuracies_keyname("m", [0, 1]) == "m_level0_1"
    tester.label_levels = [1]
    assert tester.accuracies_keyname("m", "all") == "m_level1"


def test_splits_to_eval_reference_splits_and_query_moved_first():
    x, y = _clustered()
    train = TensorDataset(x[::2], y[::2])
    val = TensorDataset(x[1::2], y[1::2])
    tester = _tester()
    seen = {}

    def hook(t):
        seen["splits"] = {k: tuple(v[0].shape) for k, v in t.embeddings_and_labels.items()}

    tester.end_of_testing_hook = hook
    result = tester.test(
        {"train": train, "val": val, "unused": val},
        1,
        _trunk(),
        splits_to_eval=[("val", ["train"]), ("train", ["val", "train"])],
    )
    assert set(result) == {"val", "train"}
    assert seen["splits"] == {"train": (20, 4), "val": (20, 4)}  # "unused" never embedded
    assert tester.reference_split_names == {"val": ["train"], "train": ["train", "val"]}
    assert tester.ref_includes_query("train", ["train", "val"])
    assert not tester.ref_includes_query("val", ["train"])
    assert result["val"]["precision_at_1_level0"] == pytest.approx(1.0)
    # val against train equals the calculator applied by hand
    emb_v, lab_v = tester.get_all_embeddings(val, _trunk())
    emb_t, lab_t = tester.get_all_embeddings(train, _trunk())
    direct = tester.accuracy_calculator.get_accuracy(emb_v, lab_v[:, 0], emb_t, lab_t[:, 0], False)
    for m in METRICS:
        assert result["val"][f"{m}_level0"] == pytest.approx(direct[m])


def test_set_reference_and_query_concatenates_in_order():
    tester = _tester()
    eal = {
        "a": (torch.zeros(2, 3), torch.zeros(2, 1, dtype=torch.long)),
        "b": (torch.ones(3, 3), torch.ones(3, 1, dtype=torch.long)),
    }
    q, ql, r, rl = tester.set_reference_and_query(eal, "a", ["b", "a"])
    assert q.shape == (2, 3) and r.shape == (5, 3) and ql[:, 0].tolist() == [0, 0]
    assert rl[:, 0].tolist() == [1, 1, 1, 0, 0]


def test_visualizer_hook_called_with_right_args():
    x, y = _clustered()
    y2 = torch.stack([y, y // 2], dim=1)
    calls = []

    def hook(visualizer, reduced, labels, split_name, keyname, epoch):
        calls.append((visualizer, reduced.shape, labels.tolist(), split_name, keyname, epoch))

    viz = PCA(n_components=2)
    tester = _tester(visualizer=viz, visualizer_hook=hook, label_hierarchy_level="all")
    tester.test({"val": TensorDataset(x, y2)}, 5, _trunk())
    assert [c[3:] for c in calls] == [("val", "PCA_level0", 5), ("val", "PCA_level1", 5)]
    assert all(c[0] is viz and c[1] == (40, 2) for c in calls)
    assert calls[0][2] == y.tolist() and calls[1][2] == (y // 2).tolist()


def test_no_visualizer_hook_is_fine_and_end_hook_sees_results():
    x, y = _clustered()
    fired = []

    def end_hook(tester):
        fired.append(dict(tester.all_accuracies))
        assert hasattr(tester, "embeddings_and_labels")

    tester = _tester(visualizer=PCA(n_components=2), end_of_testing_hook=end_hook)
    result = tester.test({"val": TensorDataset(x, y)}, 2, _trunk())
    assert len(fired) == 1 and fired[0]["val"] == result["val"]
    assert not hasattr(tester, "embeddings_and_labels")


def test_pca_projection():
    x, y = _clustered()
    tester = _tester(pca=2, normalize_embeddings=False)
    emb, _ = tester.get_all_embeddings(TensorDataset(x, y), _trunk())
    assert emb.shape == (40, 2)
    with torch.no_grad():
        t = _trunk()(x)
    z = (t - t.mean(0)) / t.std(0)
    ref = PCA(n_components=2).fit_transform(z.numpy())
    # same subspace up to the sign of each component
    np.testing.assert_allclose(np.abs(emb.numpy()), np.abs(ref), rtol=1e-3, atol=1e-4)
    out = pca_project(torch.randn(10, 5), 3)
    assert out.shape == (10, 3)


def test_set_min_label_to_zero():
    x, y = _clustered()
    ds = TensorDataset(x, y + 100)
    tester = _tester(set_min_label_to_zero=True, dataset_labels=(y + 100).numpy())
    _, labels = tester.get_all_embeddings(ds, _trunk())
    assert labels[:, 0].tolist() == y.tolist()


def test_with_same_parent_label_tester_matches_manual_groups():
    x, y = _clustered(classes=4)
    y2 = torch.stack([y, y // 2], dim=1)
    tester = _tester(WithSameParentLabelTester)
    result = tester.test({"val": TensorDataset(x, y2)}, 0, _trunk())["val"]
    assert set(result) == {"epoch"} | {f"{m}_level0" for m in METRICS}
    emb, lab = tester.get_all_embeddings(TensorDataset(x, y2), _trunk())
    values = []
    for parent in (0, 1):
        m = lab[:, 1] == parent
        acc = tester.accuracy_calculator.get_accuracy(emb[m], lab[m, 0], emb[m], lab[m, 0], True)
        values.append(acc["r_precision"])
    assert result["r_precision_level0"] == pytest.approx(float(np.mean(values)))
    # "all" drops the last level, which has no parent
    tester_all = _tester(WithSameParentLabelTester, label_hierarchy_level="all")
    out = tester_all.test({"val": TensorDataset(x, y2)}, 0, _trunk())["val"]
    assert set(out) == set(result)


def test_two_stream_tester():
    x, y = _clustered()
    g = torch.Generator().manual_seed(1)
    posneg = x + 0.01 * torch.randn(x.shape, generator=g)
    ds = TensorDataset(x, posneg, y)
    tester = _tester(GlobalTwoStreamEmbeddingSpaceTester)
    result = tester.test({"val": ds}, 4, _trunk())
    assert set(result["val"]) == {"epoch"} | {f"{m}_level0" for m in METRICS}
    assert result["val"]["precision_at_1_level0"] == pytest.approx(1.0)
    emb, labels = tester.get_all_embeddings(ds, _trunk())
    assert emb.shape == (80, 4) and labels.shape == (80, 1) and emb.device.type == "cpu"
    assert not tester.ref_includes_query("val", ["val"])
    with pytest.raises(ValueError, match=r"evaluated against itself only"):
        tester.test({"val": ds, "b": ds}, 0, _trunk(), splits_to_eval=[("val", ["b"])])
    with pytest.raises(ValueError, match=r"\(anchors, posnegs, labels\)"):
        tester.test({"val": TensorDataset(x, y)}, 0, _trunk())


def test_base_tester_is_abstract():
    x, y = _clustered()
    with pytest.raises(NotImplementedError):
        BaseTester(dataloader_num_workers=0, data_device="cpu").test(
            {"val": TensorDataset(x, y)}, 0, _trunk()
        )


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"batch_size": 0}, ValueError, "`batch_size` to be an int >= 1"),
        ({"batch_size": 2.5}, ValueError, "`batch_size` to be an int >= 1"),
        ({"dataloader_num_workers": -1}, ValueError, "`dataloader_num_workers`"),
        ({"pca": 0}, ValueError, "`pca` to be None or an int >= 1"),
        ({"dtype": "float"}, TypeError, "`dtype` to be None or a torch.dtype"),
        ({"label_hierarchy_level": "some"}, ValueError, "`label_hierarchy_level`"),
        ({"label_hierarchy_level": []}, ValueError, "`label_hierarchy_level`"),
        ({"end_of_testing_hook": 3}, TypeError, "`end_of_testing_hook` to be callable"),
        ({"visualizer_hook": "x"}, TypeError, "`visualizer_hook` to be callable"),
        ({"data_and_label_getter": 1}, TypeError, "`data_and_label_getter` to be callable"),
        ({"visualizer": object()}, TypeError, "`fit_transform`"),
        ({"accuracy_calculator": object()}, TypeError, "`get_accuracy`"),
        ({"set_min_label_to_zero": True}, ValueError, "dataset_labels"),
        ({"distributed": 1}, TypeError, "`distributed` to be a bool, got 1"),
    ],
)
def test_bad_constructor_args(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        GlobalEmbeddingSpaceTester(**kwargs)


def test_bad_test_inputs():
    x, y = _clustered()
    ds = TensorDataset(x, y)
    tester = _tester()
    trunk = _trunk()
    with pytest.raises(TypeError, match="`dataset_dict` to be a non-empty dict"):
        tester.test(ds, 0, trunk)
    with pytest.raises(TypeError, match="`dataset_dict` to be a non-empty dict"):
        tester.test({}, 0, trunk)
    with pytest.raises(TypeError, match="a callable `trunk_model`"):
        tester.test({"val": ds}, 0, "trunk")
    with pytest.raises(ValueError, match=re.escape("split names from dataset_dict ['val']")):
        tester.test({"val": ds}, 0, trunk, splits_to_eval=[("val", ["train"])])
    with pytest.raises(ValueError, match="each query split at most once"):
        tester.test({"val": ds}, 0, trunk, splits_to_eval=[("val", ["val"]), ("val", ["val"])])
    with pytest.raises(TypeError, match=r"\(query_split, \[reference_splits\]\)"):
        tester.test({"val": ds}, 0, trunk, splits_to_eval=[("val", "val")])
    with pytest.raises(TypeError, match="`splits_to_eval` to be a list"):
        tester.test({"val": ds}, 0, trunk, splits_to_eval="val")
    with pytest.raises(ValueError, match="at least one reference split"):
        tester.test({"val": ds}, 0, trunk, splits_to_eval=[("val", [])])
    with pytest.raises(ValueError, match="a non-empty dataset"):
        tester.test({"val": TensorDataset(x[:0], y[:0])}, 0, trunk)
    with pytest.raises(ValueError, match=r"\(data, labels\)"):
        tester.test({"val": TensorDataset(x, y, y)}, 0, trunk)
    with pytest.raises(ValueError, match=r"below the number of label columns \(1\)"):
        _tester(label_hierarchy_level=1).test({"val": ds}, 0, trunk)
    with pytest.raises(ValueError, match=r"`pca`=5 <= min\(N, D\)"):
        _tester(pca=5).test({"val": ds}, 0, trunk)


def test_with_same_parent_label_needs_two_columns():
    x, y = _clustered()
    with pytest.raises(ValueError, match="below the last label column"):
        _tester(WithSameParentLabelTester).test({"val": TensorDataset(x, y)}, 0, _trunk())


def test_distributed_without_a_process_group_changes_nothing():
    x, y = _clustered()
    ds = {"val": TensorDataset(x, y)}
    plain = _tester().test(ds, 1, _trunk())
    distributed = _tester(distributed=True)
    assert not distributed.is_sharded()
    assert distributed.test(ds, 1, _trunk()) == plain
