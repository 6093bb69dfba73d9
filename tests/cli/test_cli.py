"""The command line: ``deepmetric list / evaluate / report`` (in process, and one real launch)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch

from deepmetric._registry import LOSSES
from deepmetric.cli import main
from deepmetric.metrics.accuracy_calculator import AccuracyCalculator


def _clustered(seed: int, n_per_class: int = 12, classes: int = 4, dim: int = 6):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    centres = rng.normal(size=(classes, dim)) * 3
    x = centres[labels] + rng.normal(size=(len(labels), dim))
    return x.astype(np.float32), labels


def test_list_losses_as_json(capsys) -> None:
    assert main(["list", "losses", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    entries = {e["name"]: e for e in table["losses"]}
    assert set(entries) == set(LOSSES.names())
    arcface = entries["ArcFaceLoss"]
    assert arcface["arguments"]["num_classes"] is None  # required
    assert arcface["arguments"]["margin"] == "28.6"
    assert arcface["more_keywords"] and arcface["summary"]


def test_list_every_kind_as_text(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for heading in ("distances (", "losses (", "miners (", "reducers (", "samplers (", "knn ("):
        assert heading in out
    assert "  LpDistance(normalize_embeddings=True, p=2, power=1, collect_stats=None)" in out


def test_evaluate_equals_the_accuracy_calculator(tmp_path, capsys) -> None:
    query, query_labels = _clustered(0)
    reference, reference_labels = _clustered(1)
    np.save(tmp_path / "q.npy", query)
    np.savez(tmp_path / "ql.npz", labels=query_labels)
    torch.save(torch.from_numpy(reference), tmp_path / "r.pt")
    np.save(tmp_path / "rl.npy", reference_labels)
    argv = [
        "evaluate", str(tmp_path / "q.npy"), str(tmp_path / "ql.npz"),
        "--reference", str(tmp_path / "r.pt"), "--reference-labels", str(tmp_path / "rl.npy"),
        "--exclude", "NMI", "AMI", "--k", "5", "--json", str(tmp_path / "m.json"),
    ]  # fmt: skip
    assert main(argv) == 0
    expected = AccuracyCalculator(exclude=("NMI", "AMI"), k=5).get_accuracy(
        torch.from_numpy(query),
        torch.from_numpy(query_labels),
        torch.from_numpy(reference),
        torch.from_numpy(reference_labels),
    )
    written = json.loads((tmp_path / "m.json").read_text())
    assert written.keys() == expected.keys()
    for name, value in expected.items():
        assert written[name] == pytest.approx(value, rel=1e-6)
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert float(printed["precision_at_1"]) == pytest.approx(expected["precision_at_1"], abs=1e-6)


def test_evaluate_queries_against_themselves(tmp_path, capsys) -> None:
    query, labels = _clustered(2)
    np.save(tmp_path / "q.npy", query)
    np.save(tmp_path / "l.npy", labels)
    assert main(["evaluate", str(tmp_path / "q.npy"), str(tmp_path / "l.npy"),
                 "--include", "precision_at_1"]) == 0  # fmt: skip
    expected = AccuracyCalculator(include=("precision_at_1",)).get_accuracy(
        torch.from_numpy(query), torch.from_numpy(labels)
    )["precision_at_1"]
    assert capsys.readouterr().out.split() == ["precision_at_1", f"{expected:.6f}"]


@pytest.mark.parametrize(
    ("files", "extra", "message"),
    [
        (("q.npy", "missing.npy"), [], "`query_labels` to be an existing file"),
        (("q.npy", "l.txt"), [], "with a suffix among"),
        (("q.npy", "l.npy"), ["--reference", "q.npy"], "`--reference` and `--reference-labels`"),
        (("q.npy", "l.npy"), ["--k", "many"], '`--k` to be an int, "max_bin_count" or None'),
        (("q.npy", "short.npy"), [], "labels"),  # 47 labels for 48 embeddings
        (("q.npy", "l.npy"), ["--include", "precision_at_one"], "precision_at_one"),
    ],
)
def test_evaluate_bad_input_is_one_error_line(tmp_path, capsys, files, extra, message) -> None:
    query, labels = _clustered(0)
    np.save(tmp_path / "q.npy", query)
    np.save(tmp_path / "l.npy", labels)
    np.save(tmp_path / "short.npy", labels[:-1])
    (tmp_path / "l.txt").write_text("0\n")
    extra = [str(tmp_path / a) if a.endswith(".npy") else a for a in extra]
    argv = ["evaluate", *(str(tmp_path / f) for f in files), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_report_without_runs_is_an_error(tmp_path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "run folders with logs/" in capsys.readouterr().err


def test_python_dash_m_and_the_console_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deepmetric", "list", "distances"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "CosineSimilarity(" in result.stdout
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("deepmetric") == "deepmetric.cli:main"
    usage = subprocess.run([sys.executable, "-m", "deepmetric"], capture_output=True, text=True)
    assert usage.returncode == 2 and "COMMAND" in usage.stderr
