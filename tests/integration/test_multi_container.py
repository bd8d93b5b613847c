"""Multi-container challenges on the real engine: the two-container demo end to end, two
exposed ports on two containers, a lost member repaired or marked per the lost policy, start
order with and without healthchecks, and a dependency that never gets healthy."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from instancer.backends.docker import DockerBackend
from instancer.bootstrap import Service
from instancer.domain.model import State
from instancer.domain.ports import InstanceFilter
from tests.conftest import ADMIN_TOKEN, DEMO_DUO_IMAGE, DEMO_TCP_IMAGE, DEMO_WEB_IMAGE, LiveServer, auth
from tests.integration.helpers import engine_objects, http_get, tcp_read

pytestmark = pytest.mark.docker
MakeService = Callable[..., Service]
DUO = Path(__file__).resolve().parents[2] / "examples" / "challenges" / "demo-duo" / "challenge.yaml"
# The db role of the demo, once it has slept: answers on 5000 with the flag.
DB_ANSWERS = ["sh", "-c", "nc 127.0.0.1 5000 </dev/null | grep -q ."]


def _duo() -> dict[str, Any]:
    return dict(yaml.safe_load(DUO.read_text()))


@pytest.fixture
def client_of() -> Iterator[Callable[[Service], httpx.Client]]:
    """An HTTP client on a live server of the service (closed, and the server stopped, after)."""
    opened: list[tuple[LiveServer, httpx.Client]] = []

    def make(service: Service) -> httpx.Client:
        server = LiveServer(service).__enter__()
        client = httpx.Client(base_url=server.url, headers=auth(), timeout=300)
        opened.append((server, client))
        return client

    yield make
    for server, client in opened:
        client.close()
        server.__exit__()


def _put(client: httpx.Client, spec: dict[str, Any]) -> None:
    r = client.put(f"/api/v1/challenges/{spec['id']}", json=spec, headers=auth(ADMIN_TOKEN))
    assert r.status_code in (200, 201), r.text


def _start(client: httpx.Client, challenge: str, owner: str = "team-1") -> httpx.Response:
    return client.post("/api/v1/instances", json={"challenge": challenge, "owner": owner})


def _containers(service: Service, instance_id: str) -> dict[str, dict[str, Any]]:
    """The instance's containers, inspected, by their name in the spec."""
    backend = service.backend
    assert isinstance(backend, DockerBackend)
    listed, _ = engine_objects(service, instance_id)
    inspected = [backend.api.inspect_container(c["Id"]) for c in listed]
    return {c["Config"]["Labels"]["instancer.container"]: c for c in inspected}


def _started_at(container: dict[str, Any]) -> datetime:
    """The engine's start time (RFC 3339 with up to nanoseconds), to the microsecond."""
    match = re.fullmatch(r"(.{19})(?:\.(\d+))?Z", container["State"]["StartedAt"])
    assert match is not None, container["State"]["StartedAt"]
    micros = int((match.group(2) or "0")[:6].ljust(6, "0"))
    return datetime.fromisoformat(match.group(1)).replace(microsecond=micros, tzinfo=UTC)


def test_the_duo_shows_its_own_flag_read_from_db_by_name_and_stop_removes_everything(
    docker_service: MakeService, client_of: Callable[[Service], httpx.Client]
) -> None:
    service = docker_service()
    client = client_of(service)
    _put(client, _duo())
    r = _start(client, "demo-duo")
    assert r.status_code == 201, r.text
    body = r.json()
    (connection,) = body["connection"]  # only web is published
    assert connection["container"] == "web" and connection["container_port"] == 8080
    flag = service.flags.reveal(body["id"])
    containers = _containers(service, body["id"])
    assert sorted(containers) == ["db", "web"]
    # Only db holds the flag: what web shows, it read from db over the instance network.
    assert f"FLAG={flag}" in containers["db"]["Config"]["Env"]
    assert not any(e.startswith("FLAG=") for e in containers["web"]["Config"]["Env"])
    assert http_get(connection["url"]).strip() == flag
    assert len(engine_objects(service, body["id"])[1]) == 1  # one network for both

    r = client.delete(f"/api/v1/instances/{body['id']}")
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    assert engine_objects(service) == ([], [])


def test_two_exposed_ports_on_two_containers_both_work(
    docker_service: MakeService, client_of: Callable[[Service], httpx.Client]
) -> None:
    service = docker_service()
    client = client_of(service)
    spec = {
        "id": "pair",
        "containers": [
            {"name": "web", "image": DEMO_WEB_IMAGE, "ports": [{"port": 8080, "protocol": "http"}]},
            {"name": "game", "image": DEMO_TCP_IMAGE, "ports": [{"port": 9000, "protocol": "tcp"}]},
        ],
    }
    _put(client, spec)
    body = _start(client, "pair").json()
    by_container = {c["container"]: c for c in body["connection"]}
    assert sorted(by_container) == ["game", "web"]
    flag = service.flags.reveal(body["id"])
    assert http_get(by_container["web"]["url"]).strip() == flag
    assert by_container["game"]["url"] is None
    _, host, port = by_container["game"]["command"].split()
    assert tcp_read(host, int(port)).strip() == flag


def _remove_member(service: Service, instance_id: str, name: str) -> None:
    backend = service.backend
    assert isinstance(backend, DockerBackend)
    backend.api.remove_container(_containers(service, instance_id)[name]["Id"], force=True)


def test_a_removed_member_marks_the_whole_instance_lost(docker_service: MakeService) -> None:
    service = docker_service(lost_policy="mark")
    service.challenges.put(_duo())
    inst = service.instances.start("demo-duo", "o").instance
    _remove_member(service, inst.id, "db")

    report = service.instances.reconcile(grace_seconds=120, lost_after_seconds=0)
    assert report["lost"] == 1
    lost = service.instances.get(inst.id)
    assert (
        lost.state is State.LOST and lost.reason == "LOST: 1 of 2 container(s) running at the last reconcile"
    )
    assert engine_objects(service, inst.id) == ([], [])  # web and the network went too
    assert service.instances.stats().ports_allocated == 0


def test_a_removed_member_is_recreated_with_every_member_and_the_same_flag(
    docker_service: MakeService,
) -> None:
    service = docker_service(lost_policy="recreate")
    service.challenges.put(_duo())
    inst = service.instances.start("demo-duo", "o").instance
    flag = service.flags.reveal(inst.id)
    _remove_member(service, inst.id, "web")

    report = service.instances.reconcile(grace_seconds=120, lost_after_seconds=0)
    assert report["recreated"] == 1
    again = service.instances.get(inst.id)
    assert (again.state, again.generation, again.allocations) == (State.RUNNING, 2, inst.allocations)
    containers = _containers(service, inst.id)
    assert sorted(containers) == ["db", "web"]
    assert {c["Config"]["Labels"]["instancer.generation"] for c in containers.values()} == {"2"}
    assert all(c["State"]["Running"] for c in containers.values())
    assert http_get(f"http://127.0.0.1:{inst.allocations[0].host_port}/").strip() == flag


def _ordered(db: dict[str, Any], web_probe: str = "ok") -> dict[str, Any]:
    """web (declared first) depends on db. db answers only after `sleep`; web notes, once, as
    it starts, whether db answered, and serves the note at /startup."""
    note = (
        f"if nc db 5000 </dev/null | grep -q .; then echo {web_probe}; else echo early; fi >/www/startup; "
        "exec sh /entrypoint.sh web"
    )
    return {
        "id": "ordered",
        "containers": [
            {
                "name": "web",
                "image": DEMO_DUO_IMAGE,
                "command": ["sh", "-c", note],
                "depends_on": ["db"],
                "ports": [{"port": 8080, "protocol": "http"}],
            },
            {"name": "db", "image": DEMO_DUO_IMAGE, **db},
        ],
        "flag": {"containers": ["db"]},
    }


def test_a_dependent_starts_only_once_its_dependency_is_healthy(
    docker_service: MakeService, client_of: Callable[[Service], httpx.Client]
) -> None:
    service = docker_service()
    client = client_of(service)
    slow_db = {
        "command": ["sh", "-c", "sleep 1; exec sh /entrypoint.sh db"],
        # Checks that fail while db sleeps fall in the start period: they do not count.
        "healthcheck": {"command": DB_ANSWERS, "interval_seconds": 0.2, "start_period_seconds": 60},
    }
    _put(client, _ordered(slow_db))
    body = _start(client, "ordered").json()
    assert body["state"] == "running"
    url = body["connection"][0]["url"]
    assert http_get(url + "startup").strip() == "ok"  # db answered when web started
    containers = _containers(service, body["id"])
    assert containers["db"]["State"]["Health"]["Status"] == "healthy"
    assert _started_at(containers["db"]) < _started_at(containers["web"])


def test_without_a_healthcheck_only_the_order_is_kept(
    docker_service: MakeService, client_of: Callable[[Service], httpx.Client]
) -> None:
    service = docker_service()
    client = client_of(service)
    # db would answer only after a minute: nothing waits for that without a healthcheck.
    _put(client, _ordered({"command": ["sh", "-c", "sleep 60; exec sh /entrypoint.sh db"]}))
    body = _start(client, "ordered").json()
    assert body["state"] == "running"
    assert http_get(body["connection"][0]["url"] + "startup").strip() == "early"
    containers = _containers(service, body["id"])
    assert _started_at(containers["db"]) < _started_at(containers["web"])  # web is declared first


@pytest.mark.parametrize(
    ("healthcheck", "timeout", "reason"),
    [
        (
            # A timeout far beyond the first check, so that only the check can end the wait.
            {"command": ["false"], "interval_seconds": 0.2, "retries": 1},
            120,
            "CONTAINER_UNHEALTHY: container 'db' turned unhealthy",
        ),
        (
            # Failures in the start period do not count: it stays `starting` past the timeout.
            {"command": ["false"], "interval_seconds": 0.2, "start_period_seconds": 600},
            1.5,
            "CONTAINER_UNHEALTHY: container 'db' was not healthy within 1.5 s",
        ),
    ],
)
def test_a_dependency_that_is_not_healthy_fails_the_start_and_leaves_nothing(
    docker_service: MakeService,
    client_of: Callable[[Service], httpx.Client],
    healthcheck: dict[str, Any],
    timeout: float,
    reason: str,
) -> None:
    service = docker_service(ready_timeout_seconds=timeout)
    client = client_of(service)
    _put(client, _ordered({"command": ["db"], "healthcheck": healthcheck}))
    r = _start(client, "ordered")
    assert (r.status_code, r.json()["error"]["code"]) == (502, "CONTAINER_UNHEALTHY")
    assert r.json()["error"]["details"] == {"container": "db"}
    (failed,) = service.instances.find(InstanceFilter()).items
    assert failed.state is State.FAILED and failed.reason is not None and failed.reason.startswith(reason)
    assert engine_objects(service) == ([], [])  # db, which had started, is gone; web never was
    assert service.instances.stats().ports_allocated == 0
