"""Starts and stops of one image on one engine, timed the same way for every method, in one run.

Methods ("subjects": `start(n) -> (seconds, handle)`, `stop(handle) -> seconds`):

- baseline_sdk: docker-py alone creates a network and a container (same image, same limits),
  starts it, waits until its port accepts on the container's address; stop removes both.
- service_cold: POST /instances until it answers `running` (its own probe is the same wait)
  and the published port accepts; DELETE until it answers (the service removes before it
  answers).
- service_warm (warm.py): starts claimed from the service's warm pool, behind a real Traefik:
  POST until `running`, plus one HTTPS request through Traefik that must answer at once;
  measured on its own, after the others, so that its refills do not load their turns.
- swarm_service (swarm.py): a Swarm service, as ctfd-whale starts one; only on a swarm
  manager, or with --swarm-init.

Each subject does `--runs` sequential start/stop pairs (distributions, p50/p95), the
subjects taking turns so that the machine's changing load weighs on all alike; then a sweep
of starts at once (throughput until every port accepts, p50/p99, failures). The Swarm
service takes its turns among its own runs, while the engine is a swarm, and only then. A
failed start or stop is counted, not fatal: the run goes on, and the exit status says so.

    .venv/bin/python benchmarks/starts.py [--runs 20] [--sweep 1,10,50] [--swarm-init]

Writes benchmarks/results/starts.json (with the commit) and, with matplotlib, starts.png
(--results-dir elsewhere).
`benchmarks/run.py` (make bench) runs this together with the lookup and flag benchmarks.
Needs a Docker engine and the demo image (scripts/docker-up, scripts/build-images).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Protocol

import docker
import httpx2 as httpx
import report
from common import ADMIN, RUN_LABEL, Server, commit, summary, timed_stop, wait_accepts
from warm import WarmService

from instancer.backends import labels
from swarm import SwarmService, swarm_session

IMAGE = "instancer/demo-web:latest"
PORT = 8080


class Subject(Protocol):
    def start(self, n: int) -> tuple[float, Any]: ...
    def stop(self, handle: Any) -> float: ...


def engine_client() -> docker.APIClient:
    return docker.APIClient(
        base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
        version="auto",
        max_pool_size=64,
    )


class Baseline:
    """What a hand-written script using only the Docker SDK would do."""

    def __init__(self, api: docker.APIClient, run_id: str) -> None:
        self.api, self.run_id = api, run_id

    def start(self, n: int) -> tuple[float, Any]:
        t0 = time.perf_counter()
        name = f"bench-{secrets.token_hex(6)}-{n}"
        self.api.create_network(name, driver="bridge", labels={RUN_LABEL: self.run_id})
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
            labels={RUN_LABEL: self.run_id},
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
        self.server = Server(
            {
                "INSTANCER_DATABASE_URL": f"sqlite:///{workdir}/b.db",
                "INSTANCER_PUBLIC_HOST": "127.0.0.1",
                "INSTANCER_PUBLISH_ADDRESS": "127.0.0.1",
                "INSTANCER_COOLDOWN_SECONDS": "0",
                "INSTANCER_CAPACITY": "1000",
            }
        )
        self.client = self.server.new_client(limits=httpx.Limits(max_connections=100))
        spec = {"image": IMAGE, "ports": [{"port": PORT, "protocol": "http"}]}
        r = self.client.put(
            "/api/v1/challenges/bench", json=spec, headers={"Authorization": f"Bearer {ADMIN}"}
        )
        r.raise_for_status()

    def start(self, n: int) -> tuple[float, Any]:
        t0 = time.perf_counter()
        r = self.client.post(
            "/api/v1/instances", json={"challenge": "bench", "owner": f"o{n}-{secrets.token_hex(3)}"}
        )
        if r.status_code != 201:
            raise RuntimeError(f"start answered {r.status_code}: {r.text[:300]}")
        body = r.json()
        wait_accepts("127.0.0.1", body["connection"][0]["port"])
        return time.perf_counter() - t0, body["id"]

    def stop(self, handle: Any) -> float:
        return timed_stop(self.client, handle)

    def close(self) -> None:
        self.client.close()
        self.server.close()


# --- measuring --------------------------------------------------------------------------


def _attempt(call: Callable[[Any], Any], arg: Any, errors: list[str]) -> Any:
    """call(arg), or None with the error recorded: one failure must not end the run."""
    try:
        return call(arg)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
        return None


class _Sequential:
    """One subject's samples of the sequential part."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.stops: list[float] = []
        self.errors: list[str] = []

    def pair(self, subject: Subject, n: int, *, keep: bool = True) -> None:
        started = _attempt(subject.start, n, self.errors)
        if started is None:
            return
        stopped = _attempt(subject.stop, started[1], self.errors)
        if keep:
            self.starts.append(started[0])
            self.stops += [stopped] if stopped is not None else []

    def result(self) -> dict[str, Any]:
        return {
            "start": summary(self.starts),
            "stop": summary(self.stops),
            "start_samples_ms": [s * 1000 for s in self.starts],
            "stop_samples_ms": [s * 1000 for s in self.stops],
            "errors": self.errors,
        }


def sequential(subjects: dict[str, Subject], runs: int) -> dict[str, dict[str, Any]]:
    """`runs` start/stop pairs per subject, one after another, after one warm-up pair each.
    Subjects take turns (in alternating order), so a change in the machine's load during
    the run weighs on all of them alike."""
    tallies = {key: _Sequential() for key in subjects}
    for key, subject in subjects.items():
        tallies[key].pair(subject, -1, keep=False)
    for n in range(runs):
        order = list(subjects) if n % 2 == 0 else list(reversed(subjects))
        for key in order:
            tallies[key].pair(subjects[key], n)
    return {key: tally.result() for key, tally in tallies.items()}


def parallel(subject: Subject, width: int) -> dict[str, Any]:
    """`width` starts at once; throughput counts the starts that succeeded, over the wall time
    until the last one's port accepted. Then all are stopped at once. A subject that must get
    ready for a burst (the warm pool: that many instances ready) does so first, untimed."""
    errors: list[str] = []
    if (prepare := getattr(subject, "prepare", None)) is not None:
        _attempt(prepare, width, errors)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(width) as pool:
        results = list(pool.map(lambda n: _attempt(subject.start, n, errors), range(width)))
    wall = time.perf_counter() - t0
    started = [r for r in results if r is not None]
    with ThreadPoolExecutor(width) as pool:
        stops = list(pool.map(lambda h: _attempt(subject.stop, h, errors), [h for _, h in started]))
    took = [t for t, _ in started]
    return {
        "parallel": width,
        "starts_per_second": len(started) / wall,
        "wall_s": wall,
        **{f"start_{k}": v for k, v in summary(took).items() if k != "n"},
        "stop_p50_ms": summary([s for s in stops if s is not None]).get("p50_ms"),
        "failures": width - len(started),
        "errors": errors,
    }


def measure(subjects: dict[str, Subject], runs: int, widths: list[int]) -> dict[str, dict[str, Any]]:
    """The sequential part, then the sweep (each width: every subject in turn)."""
    print(f"  measuring {', '.join(subjects)} ...", file=sys.stderr, flush=True)
    results = {key: {"sequential": seq} for key, seq in sequential(subjects, runs).items()}
    for key in subjects:
        results[key]["sweep"] = []
    for width in widths:
        for key, subject in subjects.items():
            results[key]["sweep"].append(parallel(subject, width))
    return results


# --- the run ----------------------------------------------------------------------------


@contextmanager
def subjects(api: docker.APIClient, run_id: str) -> Iterator[dict[str, Subject]]:
    """The start methods measured side by side, by key (report.SERIES). The warm pool and the
    Swarm service are measured by `run()`, each on its own."""
    workdir = Path(tempfile.mkdtemp(prefix="instancer-bench-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        service = Service(workdir)
        stack.callback(remove_labelled, api, labels.DEPLOYMENT, service.server.deployment)
        stack.callback(service.close)
        yield {"baseline_sdk": Baseline(api, run_id), "service_cold": service}


@contextmanager
def warm_subject(api: docker.APIClient, runs: int, widths: list[int]) -> Iterator[WarmService]:
    """The service with a warm pool big enough for every sequential run and the widest burst,
    full and routed before the first start; whatever it leaves on the engine is removed."""
    workdir = Path(tempfile.mkdtemp(prefix="instancer-bench-warm-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        warm = WarmService(workdir, image=IMAGE, port=PORT, size=max([runs + 1, *widths]))
        stack.callback(remove_labelled, api, labels.DEPLOYMENT, warm.server.deployment)
        stack.callback(warm.close)
        yield warm


def run(runs: int, widths: list[int], *, swarm_init: bool) -> dict[str, Any]:
    """Every start method, one after another on this engine; the results by method."""
    api, run_id = engine_client(), secrets.token_hex(4)
    series: dict[str, Any] = {}
    try:
        with subjects(api, run_id) as chosen:
            series |= measure(chosen, runs, widths)
        try:
            with warm_subject(api, runs, widths) as warm:
                series |= measure({"service_warm": warm}, runs, widths)
        except RuntimeError as exc:  # no Traefik, or a pool that never filled: said, and counted
            series["service_warm"] = {"skipped": f"warm pool: {exc}", "errors": [str(exc)]}
        with swarm_session(api, run_id, init=swarm_init) as session:
            if session.skipped:
                series["swarm_service"] = {"skipped": session.skipped}
            else:
                swarm = SwarmService(api, run_id, image=IMAGE, port=PORT)
                series |= measure({"swarm_service": swarm}, runs, widths)
                series["swarm_service"]["swarm"] = session.describe()
        series["swarm_service"]["errors"] = session.errors  # leaving the swarm may add some
    finally:
        remove_labelled(api, RUN_LABEL, run_id)
    return {"image": IMAGE, "runs": runs, "widths": widths, "series": series}


def remove_labelled(api: docker.APIClient, key: str, value: str) -> int:
    """Remove whatever containers and networks still carry key=value: a run that was
    interrupted leaves nothing behind on a shared engine."""
    selector = {"label": [f"{key}={value}"]}
    removed = 0
    for c in api.containers(all=True, filters=selector):
        api.remove_container(c["Id"], force=True, v=True)
        removed += 1
    for n in api.networks(filters=selector):
        api.remove_network(n["Id"])
        removed += 1
    return removed


def errors_of(result: dict[str, Any]) -> list[str]:
    """Every failed start or stop of the run, prefixed with its method."""
    found = []
    for key, s in result["series"].items():
        for part in [s, s.get("sequential", {}), *s.get("sweep", [])]:
            found += [f"{key}: {e}" for e in part.get("errors", [])]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    report.add_results_argument(parser)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: leave the engine as found

    result = {
        "benchmark": "starts",
        "commit": commit(),
        **run(args.runs, widths_of(args), swarm_init=args.swarm_init),
    }
    report.write(args.results_dir, "starts", result)
    report.print_starts(result)
    report.chart(args.results_dir, "starts", result)
    report.print_acceptance(result)
    return 1 if report.print_errors(errors_of(result)) else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=20, help="sequential start/stop pairs per method")
    parser.add_argument("--sweep", default="1,10,50", help="starts at once, comma-separated")
    parser.add_argument(
        "--swarm-init",
        action="store_true",
        help="if the engine is not in swarm mode, make it a single-node swarm for this run only "
        "(address pool 10.203.0.0/16), and leave the swarm afterwards",
    )


def widths_of(args: argparse.Namespace) -> list[int]:
    return [int(w) for w in args.sweep.split(",")]


if __name__ == "__main__":
    sys.exit(main())
