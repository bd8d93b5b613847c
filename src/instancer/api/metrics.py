"""Prometheus metrics of one process: what an organiser graphs and alerts on during an event.

Two kinds, in one registry per app (never the library's global one, so two apps in one
process, as in the tests, count apart):

- counted as they happen, in this process: HTTP requests by route template (never by raw
  path, so ids make no series), starts by challenge and outcome, start latency, flag checks
  by outcome;
- read when scraped: instances by state, live and pooled instances per challenge, capacity,
  ports and routes (from the database, the same figures as /api/v1/admin/stats, so every
  replica reports the whole deployment's), and this replica's reaper repairs.

No owner, flag, token or instance id is ever a label: labels are bounded (challenges, states,
routes, error codes), and a metrics reader learns nothing a player could use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..domain.model import OCCUPYING_STATES, State
from ..domain.ports import Stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: start latency buckets (seconds): a pool claim is milliseconds, a cold start about a second
#: on one host, a swarm start a few
_START_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The registry of one app, and the counters its handlers and middleware feed."""

    def __init__(
        self, stats: Callable[[], Stats], capacity: int, repairs: Callable[[], dict[str, int]]
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "instancer_http_request_duration_seconds",
            "HTTP requests by method, route template and status, and how long they took.",
            ("method", "route", "status"),
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.starts = Counter(
            "instancer_starts",
            "Start requests by challenge and outcome: created, existing (the owner's live one), "
            "or the error code.",
            ("challenge", "outcome"),
            registry=self.registry,
        )
        self.start_seconds = Histogram(
            "instancer_start_duration_seconds",
            "From a start request to its instance running and reachable (created ones only).",
            ("challenge",),
            buckets=_START_BUCKETS,
            registry=self.registry,
        )
        self.flag_checks = Counter(
            "instancer_flag_checks",
            "Flag checks by challenge and verdict: correct, incorrect, expired, shared.",
            ("challenge", "verdict"),
            registry=self.registry,
        )
        self.registry.register(_Snapshot(stats, capacity, repairs))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Snapshot(Collector):
    """Figures read at scrape time from the database and the reaper."""

    def __init__(
        self, stats: Callable[[], Stats], capacity: int, repairs: Callable[[], dict[str, int]]
    ) -> None:
        self._stats, self._capacity, self._repairs = stats, capacity, repairs

    def describe(self) -> list[Metric]:
        return []  # unknown until read: the registry must not call collect() at registration

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield _gauge("instancer_instances", "Instances by state.", "state", _by_state(stats))
        yield _gauge(
            "instancer_live_instances", "Live instances by challenge.", "challenge", stats.by_challenge
        )
        yield _gauge(
            "instancer_pooled_instances",
            "Ready instances waiting in each challenge's warm pool.",
            "challenge",
            stats.pooled_by_challenge,
        )
        occupying = sum(stats.by_state.get(s.value, 0) for s in OCCUPYING_STATES)
        yield _gauge(
            "instancer_occupying_instances", "Instances that count against the capacity.", None, occupying
        )
        yield _gauge(
            "instancer_capacity", "INSTANCER_CAPACITY: occupying instances at most.", None, self._capacity
        )
        yield _gauge(
            "instancer_ports_allocated", "Host ports held by instances.", None, stats.ports_allocated
        )
        yield _gauge("instancer_routes", "Proxied ports with a slug (http and tcp-tls).", None, stats.routes)
        repairs = CounterMetricFamily(
            "instancer_reaper_actions",
            "What this replica's reaper did since it started: expired, orphans, lost, recreated, ...",
            labels=("kind",),
        )
        for kind, count in sorted(self._repairs().items()):
            repairs.add_metric((kind,), count)
        yield repairs


def _by_state(stats: Stats) -> dict[str, int]:
    """Every state, zero included, so that a series does not vanish when its count drops to 0."""
    return {s.value: stats.by_state.get(s.value, 0) for s in State}


def _gauge(name: str, doc: str, label: str | None, values: dict[str, int] | int) -> GaugeMetricFamily:
    if label is None:
        assert isinstance(values, int)
        return GaugeMetricFamily(name, doc, value=values)
    assert isinstance(values, dict)
    family = GaugeMetricFamily(name, doc, labels=(label,))
    for key, value in sorted(values.items()):
        family.add_metric((key,), value)
    return family


class RequestMetrics:
    """ASGI middleware: each HTTP request's duration by method, route template and status.

    The route is the matched template (`/api/v1/instances/{instance_id}`); a request that
    matched none counts as `unmatched`, and an unusual method as `other`, so scanning random
    paths or methods makes no new series."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status = time.perf_counter(), [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.requests.labels(_method_of(scope), _route_of(scope), str(status[0])).observe(
                time.perf_counter() - began
            )


#: the methods counted by name; anything else a client sends counts as `other`
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_of(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in _METHODS else "other"


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")
