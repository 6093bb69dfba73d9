"""``examples/distributed_triplet.py`` under ``torchrun`` (2 gloo processes) and in one process."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys

import torch

from deepmetric.datasets import Digits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "distributed_triplet.py")
BATCH = 40


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _example_module():
    spec = importlib.util.spec_from_file_location("distributed_triplet", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torchrun_two_processes_one_epoch_writes_one_set_of_logs(tmp_path) -> None:
    result = _run([
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        SCRIPT, "--epochs", "1", "--batch-size", str(BATCH), "--out", str(tmp_path),
    ])  # fmt: skip
    output = result.stdout + result.stderr
    assert "[rank 0] INFO world size 2, backend gloo" in output
    assert "[rank 1] INFO" not in output  # only rank 0 logs
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt", "logs", "saved_models"]

    logs = tmp_path / "logs"
    steps = len(Digits(train=True)) // (2 * BATCH)  # the global batch is both ranks' batches
    losses = _rows(str(logs / "loss_histories.csv"))
    assert [int(r["global_iteration"]) for r in losses] == list(range(steps))
    accuracy_files = [f for f in os.listdir(logs) if f.startswith("accuracies_")]
    assert len(accuracy_files) == 1
    (row,) = _rows(str(logs / accuracy_files[0]))
    assert int(row["epoch"]) == 1
    assert float(row["precision_at_1_level0"]) > 0.8  # digits are easy: training did happen

    trunk = _example_module().make_trunk()
    state = torch.load(tmp_path / "saved_models" / "trunk_best1.pth", weights_only=True)
    trunk.load_state_dict(state)  # saved without DDP's "module." prefix
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["epoch"] == 1
    for key, value in state.items():
        torch.testing.assert_close(checkpoint["models"]["trunk"][key], value)


def test_the_same_script_trains_in_one_process(tmp_path) -> None:
    result = _run([
        sys.executable, SCRIPT, "--epochs", "1", "--max-samples", "400", "--out", str(tmp_path),
    ])  # fmt: skip
    assert "world size 1, backend None" in result.stdout + result.stderr
    assert (tmp_path / "checkpoint.pt").exists()
    assert (tmp_path / "saved_models" / "trunk_best1.pth").exists()
