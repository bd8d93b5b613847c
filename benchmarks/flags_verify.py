"""Flag verification under 10,000 stored flags, against a bare `GET /healthz` baseline.

Both are measured in one run, over HTTP, on one server process (`instancer serve` on a
SQLite file, or on PostgreSQL with --database-url), with one keep-alive client sending
requests one after another. The verify stream mixes the owner's own flags and wrong
guesses in equal parts with 1 % other owners' flags (each of which records a sharing
event); sharing attempts alone are measured and reported too. Prints p50/p99 of each and
whether verify's p99 stays within 3 ms of the baseline's p99 (issue 3, acceptance 6);
writes JSON under benchmarks/results/ (or --results-dir). `benchmarks/run.py` (make bench) runs it too.

Then throughput: `--clients` keep-alive clients each sending its next request as soon as the
last one is answered (closed loop), verifies and /healthz alike; requests/s and p99 of each.
A missed budget is printed (MISS), not an error: the exit status is non-zero only when a
request fails.

    .venv/bin/python benchmarks/flags_verify.py [--flags 10000] [--requests 3000] [--clients 8]
"""

from __future__ import annotations

import argparse
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import report
from common import ADMIN, PLATFORM, Server, commit
from load import Call, saturate

from instancer import bootstrap
from instancer.backends.fake import FakeBackend
from instancer.domain import flags as templates
from instancer.domain.model import Instance, State
from instancer.settings import Settings
from instancer.vault.aesgcm import new_key_spec

Request = tuple[str, str, dict[str, str] | None]


def populate(settings: Settings, count: int) -> list[tuple[str, str]]:
    """Store `count` ended instances of one challenge, each with its own sealed flag.
    Returns (owner, flag) pairs."""
    service = bootstrap.build(settings, backend=FakeBackend())
    bootstrap.upgrade_database(service)
    spec, _ = service.challenges.put(
        {"id": "bench", "image": "x", "ports": [{"port": 80, "protocol": "http"}]}
    )
    template = templates.parse(templates.DEFAULT_TEMPLATE)
    now = datetime.now(UTC)
    pairs = []
    with service.store.transaction() as tx:
        for n in range(count):
            owner, flag, instance_id = f"team-{n}", template.render(), secrets.token_hex(16)
            tx.add_instance(
                Instance(instance_id, "bench", owner, State.STOPPED, 1, now, now + timedelta(hours=1)), spec
            )
            tx.add_flag(
                instance_id, "bench", owner, service.flags._vault.seal(flag, instance_id=instance_id), now
            )
            pairs.append((owner, flag))
    service.engine.dispose()
    return pairs


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "mean_ms": statistics.fmean(ordered) * 1000}


def measure(client: httpx.Client, requests: list[Request]) -> list[float]:
    took = []
    for method, path, body in requests:
        start = time.perf_counter()
        r = client.request(method, path, json=body)
        took.append(time.perf_counter() - start)
        r.raise_for_status()
    return took


def run(flags: int, requests: int, clients: int = 8, database_url: str | None = None) -> dict[str, Any]:
    """Store `flags` flags, serve them, measure; the figures (see the module's docstring)."""
    workdir = Path(tempfile.mkdtemp(prefix="instancer-bench-"))
    keys, url = new_key_spec("bench"), database_url or f"sqlite:///{workdir}/bench.db"
    settings = Settings(
        platform_token=PLATFORM, admin_token=ADMIN, flag_keys=keys, database_url=url, backend="fake"
    )
    try:
        pairs = populate(settings, flags)
        env = {"INSTANCER_FLAG_KEYS": keys, "INSTANCER_DATABASE_URL": url, "INSTANCER_BACKEND": "fake"}
        server = Server(env, ready_path="/healthz")
        try:
            measured = _latency(server, pairs, requests) | _throughput(server, pairs, requests, clients)
        finally:
            server.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    margin = measured["verify"]["p99_ms"] - measured["baseline_healthz"]["p99_ms"]
    return {
        "stored_flags": flags,
        "requests_each": requests,
        "database": "postgresql" if database_url else "sqlite",
        **measured,
        "p99_margin_ms": margin,
        "criterion": "verify p99 <= baseline p99 + 3 ms",
        "pass": margin <= 3.0,
    }


def _stream(pairs: list[tuple[str, str]], requests: int) -> tuple[list[Request], list[Request]]:
    """Verifies as players send them, and sharing attempts alone."""
    rng = random.Random(7)
    verifies, shared = [], []
    for n in range(requests):
        owner, flag = rng.choice(pairs)
        other = rng.choice(pairs)[0]
        wrong = "flag{" + secrets.token_hex(16) + "}"
        # A realistic stream: own flags and wrong guesses in equal parts, 1 % other teams' flags.
        submission, who = (flag, other) if n % 100 == 99 else [(flag, owner), (wrong, owner)][n % 2]
        verifies.append(("POST", "/api/v1/flags/verify", _verify_body(who, submission)))
        shared.append(("POST", "/api/v1/flags/verify", _verify_body(other, flag)))
    return verifies, shared


def _latency(server: Server, pairs: list[tuple[str, str]], requests: int) -> dict[str, Any]:
    """One client, one request after another."""
    verifies, shared = _stream(pairs, requests)
    health: list[Request] = [("GET", "/healthz", None)] * requests
    with server.new_client(timeout=10) as client:
        measure(client, health[:200] + verifies[:200])  # warm-up
        # Interleave in blocks so both see the same machine conditions.
        base_samples: list[float] = []
        verify_samples: list[float] = []
        for start in range(0, requests, 250):
            base_samples += measure(client, health[start : start + 250])
            verify_samples += measure(client, verifies[start : start + 250])
        shared_samples = measure(client, shared[: max(100, requests // 10)])
    return {
        "baseline_healthz": percentiles(base_samples),
        "verify": percentiles(verify_samples),
        "verify_sharing_only": percentiles(shared_samples),
    }


def _throughput(server: Server, pairs: list[tuple[str, str]], requests: int, clients: int) -> dict[str, Any]:
    """`clients` clients in a closed loop: requests/s and latency, /healthz then verifies."""
    verifies, _ = _stream(pairs, requests)
    pool = [server.new_client(timeout=10) for _ in range(clients)]
    try:
        health = saturate(pool, [Call("GET", "/healthz")] * requests)
        verify = saturate(pool, [Call(m, p, json=b) for m, p, b in verifies])
    finally:
        for c in pool:
            c.close()
    for part in (health, verify):
        del part["samples_ms"]
    return {"throughput": {"clients": clients, "healthz": health, "verify": verify}}


def print_result(result: dict[str, Any]) -> None:
    stored, each = result["stored_flags"], result["requests_each"]
    print(f"stored flags: {stored}, requests: {each} each ({result['database']})")
    for name, p in (
        ("GET /healthz (baseline)", result["baseline_healthz"]),
        ("POST /flags/verify", result["verify"]),
        ("  (sharing attempts only)", result["verify_sharing_only"]),
    ):
        print(f"  {name:26s} p50 {p['p50_ms']:6.2f} ms   p99 {p['p99_ms']:6.2f} ms")
    ok, margin = result["pass"], result["p99_margin_ms"]
    print(f"  verify p99 - baseline p99 = {margin:.2f} ms (limit 3 ms): {'PASS' if ok else 'MISS'}")
    t = result["throughput"]
    print(f"  throughput, {t['clients']} clients in a closed loop:")
    for name, key in (("GET /healthz (baseline)", "healthz"), ("POST /flags/verify", "verify")):
        q = t[key]
        print(
            f"  {name:26s} {q['achieved_rps']:6.0f} req/s  p50 {q['latency']['p50_ms']:6.2f} ms  "
            f"p99 {q['latency']['p99_ms']:6.2f} ms  errors {q['error_count']}"
        )
    ratio = t["verify"]["achieved_rps"] / t["healthz"]["achieved_rps"]
    print(f"  verify throughput / baseline throughput = {ratio:.2f}")


def errors_of(result: dict[str, Any]) -> list[str]:
    t = result["throughput"]
    return [f"flags_verify {key}: {e}" for key in ("healthz", "verify") for e in t[key]["errors"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    report.add_results_argument(parser)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    result = {
        "benchmark": "flags_verify",
        "commit": commit(),
        **run(args.flags, args.requests, args.clients, args.database_url),
    }
    report.write(args.results_dir, "flags_verify", result)
    print_result(result)
    return 1 if report.print_errors(errors_of(result)) else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flags", type=int, default=10_000, help="flags stored")
    parser.add_argument("--requests", type=int, default=3000, help="requests per measured stream")
    parser.add_argument("--clients", type=int, default=8, help="clients of the throughput phase")


def _verify_body(owner: str, submission: str) -> dict[str, str]:
    return {"challenge": "bench", "owner": owner, "submission": submission}


if __name__ == "__main__":
    sys.exit(main())
