"""Hooks and logging: CSV/SQLite/TensorBoard records, best-model saving, reloading, early stopping.

A small fake trainer (PML's attribute names) drives the hooks; the testers are the real ones.
"""

from __future__ import annotations

import csv
import glob
import os
import sqlite3
import sys
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import TensorDataset

from deepmetric._optional import MissingDependencyError, is_available
from deepmetric.distances.lp_distance import LpDistance
from deepmetric.hooks.hook_container import EmptyContainer, HookContainer
from deepmetric.hooks.record_keeper import RecordKeeper, to_scalar
from deepmetric.hooks.record_writer import RecordWriter
from deepmetric.losses.triplet_margin_loss import TripletMarginLoss
from deepmetric.metrics.accuracy_calculator import AccuracyCalculator
from deepmetric.miners.triplet_margin_miner import TripletMarginMiner
from deepmetric.reducers.threshold_reducer import ThresholdReducer
from deepmetric.testers.global_embedding_space import GlobalEmbeddingSpaceTester
from deepmetric.utils import logging_presets

LOSS_GROUP = "metric_loss_TripletMarginLoss"
DIST_GROUP = f"{LOSS_GROUP}_modules_distance_LpDistance"
RED_GROUP = f"{LOSS_GROUP}_modules_reducer_ThresholdReducer"
MINER_GROUP = "tuple_miner_TripletMarginMiner"
ACC_GROUP = "accuracies_normalized_GlobalEmbeddingSpaceTester_level_0_VAL_vs_self"
PRIMARY = "precision_at_1_level0"


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _db_rows(path, table):
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f'SELECT * FROM "{table}" ORDER BY id')]
    finally:
        con.close()


def _fake_trainer(seed: int = 0):
    torch.manual_seed(seed)
    trunk = torch.nn.Linear(6, 4)
    embedder = torch.nn.Linear(4, 4)
    loss = TripletMarginLoss(
        margin=0.3,
        distance=LpDistance(collect_stats=True),
        reducer=ThresholdReducer(low=0, collect_stats=True),
    )
    miner = TripletMarginMiner(margin=0.2, collect_stats=True)
    return SimpleNamespace(
        epoch=1,
        iteration=0,
        losses={"metric_loss": torch.tensor(0.0)},
        loss_weights={"metric_loss": 1},
        models={"trunk": trunk, "embedder": embedder},
        optimizers={
            "trunk_optimizer": torch.optim.SGD(trunk.parameters(), lr=0.01),
            "embedder_optimizer": torch.optim.Adam(embedder.parameters(), lr=0.002),
        },
        loss_funcs={"metric_loss": loss},
        mining_funcs={"tuple_miner": miner},
    )


def _train_step(trainer, step: int) -> None:
    """One fake iteration: run miner and loss so that stats exist, store the loss value."""
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 6, generator=g)
    y = torch.arange(4).repeat(4)
    emb = trainer.models["embedder"](trainer.models["trunk"](x))
    triplets = trainer.mining_funcs["tuple_miner"](emb, y)
    trainer.losses["metric_loss"] = trainer.loss_funcs["metric_loss"](emb, y, triplets)
    trainer.iteration = step


def _data(seed: int = 0):
    """Class signal in features 0-1, pure noise in features 2-5."""
    g = torch.Generator().manual_seed(seed)
    centres = 10 * torch.randn(4, 2, generator=g)
    y = torch.arange(4).repeat_interleave(12)
    x = torch.cat(
        [centres[y] + 0.1 * torch.randn(48, 2, generator=g), torch.randn(48, 4, generator=g)], 1
    )
    return {"val": TensorDataset(x, y)}


def _set_trunk(trainer, good: bool, scale: float = 1.0) -> None:
    """A trunk that reads the class features (good) or only the noise (bad); embedder = identity."""
    w = torch.zeros(4, 6)
    cols = [0, 1] if good else [2, 3, 4, 5]
    for row, col in enumerate(cols):
        w[row, col] = scale
    with torch.no_grad():
        trainer.models["trunk"].weight.copy_(w)
        trainer.models["trunk"].bias.zero_()
        trainer.models["embedder"].weight.copy_(torch.eye(4))
        trainer.models["embedder"].bias.zero_()


def _tester(hooks, **kwargs):
    return GlobalEmbeddingSpaceTester(
        end_of_testing_hook=hooks.end_of_testing_hook,
        accuracy_calculator=AccuracyCalculator(
            include=("precision_at_1", "mean_average_precision_at_r")
        ),
        dataloader_num_workers=0,
        data_device="cpu",
        **kwargs,
    )


# ---------------------------------------------------------------------------- iteration records
def test_end_of_iteration_hook_writes_csv_and_sqlite(tmp_path):
    keeper, writer, tb = logging_presets.get_record_keeper(str(tmp_path / "logs"))
    assert tb is None and keeper.record_writer is writer
    hooks = logging_presets.get_hook_container(keeper, log_freq=2)
    trainer = _fake_trainer()
    values, triplets = {}, {}
    for step in range(1, 6):
        _train_step(trainer, step)
        hooks.end_of_iteration_hook(trainer)
        values[step] = float(trainer.losses["metric_loss"].detach())
        triplets[step] = int(trainer.mining_funcs["tuple_miner"].num_triplets)
    keeper.save_records()
    folder = tmp_path / "logs"
    losses = _read_csv(folder / "loss_histories.csv")
    assert [int(r["global_iteration"]) for r in losses] == [2, 4]  # log_freq=2
    for row in losses:
        assert float(row["metric_loss"]) == pytest.approx(values[int(row["global_iteration"])])
    assert [float(r["metric_loss"]) for r in _read_csv(folder / "loss_weights.csv")] == [1.0, 1.0]
    assert float(_read_csv(folder / f"{LOSS_GROUP}.csv")[0]["margin"]) == pytest.approx(0.3)
    dist = _read_csv(folder / f"{DIST_GROUP}.csv")[-1]
    assert float(dist["p"]) == 2 and float(dist["initial_avg_query_norm"]) > 0
    assert float(dist["final_avg_query_norm"]) == pytest.approx(1.0)
    red = _read_csv(folder / f"{RED_GROUP}.csv")[-1]
    assert float(red["low"]) == 0 and "high" not in red  # None is not a scalar: not recorded
    assert int(red["losses_size"]) > 0
    miner = _read_csv(folder / f"{MINER_GROUP}.csv")[-1]
    assert float(miner["margin"]) == pytest.approx(0.2)
    assert int(miner["num_triplets"]) == triplets[4] != triplets[5]
    assert float(_read_csv(folder / "trunk_optimizer_SGD.csv")[0]["lr"]) == pytest.approx(0.01)
    assert float(_read_csv(folder / "embedder_optimizer_Adam.csv")[0]["lr"]) == pytest.approx(0.002)
    # the SQLite file holds the same rows
    db = folder / "logs.db"
    rows = _db_rows(db, "loss_histories")
    assert [r["global_iteration"] for r in rows] == [2, 4]
    assert rows[1]["metric_loss"] == pytest.approx(values[4])
    assert _db_rows(db, MINER_GROUP)[-1]["num_triplets"] == int(miner["num_triplets"])
    assert _db_rows(db, DIST_GROUP)[-1]["initial_avg_query_norm"] == pytest.approx(
        float(dist["initial_avg_query_norm"])
    )
    assert keeper.query("SELECT COUNT(*) AS n FROM loss_histories")[0]["n"] == 2
    assert hooks.get_loss_history() == {"metric_loss": [values[2], values[4]]}
    assert hooks.get_loss_history(["other"]) == {}


def test_loss_tracker_of_pml_trainers_is_read(tmp_path):
    keeper, _, _ = logging_presets.get_record_keeper(str(tmp_path))
    trainer = _fake_trainer()
    trainer.loss_tracker = SimpleNamespace(
        losses={"metric_loss": 0.5, "total_loss": 0.75}, loss_weights={"metric_loss": 2.0}
    )
    trainer.get_global_iteration = lambda: 123
    trainer.iteration = 50
    HookContainer(keeper).end_of_iteration_hook(trainer)  # default log_freq 50
    trainer.iteration = 51
    HookContainer(keeper).end_of_iteration_hook(trainer)  # skipped
    keeper.save_records()
    assert _read_csv(tmp_path / "loss_histories.csv") == [
        {"global_iteration": "123", "metric_loss": "0.5", "total_loss": "0.75"}
    ]
    assert _read_csv(tmp_path / "loss_weights.csv")[0]["metric_loss"] == "2.0"


def test_new_columns_and_repeated_saves_keep_csv_and_db_consistent(tmp_path):
    writer = RecordWriter(str(tmp_path))
    writer.append("g", 0, {"a": 1})
    writer.save()
    writer.append("g", 1, {"a": 2, "b": 3.5})
    writer.append("g", 1, {"c": 4})  # merged into the same row
    writer.save()
    writer.save()  # nothing new: no duplicate rows
    assert _read_csv(tmp_path / "g.csv") == [
        {"global_iteration": "0", "a": "1", "b": "", "c": ""},
        {"global_iteration": "1", "a": "2", "b": "3.5", "c": "4"},
    ]
    rows = _db_rows(tmp_path / "logs.db", "g")
    assert [(r["global_iteration"], r["a"], r["b"], r["c"]) for r in rows] == [
        (0, 1, None, None),
        (1, 2, 3.5, 4),
    ]
    assert not glob.glob(str(tmp_path / "*.tmp"))


def test_global_db_has_experiment_names_and_refuses_duplicates(tmp_path):
    gdb = str(tmp_path / "global.db")
    for name in ("exp_a", "exp_b"):
        keeper, _, _ = logging_presets.get_record_keeper(
            str(tmp_path / name), global_db_path=gdb, experiment_name=name
        )
        keeper.update_records({"x": 1.5}, 7, input_group_name_for_non_objects="grp")
        keeper.save_records()
    rows = _db_rows(gdb, "grp")
    assert [(r["experiment_name"], r["global_iteration"], r["x"]) for r in rows] == [
        ("exp_a", 7, 1.5),
        ("exp_b", 7, 1.5),
    ]
    with pytest.raises(ValueError, match=r"new experiment name.*'exp_a'"):
        logging_presets.get_record_keeper(
            str(tmp_path / "c"), global_db_path=gdb, experiment_name="exp_a"
        )
    keeper, _, _ = logging_presets.get_record_keeper(
        str(tmp_path / "exp_a"),
        global_db_path=gdb,
        experiment_name="exp_a",
        is_new_experiment=False,
    )
    assert keeper.query("SELECT * FROM grp", use_global_db=True)[0]["experiment_name"] == "exp_a"


def test_to_scalar():
    assert to_scalar(True) == 1 and to_scalar(3) == 3 and to_scalar(2.5) == 2.5
    assert to_scalar(torch.tensor([4.0])) == 4.0 and to_scalar(torch.tensor(7)) == 7
    assert to_scalar(torch.ones(2)) is None and to_scalar("a") is None and to_scalar(None) is None


# ---------------------------------------------------------------------------- tensorboard
def test_tensorboard_event_files_readable_by_tensorboard(tmp_path):
    if not is_available("tensorboard"):
        pytest.skip("tensorboard is not installed (extra [tensorboard])")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    keeper, _, tb = logging_presets.get_record_keeper(str(tmp_path / "csv"), str(tmp_path / "tb"))
    assert tb is not None
    hooks = logging_presets.get_hook_container(keeper, log_freq=1)
    trainer = _fake_trainer()
    expected = []
    for step in (1, 2, 3):
        _train_step(trainer, step)
        hooks.end_of_iteration_hook(trainer)
        expected.append(float(trainer.losses["metric_loss"].detach()))
    keeper.close()
    assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "loss_histories/metric_loss" in tags
    assert f"{MINER_GROUP}/num_triplets" in tags and f"{DIST_GROUP}/p" in tags
    events = acc.Scalars("loss_histories/metric_loss")
    assert [e.step for e in events] == [1, 2, 3]
    assert [e.value for e in events] == pytest.approx(expected, rel=1e-6)
    assert acc.Scalars("trunk_optimizer_SGD/lr")[0].value == pytest.approx(0.01)


def test_missing_tensorboard_raises_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(MissingDependencyError, match=r"deepmetric\[tensorboard\]"):
        logging_presets.get_record_keeper(str(tmp_path / "csv"), str(tmp_path / "tb"))


# ---------------------------------------------------------------------------- epochs and models
def _run_epochs(tmp_path, goodness, patience=None, test_interval=1, prefix=None):
    keeper, _, _ = logging_presets.get_record_keeper(str(tmp_path / "logs"))
    hooks = logging_presets.get_hook_container(
        keeper, primary_metric="precision_at_1", record_group_name_prefix=prefix
    )
    tester = _tester(hooks)
    folder = str(tmp_path / "models")
    hook = hooks.end_of_epoch_hook(
        tester, _data(), folder, test_interval=test_interval, patience=patience
    )
    trainer = _fake_trainer()
    results, weights = [], {}
    for epoch, good in enumerate(goodness, start=1):
        trainer.epoch = epoch
        _set_trunk(trainer, good, scale=float(epoch))
        weights[epoch] = trainer.models["trunk"].weight.detach().clone()
        results.append(hook(trainer))
        if not results[-1]:
            break
    return hooks, tester, trainer, folder, results, weights


def test_best_and_latest_models_saved_and_reloaded(tmp_path):
    hooks, tester, _, folder, results, weights = _run_epochs(tmp_path, [False, True, False, False])
    assert results == [True, True, True, True]
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*")))
    keys = [
        "embedder",
        "embedder_optimizer",
        "metric_loss",
        "trunk",
        "trunk_optimizer",
        "tuple_miner",
    ]
    assert names == sorted([f"{k}_4.pth" for k in keys] + [f"{k}_best2.pth" for k in keys])
    assert hooks.get_best_epoch_and_accuracy(tester, "val") == (2, pytest.approx(1.0))
    # reload the best, then the latest, into a fresh trainer
    fresh = _fake_trainer(seed=1)
    assert hooks.load_latest_saved_models(fresh, folder, best=True) == 3
    torch.testing.assert_close(fresh.models["trunk"].weight, weights[2])
    assert hooks.load_latest_saved_models(fresh, folder, device="cpu") == 5
    torch.testing.assert_close(fresh.models["trunk"].weight, weights[4])
    assert fresh.optimizers["trunk_optimizer"].param_groups[0]["lr"] == pytest.approx(0.01)
    assert hooks.load_latest_saved_models(fresh, str(tmp_path / "empty")) == 1


def test_accuracies_recorded_with_best_epoch_csv_and_db(tmp_path):
    hooks, tester, _, _, _, _ = _run_epochs(tmp_path, [False, True, False])
    rows = _read_csv(tmp_path / "logs" / f"{ACC_GROUP}.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [int(r["best_epoch"]) for r in rows] == [1, 2, 2]
    accs = [float(r[PRIMARY]) for r in rows]
    assert accs[1] == pytest.approx(1.0) and accs[0] < 0.7 and accs[2] < 0.7
    assert float(rows[2]["best_accuracy"]) == pytest.approx(1.0)
    assert "mean_average_precision_at_r_level0" in rows[0]
    db_rows = _db_rows(tmp_path / "logs" / "logs.db", ACC_GROUP)
    assert [r[PRIMARY] for r in db_rows] == pytest.approx(accs)
    history = hooks.get_accuracy_history(tester, "val", metrics=["mean_average_precision_at_r"])
    assert history["epoch"] == [1, 2, 3] and history[PRIMARY] == pytest.approx(accs)
    assert "mean_average_precision_at_r_level0" in history
    assert "best_epoch" in hooks.get_accuracy_history(tester, "val", return_all_metrics=True)
    assert hooks.get_accuracies_of_epoch(tester, "val", 2, select_all=False) == [
        {PRIMARY: pytest.approx(1.0)}
    ]
    assert hooks.get_accuracies_of_epoch(tester, "val", 3)[0]["best_epoch"] == 2


def test_patience_runs_out_returns_false(tmp_path):
    _, _, _, folder, results, _ = _run_epochs(tmp_path, [True, False, False, False], patience=1)
    assert results == [True, True, False]  # epoch 3 - best epoch 1 > patience 1
    assert os.path.exists(os.path.join(folder, "trunk_best1.pth"))
    assert os.path.exists(os.path.join(folder, "trunk_3.pth"))
    assert not os.path.exists(os.path.join(folder, "trunk_2.pth"))


def test_patience_zero_and_none():
    assert HookContainer.patience_remaining(5, 5, 0)
    assert not HookContainer.patience_remaining(6, 5, 0)
    assert HookContainer.patience_remaining(100, 1, None)
    assert HookContainer.patience_remaining(3, None, 0)


def test_test_interval_skips_epochs(tmp_path):
    _, _, _, folder, results, _ = _run_epochs(tmp_path, [True, True, False, False], test_interval=2)
    assert results == [True] * 4
    rows = _read_csv(tmp_path / "logs" / f"{ACC_GROUP}.csv")
    assert [int(r["epoch"]) for r in rows] == [2, 4]
    assert sorted(
        os.path.basename(p) for p in glob.glob(os.path.join(folder, "trunk_[0-9b]*"))
    ) == [
        "trunk_4.pth",
        "trunk_best2.pth",
    ]


def test_record_group_names_prefix_and_reference_splits(tmp_path):
    keeper, _, _ = logging_presets.get_record_keeper(str(tmp_path / "logs"))
    hooks = HookContainer(keeper, record_group_name_prefix="run1", primary_metric="precision_at_1")
    tester = _tester(hooks)
    data = _data()["val"]
    split = {"train": TensorDataset(*data[:24]), "val": TensorDataset(*data[24:])}
    trainer = _fake_trainer()
    _set_trunk(trainer, True)
    tester.test(split, 0, trainer.models["trunk"], splits_to_eval=[("val", ["train", "val"])])
    base = "run1_accuracies_normalized_GlobalEmbeddingSpaceTester_level_0"
    assert hooks.record_group_name(tester, "val") == f"{base}_VAL_vs_TRAIN_and_VAL"
    assert keeper.table_exists(f"{base}_VAL_vs_TRAIN_and_VAL")
    assert hooks.optimizer_custom_attr_func(trainer.optimizers["trunk_optimizer"]) == {"lr": 0.01}


def test_no_model_saving_when_save_models_false(tmp_path):
    keeper, _, _ = logging_presets.get_record_keeper(str(tmp_path / "logs"))
    hooks = HookContainer(keeper, primary_metric="precision_at_1", save_models=False)
    hook = hooks.end_of_epoch_hook(_tester(hooks), _data(), str(tmp_path / "m"))
    trainer = _fake_trainer()
    assert hook(trainer) is True
    assert os.listdir(tmp_path / "m") == []


def test_dataparallel_models_saved_unwrapped(tmp_path):
    keeper, _, _ = logging_presets.get_record_keeper(str(tmp_path / "logs"))
    hooks = HookContainer(keeper)
    trainer = _fake_trainer()
    trainer.models["trunk"] = torch.nn.DataParallel(trainer.models["trunk"])
    hooks.save_models(trainer, str(tmp_path / "m"), 1)
    state = torch.load(tmp_path / "m" / "trunk_1.pth")
    assert set(state) == {"weight", "bias"}


def test_empty_container_without_record_keeper():
    hooks = logging_presets.get_hook_container(None)
    assert isinstance(hooks, EmptyContainer)
    assert hooks.end_of_iteration_hook is None and hooks.end_of_testing_hook is None
    assert hooks.end_of_epoch_hook(1, 2, x=3) is None


# ---------------------------------------------------------------------------- errors
def test_bad_inputs_raise(tmp_path):
    keeper, _, _ = logging_presets.get_record_keeper(str(tmp_path / "logs"))
    with pytest.raises(TypeError, match="HookContainer: expected a RecordKeeper, got dict"):
        HookContainer({})
    with pytest.raises(ValueError, match="HookContainer: expected `log_freq` to be an int >= 1"):
        HookContainer(keeper, log_freq=0)
    hooks = HookContainer(keeper)  # primary metric mean_average_precision_at_r
    tester = GlobalEmbeddingSpaceTester(
        accuracy_calculator=AccuracyCalculator(include=("precision_at_1",))
    )
    with pytest.raises(ValueError, match="`primary_metric` among the tester's metrics"):
        hooks.end_of_epoch_hook(tester, _data(), str(tmp_path / "m"))
    hooks = HookContainer(keeper, primary_metric="precision_at_1")
    with pytest.raises(ValueError, match="`test_interval` to be an int >= 1"):
        hooks.end_of_epoch_hook(tester, _data(), str(tmp_path / "m"), test_interval=0)
    with pytest.raises(ValueError, match="`patience` to be None or an int >= 0"):
        hooks.end_of_epoch_hook(tester, _data(), str(tmp_path / "m"), patience=-1)
    tester.all_accuracies = {"val": {"epoch": 0}}
    with pytest.raises(ValueError, match="primary metric 'precision_at_1' in the accuracies"):
        hooks.get_curr_primary_metric(tester, "val")
    with pytest.raises(TypeError, match="RecordKeeper: expected `record_these` to be a dict"):
        keeper.update_records([1], 0)
    with pytest.raises(ValueError, match="`input_group_name_for_non_objects`"):
        keeper.update_records({"a": 1.0}, 0)
    with pytest.raises(ValueError, match="a record_writer to query"):
        RecordKeeper().query("SELECT 1")
    with pytest.raises(ValueError, match="a global database for use_global_db=True"):
        keeper.query("SELECT 1", use_global_db=True)
    with pytest.raises(TypeError, match="RecordWriter: expected `folder` to be a path"):
        RecordWriter(3)  # type: ignore[arg-type]
