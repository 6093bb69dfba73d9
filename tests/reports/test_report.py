"""build_report on a tiny fake run folder written the way the hooks write it."""

from __future__ import annotations

import base64
import os

import pytest

pytest.importorskip("matplotlib")

from deepmetric.reports.__main__ import main as report_main
from deepmetric.reports.run_report import build_report, load_run

# a 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
ACC = "accuracies_normalized_GlobalEmbeddingSpaceTester_level_0_VAL_vs_self.csv"


def _fake_run(root, name: str, p1: list[float], losses: list[float]) -> None:
    run = root / name
    (run / "logs").mkdir(parents=True)
    (run / "umap").mkdir()
    (run / "saved_models").mkdir()
    lines = ["global_iteration,metric_loss,total_loss"]
    lines += [f"{i},{v},{v}" for i, v in enumerate(losses)]
    (run / "logs" / "loss_histories.csv").write_text("\n".join(lines) + "\n")
    acc = ["global_iteration,epoch,precision_at_1_level0,best_epoch,best_accuracy"]
    acc += [f"{e},{e},{v},{e},{v}" for e, v in enumerate(p1, start=1)]
    (run / "logs" / ACC).write_text("\n".join(acc) + "\n")
    for epoch in range(1, len(p1) + 1):
        (run / "umap" / f"{epoch:02d}.png").write_bytes(PNG)
        (run / "saved_models" / f"trunk_{epoch}.pth").write_bytes(b"x")
    (run / "saved_models" / "trunk_best1.pth").write_bytes(b"x")
    (run / "saved_models" / f"trunk_best{len(p1)}.pth").write_bytes(b"x")
    (run / "saved_models" / f"embedder_best{len(p1)}.pth").write_bytes(b"x")


def test_load_run(tmp_path) -> None:
    _fake_run(tmp_path, "triplet", [0.5, 0.75], [1.0, 0.8, 0.6])
    run = load_run(str(tmp_path / "triplet"))
    assert run.name == "triplet" and run.epochs == [1, 2]
    assert run.accuracies["precision_at_1_level0"] == [0.5, 0.75]
    assert run.losses["total_loss"] == [1.0, 0.8, 0.6]
    assert sorted(run.images) == [1, 2]
    assert run.best_epoch == 2
    assert sorted(os.path.basename(p) for p in run.best_checkpoints) == [
        "embedder_best2.pth",
        "trunk_best2.pth",
    ]
    assert run.metric_names() == ["precision_at_1_level0"]


def test_report_contains_metrics_images_and_checkpoints(tmp_path) -> None:
    _fake_run(tmp_path, "triplet", [0.5, 0.75], [1.0, 0.8, 0.6])
    _fake_run(tmp_path, "arcface", [0.625, 0.875], [30.0, 20.0, 10.0])
    md_path, html_path = build_report(str(tmp_path), ["triplet", "arcface"], title="T vs A")
    assert os.path.isfile(md_path) and os.path.isfile(html_path)
    assert os.path.isfile(tmp_path / "training_loss.png")
    assert os.path.isfile(tmp_path / "accuracy_curves.png")
    with open(md_path) as handle:
        md = handle.read()
    assert "# T vs A" in md
    assert "| epoch | precision_at_1_level0 (triplet) | precision_at_1_level0 (arcface) |" in md
    assert "| 1 | 0.5000 | 0.6250 |" in md and "| 2 | 0.7500 | 0.8750 |" in md
    assert "triplet/umap/01.png" in md and "arcface/umap/02.png" in md
    assert "training_loss.png" in md
    assert "`triplet/saved_models/trunk_best2.pth`" in md and "best epoch 2" in md
    with open(html_path) as handle:
        html = handle.read()
    assert html.count("data:image/png;base64,") == 2 + 4  # two curve plots + 2 runs x 2 epochs
    assert base64.b64encode(PNG).decode() in html
    assert "<td>0.8750</td>" in html and "arcface/saved_models/embedder_best2.pth" in html
    assert "umap/01.png" not in html  # self-contained: no file references for images


def test_report_default_runs_out_dir_and_cli(tmp_path, capsys) -> None:
    _fake_run(tmp_path, "b", [0.5], [1.0])
    _fake_run(tmp_path, "a", [0.25], [2.0])
    out = tmp_path / "report"
    report_main([str(tmp_path), "--out", str(out)])
    assert "wrote" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert "(a) | precision_at_1_level0 (b)" in md  # sorted run order by default
    assert "../a/umap/01.png" in md


def test_report_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="build_report: expected `root`"):
        build_report(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="build_report: expected run folders"):
        build_report(str(tmp_path))
    (tmp_path / "empty" / "logs").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="build_report: expected records"):
        build_report(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="build_report: expected a run folder"):
        load_run(str(tmp_path / "missing"))
