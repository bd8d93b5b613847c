"""Load generators: a fixed offered rate (open loop) and a fixed number of busy clients
(closed loop), both bounded in requests and in time, against one loopback server.

Open-loop latency is measured from when each request was due, not from when it was sent:
a server that stalls makes the requests queued behind the stall late, and that lateness
counts (no coordinated omission).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from common import summary


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str] | None = None
    json: dict[str, Any] | None = None


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.first = self.last = 0.0
        self.lock = threading.Lock()

    def record(self, latency: float, error: str | None, finished: float) -> None:
        with self.lock:
            if error is None:
                self.latencies.append(latency)
            else:
                self.errors.append(error)
            self.last = max(self.last, finished)


def _send(client: httpx.Client, call: Call) -> str | None:
    """None when the call succeeded, else why not."""
    try:
        r = client.request(call.method, call.path, params=call.params, json=call.json)
    except httpx.HTTPError as exc:
        return f"{call.method} {call.path}: {type(exc).__name__}"
    return None if r.is_success else f"{call.method} {call.path}: {r.status_code}"


def _run_workers(clients: list[httpx.Client], work: Callable[[httpx.Client], None]) -> None:
    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def paced(clients: list[httpx.Client], calls: list[Call], rate: float) -> dict[str, Any]:
    """Send `calls` in order at `rate` per second, spread over the clients (one thread each;
    enough of them that a slow answer does not hold up the schedule). Gives up on the rest
    after twice the planned time plus 5 s."""
    tally, counter = _Tally(), itertools.count()
    t0 = time.perf_counter() + 0.01
    give_up = t0 + 2 * len(calls) / rate + 5
    tally.first = t0

    def work(client: httpx.Client) -> None:
        while (j := next(counter)) < len(calls):
            due = t0 + j / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            if time.perf_counter() > give_up:
                tally.record(0, "gave up: the schedule fell too far behind", time.perf_counter())
                continue
            error = _send(client, calls[j])
            done = time.perf_counter()
            tally.record(done - due, error, done)

    _run_workers(clients, work)
    return _result(tally, offered=rate)


def saturate(clients: list[httpx.Client], calls: list[Call]) -> dict[str, Any]:
    """Send `calls` as fast as the clients can, each client one request at a time."""
    tally, counter = _Tally(), itertools.count()
    tally.first = time.perf_counter()

    def work(client: httpx.Client) -> None:
        while (j := next(counter)) < len(calls):
            sent = time.perf_counter()
            error = _send(client, calls[j])
            done = time.perf_counter()
            tally.record(done - sent, error, done)

    _run_workers(clients, work)
    return _result(tally, offered=None, clients=len(clients))


def _result(tally: _Tally, **extra: Any) -> dict[str, Any]:
    took = tally.last - tally.first
    return {
        **extra,
        "requests": len(tally.latencies) + len(tally.errors),
        "achieved_rps": len(tally.latencies) / took if took > 0 else 0.0,
        "latency": summary(tally.latencies),
        "samples_ms": [s * 1000 for s in tally.latencies],
        "errors": tally.errors[:20],
        "error_count": len(tally.errors),
    }


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several measured blocks of one stream as one: samples pooled, rates over the sum of times."""
    samples = [s for p in parts for s in p["samples_ms"]]
    seconds = sum(len(p["samples_ms"]) / p["achieved_rps"] for p in parts if p["achieved_rps"])
    return {
        "offered_rps": parts[0].get("offered"),
        "requests": sum(p["requests"] for p in parts),
        "achieved_rps": len(samples) / seconds if seconds else 0.0,
        "latency": summary([s / 1000 for s in samples]),
        "samples_ms": samples,
        "errors": [e for p in parts for e in p["errors"]][:20],
        "error_count": sum(p["error_count"] for p in parts),
    }
