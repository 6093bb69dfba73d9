"""c_f model-file, data, record and key helpers (deepmetric.model_files, data_utils, records)."""

from __future__ import annotations

import os
import sqlite3

import pytest
import torch
from torch.utils.data import BatchSampler, SequentialSampler, TensorDataset

from deepmetric.distances import CosineSimilarity, LpDistance
from deepmetric.losses import TripletMarginLoss
from deepmetric.utils import common_functions as c_f


def _linear(seed: int) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2)


def test_modelpath_creator():
    assert c_f.modelpath_creator("f", "trunk", 3) == os.path.join("f", "trunk_3.pth")
    assert c_f.modelpath_creator("f", "trunk", "best2", ".pt") == os.path.join(
        "f", "trunk_best2.pt"
    )
    assert c_f.modelpath_creator("f", "trunk", None) == os.path.join("f", "trunk.pth")


def test_save_and_load_model_through_wrappers(tmp_path):
    source, target = _linear(0), _linear(1)
    path = str(tmp_path / "trunk_1.pth")
    c_f.save_model(torch.nn.DataParallel(source), path)  # saved unwrapped
    assert set(torch.load(path)) == {"weight", "bias"}
    c_f.load_model(torch.nn.DataParallel(target), path, "cpu")
    # (with CUDA, DataParallel moves its module to the GPU)
    torch.testing.assert_close(target.weight.cpu(), source.weight.cpu())
    # a file saved from a wrapped model (keys "module.*") loads into a plain one
    torch.save(torch.nn.DataParallel(_linear(2)).state_dict(), path)
    c_f.load_model(target, path, "cpu")
    torch.testing.assert_close(target.weight.cpu(), _linear(2).weight)
    torch.save({"other.weight": torch.zeros(2, 3)}, path)
    with pytest.raises(RuntimeError, match="Missing key"):
        c_f.load_model(_linear(3), path, "cpu")


def test_dicts_of_models_and_latest_version(tmp_path):
    folder = str(tmp_path)
    models = {"trunk": _linear(0), "embedder": _linear(1)}
    optimizer = torch.optim.SGD(models["trunk"].parameters(), lr=0.5)
    saveable = {**models, "trunk_optimizer": optimizer, "metric_loss": TripletMarginLoss()}
    assert c_f.latest_version(folder) == (0, None)
    for suffix in (1, 2, "best1"):
        c_f.save_dict_of_models(saveable, suffix, folder)
    names = sorted(os.listdir(folder))
    assert "trunk_optimizer_2.pth" in names and "metric_loss_best1.pth" in names
    assert c_f.latest_version(folder) == (2, 2)
    assert c_f.latest_version(folder, best=True) == (1, "best1")
    assert c_f.latest_version(folder, "embedder_*.pth") == (2, 2)
    c_f.delete_dict_of_models(saveable, 1, folder)
    assert not any(n.endswith("_1.pth") for n in os.listdir(folder))
    fresh = {"trunk": _linear(5), "embedder": _linear(6)}
    c_f.load_dict_of_models(fresh, 2, folder, "cpu")
    torch.testing.assert_close(fresh["trunk"].weight, models["trunk"].weight)
    with pytest.raises(OSError):  # a missing file: logged, raised only on request
        c_f.load_dict_of_models(fresh, 7, folder, "cpu", assert_success=True)
    c_f.load_dict_of_models(fresh, 7, folder, "cpu")


def test_requires_grad_and_layers_to_eval():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3), torch.nn.Dropout())
    c_f.set_requires_grad(model, requires_grad=False)
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    model.apply(c_f.set_layers_to_eval("BatchNorm"))
    assert [m.training for m in model] == [True, False, True]


def test_dataloaders_and_generators():
    ds = TensorDataset(torch.arange(10))
    train = c_f.get_train_dataloader(ds, 4, SequentialSampler(ds), 0, None)
    assert [b[0].tolist() for b in train] == [[0, 1, 2, 3], [4, 5, 6, 7]]  # drop_last
    batches = BatchSampler(SequentialSampler(ds), 3, drop_last=False)
    as_batches = c_f.get_train_dataloader(ds, 3, batches, 0, None)
    assert [len(b[0]) for b in as_batches] == [3, 3, 3, 1]
    evaluation = c_f.get_eval_dataloader(ds, 4, 0, None)
    assert [len(b[0]) for b in evaluation] == [4, 4, 2]
    gen = iter([1])
    gen, item = c_f.try_next_on_generator(gen, [1, 2])
    gen, again = c_f.try_next_on_generator(gen, [5, 6])  # exhausted: a new pass
    assert (item, again) == (1, 5)
    assert c_f.return_input("x") == "x"


def test_record_helpers_on_any_object():
    class Thing:
        pass

    thing = Thing()
    c_f.add_to_recordable_attributes(thing, name="margin")
    c_f.add_to_recordable_attributes(thing, list_of_names=["hits", "misses"], is_stat=True)
    assert thing._record_these == ["margin"] and thing._record_these_stats == ["hits", "misses"]
    assert (thing.margin, thing.hits) == (0, 0)
    thing.hits = 5
    c_f.reset_stats(thing)
    assert thing.hits == 0
    assert c_f.list_of_recordable_attributes_list_names() == [
        "_record_these",
        "_record_these_stats",
    ]


def test_key_and_sqlite_helpers(tmp_path):
    assert c_f.exclude(["a", "b", "c"], ["b"]) == ["a", "c"]
    assert c_f.append_map(["trunk", "embedder"], "_optimizer") == [
        "trunk_optimizer",
        "embedder_optimizer",
    ]
    assert c_f.regex_wrapper("tr.*").fullmatch("trunk")
    assert [p.pattern for p in c_f.regex_wrapper(["a", "b"])] == ["a", "b"]
    assert c_f.regex_replace("_level0$", "", "precision_at_1_level0") == "precision_at_1"
    con = sqlite3.connect(tmp_path / "x.db")
    con.row_factory = sqlite3.Row
    con.execute("create table t (epoch int, acc real)")
    con.executemany("insert into t values (?, ?)", [(1, 0.5), (2, 0.7)])
    rows = con.execute("select * from t").fetchall()
    assert c_f.sqlite_obj_to_dict(rows) == {"epoch": [1, 2], "acc": [0.5, 0.7]}
    assert c_f.sqlite_obj_to_dict([]) == {}


def test_assert_distance_type():
    loss = TripletMarginLoss(distance=CosineSimilarity())
    c_f.assert_distance_type(loss, CosineSimilarity)
    c_f.assert_distance_type(loss, (LpDistance, CosineSimilarity), power=1)
    with pytest.raises(ValueError, match="expected a distance of type LpDistance, got Cosine"):
        c_f.assert_distance_type(loss, LpDistance)
    with pytest.raises(ValueError, match=r"expected distance.power == 2, got 1"):
        c_f.assert_distance_type(loss, power=2)
