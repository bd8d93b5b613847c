"""The service over HTTP on every real backend: start to flag to gone, limits under concurrent
requests, expiry on time, and extend/revert/stop with their documented codes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx2 as httpx
import pytest

from tests.conftest import ADMIN_TOKEN, LiveServer, auth, demo_spec, tcp_spec
from tests.contract.conftest import Engine, Objects
from tests.integration.helpers import http_get, tcp_read, wait_until

pytestmark = pytest.mark.docker
NOTHING = Objects([], [])


def _client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=auth(), timeout=60)


def _put(client: httpx.Client, spec: dict) -> None:
    r = client.put(f"/api/v1/challenges/{spec['id']}", json=spec, headers=auth(ADMIN_TOKEN))
    assert r.status_code in (200, 201), r.text


def test_start_connect_get_flag_stop_leaves_nothing(engine: Engine) -> None:
    service = engine.service()
    with LiveServer(service) as server, _client(server) as client:
        _put(client, demo_spec())
        r = client.post("/api/v1/instances", json={"challenge": "demo-web", "owner": "team-1"})
        assert r.status_code == 201, r.text
        body = r.json()
        flag = service.flags.reveal(body["id"])
        assert flag in http_get(body["connection"][0]["url"])
        held = engine.objects(service, body["id"])
        assert len(held.containers) == 1 and len(held.networks) == 1

        r = client.delete(f"/api/v1/instances/{body['id']}")
        assert r.status_code == 200 and r.json()["state"] == "stopped"
        assert engine.objects(service) == NOTHING
        assert service.instances.stats().ports_allocated == 0
        wait_until(lambda: engine.leftovers(service) == [], timeout=30)  # nodes remove their containers


def test_tcp_challenge_gives_a_working_nc_line(engine: Engine) -> None:
    service = engine.service()
    with LiveServer(service) as server, _client(server) as client:
        _put(client, tcp_spec())
        body = client.post("/api/v1/instances", json={"challenge": "demo-tcp", "owner": "t"}).json()
        _, host, port = body["connection"][0]["command"].split()
        assert service.flags.reveal(body["id"]) in tcp_read(host, int(port))


def test_twenty_concurrent_starts_of_one_owner_make_one_container(engine: Engine) -> None:
    service = engine.service()
    with LiveServer(service) as server, _client(server) as client:
        _put(client, demo_spec())
        _put(client, demo_spec("second"))

        def start(_: int) -> httpx.Response:
            return client.post("/api/v1/instances", json={"challenge": "demo-web", "owner": "team-1"})

        with ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(start, range(20)))
        assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
        assert len({r.json()["id"] for r in responses}) == 1
        assert len(engine.objects(service).containers) == 1

        r = client.post("/api/v1/instances", json={"challenge": "second", "owner": "team-1"})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "INSTANCE_LIMIT_REACHED")
        assert r.json()["error"]["details"]["instances"][0]["id"] == responses[0].json()["id"]


def test_capacity_n_gives_exactly_n_instances_under_a_burst(engine: Engine) -> None:
    capacity = 4
    service = engine.service(capacity=capacity)
    with LiveServer(service) as server, _client(server) as client:
        _put(client, demo_spec())

        def start(n: int) -> httpx.Response:
            return client.post("/api/v1/instances", json={"challenge": "demo-web", "owner": f"team-{n}"})

        with ThreadPoolExecutor(capacity + 10) as pool:
            responses = list(pool.map(start, range(capacity + 10)))
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] * capacity + [503] * 10
        assert {r.json()["error"]["code"] for r in responses if r.status_code == 503} == {"CAPACITY_REACHED"}
        held = engine.objects(service)
        assert len(held.containers) == capacity and len(held.networks) == capacity


def test_short_lived_instances_are_gone_within_seconds_of_their_deadline(
    engine: Engine,
) -> None:
    service = engine.service(reaper_interval_seconds=0.5)
    with LiveServer(service) as server, _client(server) as client:
        # Long enough for a wave of starts on the slowest backend (a swarm: seconds) to finish first.
        _put(client, demo_spec(lifetime={"seconds": 15}))

        def start(n: int) -> dict:
            r = client.post("/api/v1/instances", json={"challenge": "demo-web", "owner": f"t{n}"})
            assert r.status_code == 201, r.text
            return dict(r.json())

        with ThreadPoolExecutor(6) as pool:  # a wave sharing (nearly) one deadline
            bodies = list(pool.map(start, range(6)))
        removed_at: dict[str, float] = {}

        def all_gone() -> bool:
            for body in bodies:
                if body["id"] not in removed_at and engine.objects(service, body["id"]) == NOTHING:
                    removed_at[body["id"]] = time.time()
            return len(removed_at) == len(bodies)

        wait_until(all_gone, timeout=30, interval=0.1)
        # The record is marked right after the engine confirms the removal.
        wait_until(lambda: service.instances.stats().by_state == {"expired": len(bodies)}, timeout=5)
        for body in bodies:
            deadline = datetime.fromisoformat(body["expires_at"])
            late_by = removed_at[body["id"]] - deadline.timestamp()
            bound = 5 + engine.removal_seconds
            assert late_by <= bound, f"removed {late_by:.1f} s after the deadline"
            shown = client.get(f"/api/v1/instances/{body['id']}").json()
            assert (shown["state"], shown["reason"]) == ("expired", "lifetime over")
            marked_late = (datetime.fromisoformat(shown["ended_at"]) - deadline).total_seconds()
            assert marked_late <= bound, f"marked expired {marked_late:.1f} s after the deadline"


def test_extend_revert_stop_obey_the_limits(engine: Engine) -> None:
    service = engine.service(cooldown_seconds=30, extension_interval_seconds=0)
    with LiveServer(service) as server, _client(server) as client:
        _put(
            client,
            demo_spec(
                lifetime={
                    "seconds": 60,
                    "extension_seconds": 60,
                    "max_extensions": 1,
                    "max_remaining_seconds": 600,
                }
            ),
        )
        body = client.post("/api/v1/instances", json={"challenge": "demo-web", "owner": "t"}).json()
        path = f"/api/v1/instances/{body['id']}"

        r = client.post(path + "/extend")
        assert r.status_code == 200 and r.json()["extensions_left"] == 0
        r = client.post(path + "/extend")
        assert (r.status_code, r.json()["error"]["code"]) == (409, "EXTENSION_LIMIT_REACHED")

        r = client.post(path + "/revert")  # within the 30 s cooldown of the start
        assert (r.status_code, r.json()["error"]["code"]) == (429, "COOLDOWN")

        r = client.delete(path)  # stopping is always allowed
        assert r.status_code == 200 and r.json()["state"] == "stopped"
        r = client.post(path + "/extend")
        assert (r.status_code, r.json()["error"]["code"]) == (409, "INSTANCE_NOT_RUNNING")
        assert engine.objects(service) == NOTHING


def test_revert_gives_a_fresh_container_on_the_same_port_with_the_same_flag(
    engine: Engine,
) -> None:
    service = engine.service()
    with LiveServer(service) as server, _client(server) as client:
        _put(client, demo_spec())
        body = client.post("/api/v1/instances", json={"challenge": "demo-web", "owner": "t"}).json()
        (before,) = engine.objects(service, body["id"]).containers
        r = client.post(f"/api/v1/instances/{body['id']}/revert")
        assert r.status_code == 200 and r.json()["state"] == "running"
        after = engine.objects(service, body["id"])
        assert after.containers != [before] and len(after.containers) == len(after.networks) == 1
        assert r.json()["connection"] == body["connection"]
        assert service.flags.reveal(body["id"]) in http_get(body["connection"][0]["url"])


def test_admin_bulk_stop_removes_every_container(engine: Engine) -> None:
    service = engine.service()
    with LiveServer(service) as server, _client(server) as client:
        _put(client, demo_spec())
        for n in range(3):
            assert (
                client.post("/api/v1/instances", json={"challenge": "demo-web", "owner": f"o{n}"}).status_code
                == 201
            )
        r = client.delete(
            "/api/v1/admin/instances", params={"challenge": "demo-web"}, headers=auth(ADMIN_TOKEN)
        )
        assert r.json() == {"stopped": 3}
        assert engine.objects(service) == NOTHING


def test_two_replicas_on_one_database_keep_the_limits(engine: Engine) -> None:
    """Two service processes' worth of objects (own pools, own reapers) share one database
    and engine: the per-owner limit and capacity hold across them."""
    first = engine.service(capacity=3)
    second = engine.service(capacity=3, deployment=first.settings.deployment)
    with LiveServer(first) as one, LiveServer(second) as two, _client(one) as c1, _client(two) as c2:
        _put(c1, demo_spec())
        _put(c1, demo_spec("second"))
        calls = [(c1 if n % 2 else c2, "demo-web" if n % 4 < 2 else "second", "same") for n in range(8)]
        calls += [(c1 if n % 2 else c2, "demo-web", f"team-{n}") for n in range(8)]

        def start(call: tuple[httpx.Client, str, str]) -> tuple[str, int, str]:
            client, challenge, owner = call
            r = client.post("/api/v1/instances", json={"challenge": challenge, "owner": owner})
            return owner, r.status_code, r.json().get("error", {}).get("code", "")

        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(start, calls))
        assert len(engine.objects(first).containers) == 3  # capacity, across both replicas
        same = [o for o in outcomes if o[0] == "same"]
        assert sum(1 for o in same if o[1] == 201) <= 1
        assert {o[2] for o in same if o[1] >= 400} <= {"INSTANCE_LIMIT_REACHED", "CAPACITY_REACHED"}
        assert sum(1 for o in outcomes if o[1] == 201) == 3
