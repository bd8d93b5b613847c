"""Status lookups and flag verifies at a fixed offered rate, with 1,000 live instances stored,
against a bare `GET /healthz` measured the same way in the same run.

The records (running instances, each with its host port and sealed flag, one per owner over
four challenges) are written through the store, and the server runs the fake backend: no
container is needed. Its reaper runs as in production (expiry every second, a full
reconcile every 10 s over every running record); `lost_after` is set out of reach so the
reconcile, which sees no containers, marks nothing lost.

Streams, each at `--rate` requests/s from a pool of client threads, interleaved in blocks
of `--block` seconds so that all of them see the same machine conditions:

- GET /healthz (the baseline: the HTTP stack alone);
- GET /api/v1/instances/{id}?owner=... (one instance's status);
- GET /api/v1/instances?owner=...&challenge=... (the owner's listing, what the CTFd plugin asks);
- POST /api/v1/flags/verify (own flags and wrong guesses in equal parts).

Reports achieved rate, p50/p99, and issue 8's check "status lookup p99 <= 10 ms at 200 req/s
with 1,000 records".

Writes benchmarks/results/lookups.json (or in --results-dir).

    .venv/bin/python benchmarks/lookups.py [--records 1000] [--rate 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import random
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import report
from common import ADMIN, PLATFORM, Server, commit
from load import Call, merge, paced

from instancer import bootstrap
from instancer.backends.fake import FakeBackend
from instancer.domain import flags as templates
from instancer.domain.model import Instance, State
from instancer.settings import Settings
from instancer.vault.aesgcm import new_key_spec

CHALLENGES = 4
P99_LIMIT_MS = 10.0
STREAMS = ("healthz", "instance", "listing", "verify")


@dataclass(frozen=True)
class Record:
    instance_id: str
    owner: str
    challenge: str
    flag: str


def populate(settings: Settings, count: int) -> list[Record]:
    """Store `count` running instances, one per owner, spread over CHALLENGES challenges."""
    service = bootstrap.build(settings, backend=FakeBackend())
    bootstrap.upgrade_database(service)
    specs = [
        service.challenges.put(
            {"id": f"bench-{c}", "image": "x", "ports": [{"port": 80, "protocol": "http"}]}
        )[0]
        for c in range(CHALLENGES)
    ]
    template, now = templates.parse(templates.DEFAULT_TEMPLATE), datetime.now(UTC)
    records = []
    with service.store.transaction() as tx:
        for n in range(count):
            spec, flag = specs[n % CHALLENGES], template.render()
            record = Record(secrets.token_hex(16), f"team-{n}", spec.id, flag)
            tx.add_instance(
                Instance(
                    record.instance_id,
                    spec.id,
                    record.owner,
                    State.RUNNING,
                    1,
                    now,
                    now + timedelta(hours=2),
                    started_at=now,
                ),
                spec,
            )
            tx.allocate_ports(record.instance_id, [("main", 80, "http")], 30000, 60000)
            sealed = service.flags._vault.seal(flag, instance_id=record.instance_id)
            tx.add_flag(record.instance_id, spec.id, record.owner, sealed, now)
            records.append(record)
    service.engine.dispose()
    return records


def calls_of(stream: str, records: list[Record], count: int, rng: random.Random) -> list[Call]:
    picked = [rng.choice(records) for _ in range(count)]
    if stream == "healthz":
        return [Call("GET", "/healthz")] * count
    if stream == "instance":
        return [Call("GET", f"/api/v1/instances/{r.instance_id}", params={"owner": r.owner}) for r in picked]
    if stream == "listing":
        return [
            Call("GET", "/api/v1/instances", params={"owner": r.owner, "challenge": r.challenge})
            for r in picked
        ]
    wrong = "flag{" + secrets.token_hex(16) + "}"
    return [
        Call(
            "POST",
            "/api/v1/flags/verify",
            json={"challenge": r.challenge, "owner": r.owner, "submission": r.flag if n % 2 else wrong},
        )
        for n, r in enumerate(picked)
    ]


def run(records: int, rate: float, seconds: float, block: float = 2.0, workers: int = 16) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="instancer-bench-"))
    keys, url = new_key_spec("bench"), f"sqlite:///{workdir}/lookups.db"
    settings = Settings(
        platform_token=PLATFORM, admin_token=ADMIN, flag_keys=keys, database_url=url, backend="fake"
    )
    try:
        stored = populate(settings, records)
        server = Server(
            {
                "INSTANCER_FLAG_KEYS": keys,
                "INSTANCER_DATABASE_URL": url,
                "INSTANCER_BACKEND": "fake",
                "INSTANCER_CAPACITY": str(max(records, 1) * 2),
                "INSTANCER_LOST_AFTER_SECONDS": "1000000",
            }
        )
        try:
            streams = _measure(server, stored, rate, seconds, block, workers)
        finally:
            server.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "records": records,
        "offered_rps": rate,
        "seconds_each": seconds,
        "streams": streams,
        **verdict(streams),
    }


def _measure(
    server: Server, stored: list[Record], rate: float, seconds: float, block: float, workers: int
) -> dict[str, Any]:
    rng = random.Random(8)
    clients = [server.new_client(timeout=30) for _ in range(workers)]
    try:
        per_block = max(1, round(rate * block))
        for stream in STREAMS:  # warm-up: connections, statement caches
            paced(clients, calls_of(stream, stored, per_block // 2, rng), rate)
        blocks: dict[str, list[dict[str, Any]]] = {s: [] for s in STREAMS}
        for _ in range(max(1, round(seconds / block))):
            for stream in STREAMS:
                blocks[stream].append(paced(clients, calls_of(stream, stored, per_block, rng), rate))
    finally:
        for c in clients:
            c.close()
    return {stream: merge(parts) for stream, parts in blocks.items()}


def verdict(streams: dict[str, Any]) -> dict[str, Any]:
    """Issue 8: status lookups' p99 within 10 ms, with the offered rate achieved."""
    lookup_p99 = max(streams[s]["latency"].get("p99_ms", float("inf")) for s in ("instance", "listing"))
    return {
        "criterion": f"status lookup p99 <= {P99_LIMIT_MS:g} ms",
        "lookup_p99_ms": lookup_p99,
        "baseline_p99_ms": streams["healthz"]["latency"].get("p99_ms"),
        "pass": lookup_p99 <= P99_LIMIT_MS,
    }


def errors_of(result: dict[str, Any]) -> list[str]:
    return [f"lookups {name}: {e}" for name, s in result["streams"].items() for e in s["errors"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    report.add_results_argument(parser)
    args = parser.parse_args()
    result = {"benchmark": "lookups", "commit": commit(), **run(args.records, args.rate, args.seconds)}
    report.write(args.results_dir, "lookups", result)
    report.print_lookups(result)
    return 1 if report.print_errors(errors_of(result)) else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", type=int, default=1000, help="live instances stored")
    parser.add_argument("--rate", type=float, default=200, help="offered requests per second, each stream")
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per stream")


if __name__ == "__main__":
    sys.exit(main())
