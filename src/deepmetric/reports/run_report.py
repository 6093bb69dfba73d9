"""Compare runs written by the tutorial / ``logging_presets`` hooks in Markdown and HTML.

A run folder holds ``logs/`` (the CSV files of :class:`deepmetric.hooks.RecordWriter`:
``loss_histories.csv`` and ``accuracies_*.csv``), ``umap/{epoch:02d}.png`` (the visualizer hook's
plots) and ``saved_models/`` (``<name>_best<epoch>.pth`` checkpoints). :func:`build_report` reads
them, plots the training-loss and accuracy curves with matplotlib and writes ``report.md`` (images
as relative paths) and ``report.html`` (self-contained: images embedded as base64).
"""

from __future__ import annotations

import base64
import csv
import glob
import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .._optional import optional_import
from .._validation import fail

_OWNER = "build_report"
LOSS_FILE = "loss_histories.csv"
ACCURACY_PREFIX = "accuracies_"
_BEST = re.compile(r"^(?P<name>.+)_best(?P<epoch>\d+)\.pth$")
_NOT_METRICS = {"global_iteration", "epoch", "best_epoch", "best_accuracy"}


@dataclass
class RunRecords:
    """What one run folder holds (values are floats; missing cells are None)."""

    name: str
    folder: str
    losses: dict[str, list[float | None]] = field(default_factory=dict)
    accuracies: dict[str, list[float | None]] = field(default_factory=dict)
    epochs: list[int] = field(default_factory=list)
    images: dict[int, str] = field(default_factory=dict)
    best_epoch: int | None = None
    best_checkpoints: list[str] = field(default_factory=list)

    def metric_names(self) -> list[str]:
        return [k for k in self.accuracies if k not in _NOT_METRICS]


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_csv_columns(path: str) -> dict[str, list[float | None]]:
    """A CSV file as ``{column: [float or None per row]}``."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float | None]] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, [])
    for key in columns:
        columns[key] = [_to_float(row.get(key) or "") for row in rows]
    return columns


def load_run(folder: str, name: str | None = None) -> RunRecords:
    """Read the records, plots and best checkpoints of one run folder."""
    if not os.path.isdir(folder):
        fail(_OWNER, "a run folder", repr(folder), exc=FileNotFoundError)
    run = RunRecords(name=name or os.path.basename(os.path.normpath(folder)), folder=folder)
    logs = os.path.join(folder, "logs")
    loss_path = os.path.join(logs, LOSS_FILE)
    if os.path.isfile(loss_path):
        run.losses = read_csv_columns(loss_path)
    accuracy_files = sorted(glob.glob(os.path.join(logs, ACCURACY_PREFIX + "*.csv")))
    if accuracy_files:
        run.accuracies = read_csv_columns(accuracy_files[0])
        key = "epoch" if "epoch" in run.accuracies else "global_iteration"
        run.epochs = [int(v) for v in run.accuracies.get(key, []) if v is not None]
    for path in sorted(glob.glob(os.path.join(folder, "umap", "*.png"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem.isdigit():
            run.images[int(stem)] = path
    best: dict[int, list[str]] = {}
    for path in sorted(glob.glob(os.path.join(folder, "saved_models", "*.pth"))):
        match = _BEST.match(os.path.basename(path))
        if match:
            best.setdefault(int(match["epoch"]), []).append(path)
    if best:
        run.best_epoch = max(best)
        run.best_checkpoints = best[run.best_epoch]
    if not run.losses and not run.accuracies:
        fail(
            _OWNER,
            f"records ({LOSS_FILE} or {ACCURACY_PREFIX}*.csv) in {logs!r}",
            "none",
            fix="run the tutorial (or any trainer with logging_presets hooks) first",
            exc=FileNotFoundError,
        )
    return run


def _plot_curves(runs: Sequence[RunRecords], out_dir: str) -> dict[str, str]:
    matplotlib = optional_import("matplotlib", "The report's plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, str] = {}
    # one panel per run: the losses of different set-ups have different scales
    fig, loss_axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.5), squeeze=False)
    for ax, run in zip(loss_axes[0], runs, strict=True):
        steps = run.losses.get("global_iteration", [])
        values = run.losses.get("total_loss") or run.losses.get("metric_loss") or []
        points = [
            (s, v) for s, v in zip(steps, values, strict=False) if s is not None and v is not None
        ]
        ax.plot([p[0] for p in points], [p[1] for p in points])
        ax.set_xlabel("iteration")
        ax.set_ylabel("training loss")
        ax.set_title(f"Training loss: {run.name}")
    paths["loss"] = os.path.join(out_dir, "training_loss.png")
    fig.savefig(paths["loss"], dpi=80, bbox_inches="tight")
    plt.close(fig)

    metrics = sorted({m for run in runs for m in run.metric_names()})
    if metrics:
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            for run in runs:
                values = run.accuracies.get(metric, [])
                points = [(e, v) for e, v in zip(run.epochs, values, strict=False) if v is not None]
                ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=run.name)
            ax.set_title(metric, fontsize=8)
            ax.set_xlabel("epoch")
        axes[0][0].legend()
        paths["accuracy"] = os.path.join(out_dir, "accuracy_curves.png")
        fig.savefig(paths["accuracy"], dpi=80, bbox_inches="tight")
        plt.close(fig)
    return paths


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _metric_rows(runs: Sequence[RunRecords]) -> tuple[list[str], list[list[str]]]:
    """The side-by-side table: one row per epoch, one column per (metric, run)."""
    metrics = sorted({m for run in runs for m in run.metric_names()})
    header = ["epoch"] + [f"{m} ({run.name})" for m in metrics for run in runs]
    epochs = sorted({e for run in runs for e in run.epochs})
    rows = []
    for epoch in epochs:
        row = [str(epoch)]
        for metric in metrics:
            for run in runs:
                values = run.accuracies.get(metric, [])
                value = next(
                    (v for e, v in zip(run.epochs, values, strict=False) if e == epoch), None
                )
                row.append(_fmt(value))
        rows.append(row)
    return header, rows


def _image_uri(path: str) -> str:
    with open(path, "rb") as handle:
        return "data:image/png;base64," + base64.b64encode(handle.read()).decode("ascii")


def build_report(
    root: str,
    run_names: Sequence[str] | None = None,
    out_dir: str | None = None,
    title: str = "deepmetric run report",
) -> tuple[str, str]:
    """Write ``report.md`` and ``report.html`` comparing the runs ``root/<name>``.

    Args:
        root: folder with one sub-folder per run.
        run_names: the runs, in column order (default: every sub-folder with records, sorted).
        out_dir: where the reports and curve plots go (default: ``root``).
        title: the report's title.

    Returns:
        ``(markdown_path, html_path)``.
    """
    if not os.path.isdir(root):
        fail(_OWNER, "`root` to be an existing folder", repr(root), exc=FileNotFoundError)
    if run_names is None:
        run_names = sorted(
            d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, "logs"))
        )
    if not run_names:
        fail(_OWNER, f"run folders with logs/ in {root!r}", "none", exc=FileNotFoundError)
    runs = [load_run(os.path.join(root, name), name) for name in run_names]
    out_dir = out_dir or root
    os.makedirs(out_dir, exist_ok=True)
    plots = _plot_curves(runs, out_dir)
    header, rows = _metric_rows(runs)

    def rel(path: str) -> str:
        return os.path.relpath(path, out_dir).replace(os.sep, "/")

    md = [f"# {title}", "", "## Accuracy per epoch (test split)", ""]
    md.append("| " + " | ".join(header) + " |")
    md.append("|" + "---|" * len(header))
    md += ["| " + " | ".join(row) + " |" for row in rows]
    md += ["", "## Training curves", "", f"![training loss]({rel(plots['loss'])})", ""]
    if "accuracy" in plots:
        md += [f"![accuracy]({rel(plots['accuracy'])})", ""]
    md += ["## Best checkpoints", ""]
    for run in runs:
        paths = ", ".join(f"`{rel(p)}`" for p in run.best_checkpoints) or "none saved"
        md.append(f"- **{run.name}** (best epoch {run.best_epoch}): {paths}")
    md += ["", "## Embeddings of the test split per epoch", ""]
    epochs = sorted({e for run in runs for e in run.images})
    md.append("| epoch | " + " | ".join(run.name for run in runs) + " |")
    md.append("|---|" + "---|" * len(runs))
    for epoch in epochs:
        cells = [
            f"![{run.name} epoch {epoch}]({rel(run.images[epoch])})" if epoch in run.images else "-"
            for run in runs
        ]
        md.append(f"| {epoch} | " + " | ".join(cells) + " |")
    md_path = os.path.join(out_dir, "report.md")
    with open(md_path, "w") as handle:
        handle.write("\n".join(md) + "\n")

    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}img{max-width:100%}</style>",
        f"</head><body><h1>{esc(title)}</h1>",
        "<h2>Accuracy per epoch (test split)</h2><table>",
        "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>",
    ]
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
    parts += ["</table>", "<h2>Training curves</h2>"]
    for key in ("loss", "accuracy"):
        if key in plots:
            parts.append(f'<p><img alt="{key}" src="{_image_uri(plots[key])}"></p>')
    parts.append("<h2>Best checkpoints</h2><ul>")
    for run in runs:
        codes = ", ".join(f"<code>{esc(rel(p))}</code>" for p in run.best_checkpoints)
        codes = codes or "none saved"
        parts.append(f"<li><b>{esc(run.name)}</b> (best epoch {run.best_epoch}): {codes}</li>")
    parts += ["</ul>", "<h2>Embeddings of the test split per epoch</h2><table>"]
    parts.append("<tr><th>epoch</th>" + "".join(f"<th>{esc(r.name)}</th>" for r in runs) + "</tr>")
    for epoch in epochs:
        row_html = "".join(
            f'<td><img width="360" alt="{esc(run.name)} epoch {epoch}" '
            f'src="{_image_uri(run.images[epoch])}"></td>'
            if epoch in run.images
            else "<td>-</td>"
            for run in runs
        )
        parts.append(f"<tr><td>{epoch}</td>{row_html}</tr>")
    parts.append("</table></body></html>")
    html_path = os.path.join(out_dir, "report.html")
    with open(html_path, "w") as handle:
        handle.write("\n".join(parts) + "\n")
    return md_path, html_path
