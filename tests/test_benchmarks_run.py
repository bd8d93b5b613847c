"""The benchmarks still run (tiny sizes, no figures judged): a benchmark that crashes after a
refactor would otherwise go unnoticed until someone needs its numbers.

The Swarm part runs only when the engine is a swarm manager already, or when
INSTANCER_TEST_SWARM=init lets the benchmark make a single-node swarm for the run (it
leaves it afterwards); otherwise it must say why it skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWARM_INIT = ["--swarm-init"] if os.environ.get("INSTANCER_TEST_SWARM") == "init" else []


def _run(script: str, results: Path, *args: str, timeout: int = 280) -> subprocess.CompletedProcess[str]:
    """Run a benchmark with its JSON and chart in `results` (not over a real run's figures)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--results-dir", str(results), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    # 0 whatever the figures: only a failed start, stop or request (or a crash) is non-zero.
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _swarm_reported(out: str) -> None:
    """Measured, or skipped with the reason."""
    line = next(line for line in out.splitlines() if line.strip().startswith("Swarm service"))
    assert "ms" in line or "skipped: engine not in swarm mode" in line, line


def _warm_reported(out: str) -> None:
    """Measured (figures, and a verdict against issue 8's), never skipped."""
    row = next(line for line in out.splitlines() if line.strip().startswith("service, warm pool"))
    assert "ms" in row, row
    for check in ("warm start p50", "warm start p99"):
        line = next(line for line in out.splitlines() if check in line)
        assert line.split()[0] in ("PASS", "MISS"), line


def test_flags_verify_benchmark_runs_and_reports(tmp_path: Path) -> None:
    out = _run("flags_verify.py", tmp_path, "--flags", "50", "--requests", "300", "--clients", "2").stdout
    assert "POST /flags/verify" in out and "GET /healthz (baseline)" in out
    assert "verify throughput / baseline throughput" in out


def test_lookups_benchmark_runs_and_reports(tmp_path: Path) -> None:
    out = _run("lookups.py", tmp_path, "--records", "20", "--rate", "50", "--seconds", "1").stdout
    for stream in (
        "GET /healthz (baseline)",
        "GET /instances/{id}",
        "GET /instances?owner=",
        "POST /flags/verify",
    ):
        assert stream in out
    stored = json.loads((tmp_path / "lookups.json").read_text())
    assert stored["records"] == 20 and stored["streams"]["instance"]["error_count"] == 0


def test_starts_benchmark_runs_and_reports(docker_ready: None, tmp_path: Path) -> None:
    out = _run("starts.py", tmp_path, "--runs", "2", "--sweep", "1,2", *SWARM_INIT).stdout
    assert "service, cold" in out and "Docker SDK alone" in out
    _warm_reported(out)
    _swarm_reported(out)


def test_make_bench_command_runs_every_part_and_charts(docker_ready: None, tmp_path: Path) -> None:
    out = _run(
        "run.py",
        tmp_path,
        *("--runs", "1", "--sweep", "2", "--records", "20", "--rate", "50", "--seconds", "1"),
        *("--flags", "30", "--requests", "100", "--clients", "2", *SWARM_INIT),
    ).stdout
    assert "issue 8 acceptance" in out
    for check in ("cold start p50", "stop-to-gone p50", "2-parallel throughput", "status lookup p99"):
        line = next(line for line in out.splitlines() if check in line)
        assert line.split()[0] in ("PASS", "MISS"), line
    _warm_reported(out)
    _swarm_reported(out)
    stored = json.loads((tmp_path / "bench.json").read_text())
    assert stored["machine_before"]["cpus"] and "load_1m" in stored["machine_after"]
    assert stored["commit"] and set(stored["series"]) >= {
        "baseline_sdk",
        "service_cold",
        "service_warm",
        "swarm_service",
    }
    assert "no chart" in out or (tmp_path / "bench.png").stat().st_size > 0
