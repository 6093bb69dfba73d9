"""Parent side of the measurement: a subprocess per (workload, library), alternating rounds.

For a workload, the cases (deepmetric, PML, the GEMM reference) are started one after the other;
each sets up, warms up once and waits. Then ``repeats`` rounds ask each live case for one timed
step, the order reversed every round so neither library always runs first. Every case has its own
time budget (setup + warm-up + steps, ``timeout_s``) and address-space cap; a case over budget is
killed and reported as a timeout, one over the cap as OOM, any other failure as ``error: ...``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .workloads import Workload

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config:
    repeats: int = 5
    timeout_s: float = 300.0
    mem_cap_gb: float = 16.0
    threads: int = 2


@dataclass
class CaseResult:
    workload: str
    lib: str
    status: str = "ok"  # ok | error | oom | timeout | skipped
    message: str = ""
    times_ms: list[float] = field(default_factory=list)
    rss_setup_mb: float | None = None
    peak_mb: float | None = None
    requested: int = 0  # timed runs asked for; fewer were run when the time budget ran short

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.times_ms)

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None

    @property
    def peak_extra_mb(self) -> float | None:
        if self.peak_mb is None or self.rss_setup_mb is None:
            return None
        return max(0.0, self.peak_mb - self.rss_setup_mb)


class _Case:
    """One live measuring subprocess and its remaining time budget."""

    def __init__(self, w: Workload, lib: str, cfg: Config) -> None:
        self.result = CaseResult(w.name, lib, requested=cfg.repeats)
        self.budget = cfg.timeout_s
        self.cfg = cfg
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in kill)
        env = dict(os.environ, OMP_NUM_THREADS=str(cfg.threads), MKL_NUM_THREADS=str(cfg.threads))
        # Idle OpenMP threads sleep instead of spinning: on a small or shared machine a spinning
        # barrier waiting on a descheduled thread turns 2 ms steps into 100 ms ones.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "benchmarks.child", w.name, lib]
        cmd += ["--mem-cap-gb", str(cfg.mem_cap_gb), "--threads", str(cfg.threads)]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, start_new_session=True,
        )  # fmt: skip
        self._buf = b""

    def wait_ready(self) -> None:
        """Wait for setup + warm-up; record the RSS right after setup."""
        msg = self._receive()
        if msg is not None:
            self.result.rss_setup_mb = msg["rss_setup_kb"] / 1024

    @property
    def alive(self) -> bool:
        return self.result.status == "ok" and self.proc.poll() is None

    def run_once(self) -> None:
        last = self.result.times_ms[-1] / 1e3 if self.result.times_ms else 0.0
        if not self.alive or last > self.budget:  # the next step would not fit: keep what we have
            return
        msg = self._request("run")
        if msg is not None:
            self.result.times_ms.append(msg["ms"])

    def finish(self) -> CaseResult:
        if self.alive:
            msg = self._request("done", grace_s=30.0)  # reporting the peak is not timed work
            if msg is not None:
                self.result.peak_mb = msg["peak_kb"] / 1024
        self.kill()
        return self.result

    # ---- protocol ----

    def _request(self, line: str, grace_s: float = 0.0) -> dict[str, Any] | None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the child died; _receive reports how
        return self._receive(grace_s)

    def _receive(self, grace_s: float = 0.0) -> dict[str, Any] | None:
        """The next JSON line, or None after recording a failure (the child is then killed)."""
        start = time.monotonic()
        line = self._readline(start + max(self.budget, grace_s))
        self.budget -= time.monotonic() - start
        if line is None:
            self._fail("timeout", f"timeout (>{self.cfg.timeout_s:g} s)")
            return None
        if not line:
            self._fail(*self._death_reason())
            return None
        msg = json.loads(line)
        if msg.get("status") in ("error", "oom"):
            text = msg["message"]
            if msg["status"] == "oom":
                text = f"OOM (>{self.cfg.mem_cap_gb:g} GiB)"
            self._fail(msg["status"], text)
            return None
        return msg

    def _readline(self, deadline: float) -> bytes | None:
        """One line from the child; b"" at EOF, None at the deadline."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return b""
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def _death_reason(self) -> tuple[str, str]:
        code = self.proc.wait()
        if code == -signal.SIGKILL:
            return "oom", "killed (SIGKILL: OOM killer?)"
        self._stderr.seek(0)
        lines = [ln for ln in self._stderr.read().decode(errors="replace").splitlines() if ln]
        return "error", f"exit {code}: {lines[-1] if lines else 'no output'}"

    def _fail(self, status: str, message: str) -> None:
        self.result.status, self.result.message = status, message
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()
        self._stderr.close()


def run_workload(w: Workload, libs: list[str], cfg: Config) -> dict[str, CaseResult]:
    """Measure ``w`` for each library in ``libs`` (``"gemm"`` = the ``x @ x.T`` reference)."""
    results: dict[str, CaseResult] = {}
    cases: list[_Case] = []
    try:
        for lib in libs:
            if lib == "gemm" and not w.gemm_reference:
                results[lib] = CaseResult(w.name, lib, status="skipped", message="not pairwise")
                continue
            if lib != "gemm" and lib not in w.libs:
                note = w.note or "skipped"
                results[lib] = CaseResult(w.name, lib, status="skipped", message=note)
                continue
            cases.append(_Case(w, lib, cfg))
            cases[-1].wait_ready()  # sequential: setups and warm-ups never overlap
        for r in range(cfg.repeats):
            for case in cases if r % 2 == 0 else reversed(cases):
                case.run_once()
        for case in cases:
            results[case.result.lib] = case.finish()
    finally:  # Ctrl-C or a harness bug: leave no child behind
        for case in cases:
            case.kill()
    return results
