"""What every benchmark shares: where results go, the commit, percentiles, waiting for a port,
and running `instancer serve` as its own process.

Benchmarks send traffic only to loopback and to addresses of containers they started; every
wait here is bounded in time.
"""

from __future__ import annotations

import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from instancer.vault.aesgcm import new_key_spec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PLATFORM = "bench-platform-token-0123456789"
ADMIN = "bench-admin-token-0123456789abc"
#: every engine object a benchmark creates carries this label, with the run's id as value
RUN_LABEL = "instancer-bench"


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], check=False, cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def machine() -> dict[str, Any]:
    """The cores and the 1-minute load average now: how busy the machine was, for the record."""
    return {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)}


def quantile_ms(samples: list[float], q: int) -> float:
    """The q-th percentile of samples in seconds, in milliseconds (inclusive method)."""
    if len(samples) == 1:
        return samples[0] * 1000
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


def summary(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99 and mean of samples in seconds, in milliseconds; empty for no samples."""
    if not samples:
        return {}
    return {
        "n": len(samples),
        "p50_ms": quantile_ms(samples, 50),
        "p95_ms": quantile_ms(samples, 95),
        "p99_ms": quantile_ms(samples, 99),
        "mean_ms": statistics.fmean(samples) * 1000,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_accepts(host: str, port: int, timeout: float = 30) -> None:
    """Return once host:port accepts a TCP connection: polled every 5 ms at first, then up to
    every 50 ms. Raises OSError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.25):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def timed_stop(client: httpx.Client, instance_id: str) -> float:
    """Stop an instance through the API; the seconds until it answered `stopped` (gone)."""
    t0 = time.perf_counter()
    r = client.delete(f"/api/v1/instances/{instance_id}")
    if r.status_code != 200 or r.json()["state"] != "stopped":
        raise RuntimeError(f"stop answered {r.status_code}: {r.text[:300]}")
    return time.perf_counter() - t0


class Server:
    """`instancer serve` as its own process on a free loopback port, with a client for it.

    `env` overrides the defaults below (tokens, a fresh flag key, WARNING logs)."""

    def __init__(self, env: dict[str, str], *, ready_path: str = "/readyz", timeout: float = 60) -> None:
        self.port = free_port()
        self.flag_keys = env.get("INSTANCER_FLAG_KEYS") or new_key_spec("bench")
        full = {
            **os.environ,
            "INSTANCER_PLATFORM_TOKEN": PLATFORM,
            "INSTANCER_ADMIN_TOKEN": ADMIN,
            "INSTANCER_FLAG_KEYS": self.flag_keys,
            "INSTANCER_DEPLOYMENT": "bench" + secrets.token_hex(3),
            "INSTANCER_LOG_LEVEL": "WARNING",
            # The host firewall is not under test here; `enforce` would change the shared
            # host's iptables and outlive the process (tests/integration/test_isolation.py).
            "INSTANCER_ISOLATION": "off",
            **env,
        }
        self.deployment = full["INSTANCER_DEPLOYMENT"]
        command = [sys.executable, "-m", "instancer.cli", "serve", "--port", str(self.port)]
        if os.environ.get("BENCH_PROFILE"):  # e.g. BENCH_PROFILE=/tmp/x.svg: a py-spy flame graph
            command = ["py-spy", "record", "-o", os.environ["BENCH_PROFILE"], "--", *command]
        # A file, not a pipe: a pipe nobody reads would stall a chatty server.
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(command, env=full, stdout=subprocess.DEVNULL, stderr=self._log)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.client = self.new_client()
        self._wait(ready_path, timeout)

    def new_client(self, **kwargs: Any) -> httpx.Client:
        """A keep-alive client acting with the platform token."""
        kwargs.setdefault("timeout", 120)
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {PLATFORM}"}, **kwargs)

    def _wait(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.stderr_tail()
                self.close()
                raise RuntimeError(f"instancer serve did not become ready: {tail}")
            time.sleep(0.1)

    def stderr_tail(self) -> str:
        self._log.seek(0)
        return self._log.read()[-2000:]

    def close(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
