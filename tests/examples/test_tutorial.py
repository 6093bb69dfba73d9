"""The tutorial runs end to end on a subset of digits (one short epoch) and writes its outputs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "tutorial_triplet_vs_arcface.py")


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["triplet", "arcface"])
def test_tutorial_one_short_epoch_on_digits(tmp_path, loss: str) -> None:
    command = [
        sys.executable,
        SCRIPT,
        "--loss", loss,
        "--dataset", "digits",
        "--epochs", "1",
        "--max-samples", "160",
        "--batch-size", "64",
        "--out", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / loss
    assert (run / "umap" / "01.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(run / "logs" / "loss_histories.csv", newline="") as handle:
        losses = list(csv.DictReader(handle))
    assert losses and all(float(r["total_loss"]) >= 0 for r in losses)
    accuracy_files = [f for f in os.listdir(run / "logs") if f.startswith("accuracies_")]
    assert len(accuracy_files) == 1
    with open(run / "logs" / accuracy_files[0], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1]
    assert 0.0 <= float(rows[0]["precision_at_1_level0"]) <= 1.0
    assert (run / "logs" / "logs.db").is_file()
    saved = os.listdir(run / "saved_models")
    assert "trunk_best1.pth" in saved and "embedder_best1.pth" in saved
    assert "visualizer:" in result.stderr  # says which visualizer (UMAP or the PCA fallback)

    from deepmetric.reports.run_report import build_report

    md_path, html_path = build_report(str(tmp_path), [loss])
    with open(md_path) as handle:
        assert "precision_at_1_level0" in handle.read()
    with open(html_path) as handle:
        assert "data:image/png;base64," in handle.read()
