"""Flag verification under 10,000 stored flags, against a bare `GET /healthz` baseline.

Both are measured in one run, over HTTP, on one server process (`instancer serve` on a
SQLite file, or on PostgreSQL with --database-url), with one keep-alive client sending
requests one after another. The verify stream mixes the owner's own flags and wrong
guesses in equal parts with 1 % other owners' flags (each of which records a sharing
event); sharing attempts alone are measured and reported too. Prints p50/p99 of each and
whether verify's p99 stays within 3 ms of the baseline's p99 (issue 3, acceptance 6);
writes JSON under benchmarks/results/.

    .venv/bin/python benchmarks/flags_verify.py [--flags 10000] [--requests 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2 as httpx

from instancer import bootstrap
from instancer.backends.fake import FakeBackend
from instancer.domain import flags as templates
from instancer.domain.model import Instance, State
from instancer.settings import Settings
from instancer.vault.aesgcm import new_key_spec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PLATFORM = "bench-platform-token-0123456789"
ADMIN = "bench-admin-token-0123456789abc"


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


def measure(client: httpx.Client, requests: list[tuple[str, str, dict | None]]) -> list[float]:
    took = []
    for method, path, body in requests:
        start = time.perf_counter()
        r = client.request(method, path, json=body)
        took.append(time.perf_counter() - start)
        r.raise_for_status()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="instancer-bench-"))
    env = {
        **os.environ,
        "INSTANCER_PLATFORM_TOKEN": PLATFORM,
        "INSTANCER_ADMIN_TOKEN": ADMIN,
        "INSTANCER_FLAG_KEYS": new_key_spec("bench"),
        "INSTANCER_DATABASE_URL": args.database_url or f"sqlite:///{workdir}/bench.db",
        "INSTANCER_BACKEND": "fake",
        "INSTANCER_LOG_LEVEL": "WARNING",
    }
    settings = Settings(
        platform_token=PLATFORM,
        admin_token=ADMIN,
        flag_keys=env["INSTANCER_FLAG_KEYS"],
        database_url=env["INSTANCER_DATABASE_URL"],
        backend="fake",
    )
    pairs = populate(settings, args.flags)
    port = 18000 + random.randint(0, 999)
    command = [sys.executable, "-m", "instancer.cli", "serve", "--port", str(port)]
    if os.environ.get("BENCH_PROFILE"):  # e.g. BENCH_PROFILE=/tmp/verify.svg: a py-spy flame graph
        command = ["py-spy", "record", "-o", os.environ["BENCH_PROFILE"], "--", *command]
    server = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return run(args, pairs, port, server)
    finally:
        server.terminate()
        server.wait(10)


def run(args: argparse.Namespace, pairs: list[tuple[str, str]], port: int, server: subprocess.Popen) -> int:
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {PLATFORM}"}, timeout=10) as client:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.get("/healthz").raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "server did not start"
                time.sleep(0.1)
        rng = random.Random(7)
        verifies, shared = [], []
        for n in range(args.requests):
            owner, flag = rng.choice(pairs)
            other = rng.choice(pairs)[0]
            wrong = "flag{" + secrets.token_hex(16) + "}"
            # A realistic stream: own flags and wrong guesses in equal parts, 1 % other teams' flags.
            submission, who = (flag, other) if n % 100 == 99 else [(flag, owner), (wrong, owner)][n % 2]
            verifies.append(("POST", "/api/v1/flags/verify", _verify_body(who, submission)))
            shared.append(("POST", "/api/v1/flags/verify", _verify_body(other, flag)))
        health = [("GET", "/healthz", None)] * args.requests
        measure(client, health[:200] + verifies[:200])  # warm-up
        # Interleave in blocks so both see the same machine conditions.
        base_samples: list[float] = []
        verify_samples: list[float] = []
        for start in range(0, args.requests, 250):
            base_samples += measure(client, health[start : start + 250])
            verify_samples += measure(client, verifies[start : start + 250])
        shared_samples = measure(client, shared[: max(100, args.requests // 10)])
    baseline, verify = percentiles(base_samples), percentiles(verify_samples)
    sharing = percentiles(shared_samples)
    margin = verify["p99_ms"] - baseline["p99_ms"]
    ok = margin <= 3.0
    result = {
        "benchmark": "flags_verify",
        "commit": _commit(),
        "stored_flags": args.flags,
        "requests_each": args.requests,
        "database": "postgresql" if args.database_url else "sqlite",
        "baseline_healthz": baseline,
        "verify": verify,
        "verify_sharing_only": sharing,
        "p99_margin_ms": margin,
        "criterion": "verify p99 <= baseline p99 + 3 ms",
        "pass": ok,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "flags_verify.json").write_text(json.dumps(result, indent=2))
    print(f"stored flags: {args.flags}, requests: {args.requests} each ({result['database']})")
    for name, p in (
        ("GET /healthz (baseline)", baseline),
        ("POST /flags/verify", verify),
        ("  (sharing attempts only)", sharing),
    ):
        print(f"  {name:26s} p50 {p['p50_ms']:6.2f} ms   p99 {p['p99_ms']:6.2f} ms")
    print(f"  verify p99 - baseline p99 = {margin:.2f} ms (limit 3 ms): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def _verify_body(owner: str, submission: str) -> dict[str, str]:
    return {"challenge": "bench", "owner": owner, "submission": submission}


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], check=False, cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
