"""Warm pools on the real engine behind a real Traefik: the pool fills in the background, Traefik
holds the pooled instances' routes before anyone claims them, so a claimed instance answers
through the proxy on the first request after its 201; and no owner is shown a pooled instance."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from instancer.bootstrap import Service
from tests.conftest import ADMIN_TOKEN, LiveServer, auth, demo_spec, tcp_spec
from tests.integration.helpers import wait_until
from tests.integration.traefik import (
    DOMAIN,
    ROUTES_TOKEN,
    Traefik,
    https_get,
    proxy_ports,
    running_traefik,
    tls_read,
)

pytestmark = pytest.mark.docker
FILL_WAIT = 60.0  # generous: pass/fail never hinges on how fast the engine starts containers
ROUTE_WAIT = 15.0
ADMIN = auth(ADMIN_TOKEN)


@dataclass
class Pooled:
    service: Service
    client: httpx.Client
    traefik: Traefik

    def pooled(self) -> list[dict]:
        r = self.client.get("/api/v1/admin/instances", params={"state": "pooled"}, headers=ADMIN)
        return list(r.json()["items"])

    def fill(self, spec: dict) -> list[dict]:
        """Register a pooled challenge; wait until its pool is full and Traefik routes every member."""
        r = self.client.put(f"/api/v1/challenges/{spec['id']}", json=spec, headers=ADMIN)
        assert r.status_code == 201, r.text
        size = spec["pool"]["min"]
        wait_until(lambda: len([i for i in self.pooled() if i["challenge"] == spec["id"]]) == size, FILL_WAIT)
        wait_until(lambda: len(self.traefik.routers()) >= size, ROUTE_WAIT)
        return [i for i in self.pooled() if i["challenge"] == spec["id"]]


@pytest.fixture
def pooled(docker_service: Callable[..., Service], tmp_path: Path) -> Iterator[Pooled]:
    ports = proxy_ports()
    service = docker_service(
        domain=DOMAIN, routes_token=ROUTES_TOKEN, proxy_https_port=ports[0], proxy_tcp_port=ports[1]
    )
    with (
        LiveServer(service) as server,  # with its reaper and pool filler
        running_traefik(f"{server.url}/api/v1/routes/traefik", ports, tmp_path) as traefik,
        httpx.Client(base_url=server.url, headers=auth(), timeout=60) as client,
    ):
        yield Pooled(service, client, traefik)


def test_a_claimed_http_instance_answers_through_traefik_at_once(pooled: Pooled) -> None:
    spec = demo_spec(ports=[{"port": 8080, "protocol": "http", "expose": "http"}], pool={"min": 2})
    waiting = pooled.fill(spec)
    r = pooled.client.post("/api/v1/instances", json={"challenge": "demo-web", "owner": "team-1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["state"] == "running" and body["id"] in {i["id"] for i in waiting}
    host = body["connection"][0]["host"]
    # The first request after the answer, with no waiting: the route was live before the claim.
    status, page = https_get(pooled.traefik, host)
    assert (status, page.strip()) == (200, pooled.service.flags.reveal(body["id"]))
    assert pooled.service.flags.verify("demo-web", "team-1", page.strip()).correct
    # The pool refills behind the claim, and the owner's instance stops like any other.
    wait_until(lambda: len(pooled.pooled()) == 2, FILL_WAIT)
    assert pooled.client.delete(f"/api/v1/instances/{body['id']}").json()["state"] == "stopped"


def test_a_claimed_tcp_tls_instance_answers_at_once(pooled: Pooled) -> None:
    spec = tcp_spec(ports=[{"port": 9000, "protocol": "tcp", "expose": "tcp-tls"}], pool={"min": 1})
    pooled.fill(spec)
    r = pooled.client.post("/api/v1/instances", json={"challenge": "demo-tcp", "owner": "team-1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert tls_read(pooled.traefik, body["connection"][0]["host"]).strip() == pooled.service.flags.reveal(
        body["id"]
    )


def test_no_owner_is_shown_a_pooled_instance(pooled: Pooled) -> None:
    spec = demo_spec(ports=[{"port": 8080, "protocol": "http", "expose": "http"}], pool={"min": 2})
    waiting = pooled.fill(spec)
    for instance in waiting:
        r = pooled.client.get(f"/api/v1/instances/{instance['id']}")
        assert (r.status_code, r.json()["error"]["code"]) == (404, "INSTANCE_NOT_FOUND")
        assert instance["connection"] == []  # not even admins are told its address
    for owner in ("team-1", "team-2"):
        listed = pooled.client.get("/api/v1/instances", params={"owner": owner, "include_ended": True})
        assert listed.json()["total"] == 0
    stats = pooled.client.get("/api/v1/admin/stats", headers=ADMIN).json()
    assert stats["pooled_by_challenge"] == {"demo-web": 2} and stats["occupying"] == 2
