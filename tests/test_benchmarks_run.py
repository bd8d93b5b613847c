"""The benchmarks still run (tiny sizes, no figures judged): a benchmark that crashes after a
refactor would otherwise go unnoticed until someone needs its numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_flags_verify_benchmark_runs_and_reports() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "flags_verify.py"), "--flags", "50", "--requests", "300"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # 0: within budget, 1: over it (timings are for `make bench` to judge, not for this test)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert "POST /flags/verify" in result.stdout and "GET /healthz (baseline)" in result.stdout


def test_starts_benchmark_runs_and_reports(docker_ready: None) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "starts.py"),
            *("--runs", "2", "--sweep", "1,2", "--warm-runs", "3"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "through the service" in result.stdout and "throughput ratio" in result.stdout
    assert "service warm" in result.stdout and "p99" in result.stdout
