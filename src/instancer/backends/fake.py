"""An in-memory backend for unit tests of the use cases and for trying the API without an engine.

Behaves like a real engine where the use cases can tell: idempotent stop, labelled
objects, images that may be missing, an engine that may be down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..domain.errors import BackendUnavailable, ImageMissing, PortUnavailable
from ..domain.ports import Launched, LaunchPlan, Observed, RouteTarget


@dataclass
class FakeBackend:
    name: str = "fake"
    #: True to behave like the swarm backend (proxied ports published on host ports too)
    proxied_ports_need_host_ports: bool = False
    images: set[str] | None = None  # None: every image exists
    down: bool = False
    ready: bool = True
    busy_ports: set[int] = field(default_factory=set)
    running: dict[str, LaunchPlan] = field(default_factory=dict)
    starts: int = 0
    #: called at the start of every `start`, to inject faults or interleavings in tests
    before_start: Callable[[LaunchPlan], None] | None = None
    #: where `start` says players reach the instance (a swarm backend names the node)
    public_host: str | None = None
    #: instances whose containers are listed as not running, with the engine's explanation
    stalled: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ping(self) -> None:
        if self.down:
            raise BackendUnavailable("the fake engine is down")

    def start(self, plan: LaunchPlan) -> Launched:
        self.ping()
        if self.before_start is not None:
            self.before_start(plan)
        for c in plan.containers:
            if self.images is not None and c.image not in self.images:
                raise ImageMissing(f"no image {c.image}")
            if any(b.host_port in self.busy_ports for b in c.ports):
                raise PortUnavailable("a host port is held by something else")
        with self._lock:
            self.running[plan.instance_id] = plan
            self.starts += 1
        return Launched(
            probe_targets=tuple(("fake", b.host_port) for c in plan.containers for b in c.ports),
            targets=tuple(
                RouteTarget(c.name, port, f"fake-{plan.instance_id}-{c.name}:{port}")
                for c in plan.containers
                for port in c.exposed
            ),
            public_host=self.public_host,
        )

    def probe(self, launched: Launched) -> bool:
        return self.ready

    def stop(self, instance_id: str) -> None:
        self.ping()
        with self._lock:
            self.running.pop(instance_id, None)

    def list_managed(self) -> list[Observed]:
        self.ping()
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        with self._lock:
            return [
                Observed(
                    "container",
                    f"inst-{i}",
                    i,
                    epoch,
                    running=i not in self.stalled,
                    detail=self.stalled.get(i, ""),
                )
                for i in self.running
            ]
