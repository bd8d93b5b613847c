"""Cold starts through the service against the Docker SDK alone, in one run, on one engine.

Baseline: docker-py creates a network and a container (same image, same limits), starts it,
waits until its port accepts on the container's address; then removes both. Service: POST
/instances until it answers `running` (its own probe is the same wait) and the published
port accepts; DELETE until it answers. Both sequential (p50/p95) and in parallel sweeps
(throughput, p50/p99). Prints the ratios issue 8 asks for; writes JSON (with the commit)
and, when matplotlib is installed, a PNG chart under benchmarks/results/.

    .venv/bin/python benchmarks/starts.py [--runs 20] [--sweep 1,10,50]

Needs a Docker engine and the demo image (scripts/docker-up, scripts/build-images).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import httpx2 as httpx

from instancer.vault.aesgcm import new_key_spec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
IMAGE = "instancer/demo-web:latest"
PORT = 8080
PLATFORM, ADMIN = "bench-platform-token-0123456789", "bench-admin-token-0123456789abc"


def wait_accepts(host: str, port: int, timeout: float = 30) -> None:
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


class Baseline:
    """What a hand-written script using only the Docker SDK would do."""

    def __init__(self) -> None:
        self.api = docker.APIClient(
            base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
            version="auto",
            max_pool_size=64,
        )

    def start(self, n: int) -> tuple[float, Any]:
        t0 = time.perf_counter()
        name = f"bench-{secrets.token_hex(6)}-{n}"
        self.api.create_network(name, driver="bridge", labels={"bench": "1"})
        host_config = self.api.create_host_config(
            port_bindings={f"{PORT}/tcp": ("127.0.0.1", None)},
            mem_limit="256m",
            nano_cpus=500_000_000,
            pids_limit=256,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            network_mode=name,
        )
        c = self.api.create_container(
            IMAGE,
            environment={"FLAG": "flag{bench}"},
            host_config=host_config,
            ports=[(PORT, "tcp")],
            labels={"bench": "1"},
        )
        self.api.start(c["Id"])
        ip = self.api.inspect_container(c["Id"])["NetworkSettings"]["Networks"][name]["IPAddress"]
        wait_accepts(ip, PORT)
        return time.perf_counter() - t0, (c["Id"], name)

    def stop(self, handle: Any) -> float:
        t0 = time.perf_counter()
        container, network = handle
        self.api.remove_container(container, force=True, v=True)
        self.api.remove_network(network)
        return time.perf_counter() - t0


class Service:
    """The service under test, as its own process (real Docker backend, SQLite)."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "INSTANCER_PLATFORM_TOKEN": PLATFORM,
            "INSTANCER_ADMIN_TOKEN": ADMIN,
            "INSTANCER_FLAG_KEYS": new_key_spec("bench"),
            "INSTANCER_DATABASE_URL": f"sqlite:///{workdir}/b.db",
            "INSTANCER_DEPLOYMENT": "bench" + secrets.token_hex(3),
            "INSTANCER_PUBLIC_HOST": "127.0.0.1",
            "INSTANCER_PUBLISH_ADDRESS": "127.0.0.1",
            "INSTANCER_COOLDOWN_SECONDS": "0",
            "INSTANCER_CAPACITY": "1000",
            "INSTANCER_LOG_LEVEL": "WARNING",
            # The host firewall is not under test here; `enforce` would change the shared
            # host's iptables and outlive the process (tests/integration/test_isolation.py).
            "INSTANCER_ISOLATION": "off",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "instancer.cli", "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", timeout=120, limits=httpx.Limits(max_connections=100)
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and self.process.poll() is None, "service did not start"
            time.sleep(0.1)
        spec = {"image": IMAGE, "ports": [{"port": PORT, "protocol": "http"}]}
        self.client.put("/api/v1/challenges/bench", json=spec, headers={"Authorization": f"Bearer {ADMIN}"})

    def start(self, n: int) -> tuple[float, Any]:
        t0 = time.perf_counter()
        r = self.client.post(
            "/api/v1/instances",
            json={"challenge": "bench", "owner": f"o{n}-{secrets.token_hex(3)}"},
            headers={"Authorization": f"Bearer {PLATFORM}"},
        )
        assert r.status_code == 201, r.text
        body = r.json()
        wait_accepts("127.0.0.1", body["connection"][0]["port"])
        return time.perf_counter() - t0, body["id"]

    def stop(self, handle: Any) -> float:
        t0 = time.perf_counter()
        r = self.client.delete(f"/api/v1/instances/{handle}", headers={"Authorization": f"Bearer {PLATFORM}"})
        assert r.status_code == 200 and r.json()["state"] == "stopped", r.text
        return time.perf_counter() - t0

    def close(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ms(samples: list[float], q: int) -> float:
    if len(samples) == 1:
        return samples[0] * 1000
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


def sequential(subject: Any, runs: int) -> dict[str, float]:
    starts, stops = [], []
    subject.stop(subject.start(-1)[1])  # warm-up
    for n in range(runs):
        took, handle = subject.start(n)
        starts.append(took)
        stops.append(subject.stop(handle))
    return {
        "start_p50_ms": ms(starts, 50),
        "start_p95_ms": ms(starts, 95),
        "stop_p50_ms": ms(stops, 50),
        "stop_p95_ms": ms(stops, 95),
    }


def parallel(subject: Any, width: int) -> dict[str, float]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(width) as pool:
        results = list(pool.map(subject.start, range(width)))
    wall = time.perf_counter() - t0
    with ThreadPoolExecutor(width) as pool:
        list(pool.map(subject.stop, [handle for _, handle in results]))
    took = [t for t, _ in results]
    return {
        "parallel": width,
        "starts_per_second": width / wall,
        "start_p50_ms": ms(took, 50),
        "start_p99_ms": ms(took, 99),
        "failures": 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sweep", default="1,10,50")
    args = parser.parse_args()
    widths = [int(w) for w in args.sweep.split(",")]
    baseline, service = Baseline(), Service(Path(tempfile.mkdtemp(prefix="instancer-bench-")))
    try:
        result: dict[str, Any] = {
            "benchmark": "starts",
            "commit": _commit(),
            "image": IMAGE,
            "runs": args.runs,
        }
        for name, subject in (("baseline_sdk", baseline), ("service_api", service)):
            result[name] = {
                "sequential": sequential(subject, args.runs),
                "sweep": [parallel(subject, w) for w in widths],
            }
    finally:
        service.close()
    report(result, widths)
    return 0


def report(result: dict[str, Any], widths: list[int]) -> None:
    b, s = result["baseline_sdk"], result["service_api"]
    ratios = {
        "start_p50": s["sequential"]["start_p50_ms"] / b["sequential"]["start_p50_ms"],
        "stop_p50": s["sequential"]["stop_p50_ms"] / b["sequential"]["stop_p50_ms"],
        **{
            f"throughput_{w}": sw["starts_per_second"] / bw["starts_per_second"]
            for w, sw, bw in zip(widths, s["sweep"], b["sweep"], strict=True)
        },
    }
    result["ratios_service_over_baseline"] = ratios
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "starts.json").write_text(json.dumps(result, indent=2))
    print(f"cold start, {result['runs']} sequential runs ({result['image']}):")
    for name, r in (("Docker SDK alone", b), ("through the service", s)):
        q = r["sequential"]
        print(
            f"  {name:20s} start p50 {q['start_p50_ms']:6.0f} ms  p95 {q['start_p95_ms']:6.0f} ms   "
            f"stop p50 {q['stop_p50_ms']:6.0f} ms"
        )
    print(
        f"  ratio start p50 {ratios['start_p50']:.2f}x (target <= 1.25), stop p50 {ratios['stop_p50']:.2f}x"
    )
    for w, sw, bw in zip(widths, s["sweep"], b["sweep"], strict=True):
        print(
            f"  {w:3d} in parallel: SDK {bw['starts_per_second']:5.1f}/s p99 {bw['start_p99_ms']:6.0f} ms | "
            f"service {sw['starts_per_second']:5.1f}/s p99 {sw['start_p99_ms']:6.0f} ms | "
            f"throughput ratio {ratios[f'throughput_{w}']:.2f}"
        )
    _chart(result, widths)


def _chart(result: dict[str, Any], widths: list[int]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (no chart: matplotlib is not installed)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, label in (("baseline_sdk", "Docker SDK alone"), ("service_api", "through the service")):
        ax.plot(widths, [r["starts_per_second"] for r in result[name]["sweep"]], marker="o", label=label)
    ax.set_xlabel("starts in parallel")
    ax.set_ylabel("starts per second (until the port accepts)")
    ax.set_title(f"Cold starts, commit {result['commit'][:8]}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "starts.png", dpi=100)
    print(f"  chart: {RESULTS / 'starts.png'}")


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
