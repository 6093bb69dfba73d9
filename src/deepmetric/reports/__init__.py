"""Reports that compare training runs: ``build_report`` writes ``report.md`` and ``report.html``."""

from __future__ import annotations

from .run_report import RunRecords, build_report, load_run

__all__ = ["RunRecords", "build_report", "load_run"]
