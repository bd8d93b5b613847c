"""Multi-node fixtures: swarms of three engines of the tests' own (harness.py), services wired
to them as `INSTANCER_BACKEND=swarm` wires them, and what the swarm says about instances.

Sizes: short in the default suite (CI), full with `make test-swarm` (INSTANCER_SWARM=full).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from instancer import bootstrap
from instancer.bootstrap import Service
from instancer.settings import Settings
from tests.conftest import swarm_of
from tests.swarm.harness import Swarm

FULL = os.environ.get("INSTANCER_SWARM") == "full"


def scale(short: int, full: int) -> int:
    return full if FULL else short


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    """SQLite only: these tests are about the swarm; the store is the one proved elsewhere."""
    return f"sqlite:///{tmp_path}/instancer.db"


@pytest.fixture(scope="session")
def swarm3(request: pytest.FixtureRequest) -> Swarm:
    """Three nodes (one manager, two workers) on 10.231.2.0/24, shared by the tests that leave
    every node up; each test labels, pauses or drains nodes only for its own duration."""
    swarm: Swarm = swarm_of(request, 3, 2)
    return swarm


@pytest.fixture
def doomed_swarm(request: pytest.FixtureRequest) -> Swarm:
    """Three nodes on 10.231.3.0/24 for one test that kills one of them."""
    swarm: Swarm = swarm_of(request, 3, 3)
    return swarm


@pytest.fixture
def on_swarm(make_settings: Callable[..., Settings], make_service: Callable[..., Service]) -> Iterator[Any]:
    """`on_swarm(swarm, **settings)`: a service on that swarm. Whatever its deployment holds at
    the end is removed."""
    made: list[tuple[Service, Swarm]] = []

    def make(swarm: Swarm, **overrides: Any) -> Service:
        values = {"docker_host": swarm.manager.url, **overrides}
        settings = make_settings(backend="swarm", **values)
        values.setdefault("deployment", settings.deployment)
        service = make_service(backend=bootstrap.backend_of(settings), **values)
        made.append((service, swarm))
        return service

    yield make
    for service, swarm in made:
        service.reaper.stop()
        swarm.remove_deployment(service.settings.deployment)


def node_of(swarm: Swarm, public_host: str | None) -> str:
    """The name of the node whose address (the default public host) is `public_host`."""
    (name,) = [n.name for n in swarm.nodes if n.address == public_host]
    return name


def spread(swarm: Swarm, hosts: list[str | None]) -> Counter[str]:
    return Counter(node_of(swarm, h) for h in hosts)
