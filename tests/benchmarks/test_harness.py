"""Smoke tests of the benchmark harness: subprocess machinery and report, no timing claims."""

from __future__ import annotations

from benchmarks.child import classify
from benchmarks.report import summary
from benchmarks.runner import Config, run_workload
from benchmarks.workloads import QUICK_MAX_N, WORKLOADS, select


def test_one_distance_case_runs_in_a_subprocess_and_its_row_parses():
    w = WORKLOADS["distance_lp/N=1024"]
    row = run_workload(w, ["deepmetric"], Config(repeats=2, timeout_s=60, mem_cap_gb=8))

    r = row["deepmetric"]
    assert r.status == "ok", r.message
    assert len(r.times_ms) == 2
    assert all(t > 0 for t in r.times_ms)
    assert r.rss_setup_mb is not None and r.rss_setup_mb > 0
    assert r.peak_mb is not None and r.peak_mb >= r.rss_setup_mb
    assert r.peak_extra_mb is not None and r.peak_extra_mb >= 0

    table = summary({w.name: row}, ["deepmetric"]).splitlines()
    assert len(table) == 3  # header, separator, one row
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[0] == w.name
    assert float(cells[1]) > 0  # deepmetric ms
    assert float(cells[2]) >= 0  # deepmetric peak extra MB


def test_quick_selection_keeps_small_workloads_matching_any_substring():
    chosen = select("distance_lp,distance_snr", quick=True)
    assert chosen
    assert all(w.n <= QUICK_MAX_N for w in chosen)
    assert all("distance_lp" in w.name or "distance_snr" in w.name for w in chosen)


def test_failures_are_classified_as_oom_or_error():
    oom = classify(RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: 8 GB"))
    assert oom["status"] == "oom"
    assert classify(MemoryError())["status"] == "oom"
    err = classify(ImportError("cannot import name 'TripletMarginLoss'"))
    assert err["status"] == "error"
    assert err["message"] == "ImportError: cannot import name 'TripletMarginLoss'"
