"""Instances reached through a real Traefik: `http` by Host name, `tcp-tls` by TLS SNI on one
shared entry port; random slugs (a made-up one gets nothing, a revert draws new ones); routes
appear once an instance runs and vanish when it stops, leaving nothing behind."""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from instancer.bootstrap import Service
from instancer.domain.model import new_slug
from tests.conftest import ADMIN_TOKEN, LiveServer, auth, demo_spec, tcp_spec
from tests.integration.helpers import engine_objects, wait_until
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
ROUTE_WAIT = 15.0  # generous: a pass/fail test must not hinge on timing (Traefik polls every 1 s)


@dataclass
class Proxied:
    service: Service
    client: httpx.Client
    traefik: Traefik

    def start(self, challenge: str, owner: str) -> dict:
        r = self.client.post("/api/v1/instances", json={"challenge": challenge, "owner": owner})
        assert r.status_code == 201, r.text
        return r.json()

    def put(self, spec: dict) -> None:
        r = self.client.put(f"/api/v1/challenges/{spec['id']}", json=spec, headers=auth(ADMIN_TOKEN))
        assert r.status_code in (200, 201), r.text


@pytest.fixture
def proxied(docker_service: Callable[..., Service], tmp_path: Path) -> Iterator[Proxied]:
    ports = proxy_ports()
    service = docker_service(
        expose_default="proxy",
        domain=DOMAIN,
        routes_token=ROUTES_TOKEN,
        proxy_https_port=ports[0],
        proxy_tcp_port=ports[1],
    )
    with (
        LiveServer(service) as server,
        running_traefik(f"{server.url}/api/v1/routes/traefik", ports, tmp_path) as traefik,
        httpx.Client(base_url=server.url, headers=auth(), timeout=60) as client,
    ):
        yield Proxied(service, client, traefik)


def _host(connection: dict) -> str:
    return str(connection["host"])


def _served(proxied: Proxied, host: str) -> bool:
    return https_get(proxied.traefik, host)[0] == 200


def test_an_http_instance_answers_at_its_subdomain_and_a_made_up_slug_gets_404(proxied: Proxied) -> None:
    proxied.put(demo_spec())
    body = proxied.start("demo-web", "team-1")
    [conn] = body["connection"]
    host = _host(conn)
    assert conn["mode"] == "http" and conn["url"] == f"https://{host}:{proxied.traefik.https_port}/"
    assert host.endswith("." + DOMAIN) and "team" not in host and conn["hint"]
    wait_until(lambda: _served(proxied, host), ROUTE_WAIT)
    status, page = https_get(proxied.traefik, host)
    assert (status, page.strip()) == (200, proxied.service.flags.reveal(body["id"]))
    assert https_get(proxied.traefik, f"{new_slug()}.{DOMAIN}")[0] == 404
    assert proxied.service.instances.stats().ports_allocated == 0  # no host port taken


def test_tcp_tls_instances_share_one_entry_port_and_each_reaches_only_its_own(proxied: Proxied) -> None:
    proxied.put(tcp_spec())
    a, b = proxied.start("demo-tcp", "team-a"), proxied.start("demo-tcp", "team-b")
    flags = {i["id"]: proxied.service.flags.reveal(i["id"]) for i in (a, b)}
    assert len(set(flags.values())) == 2
    for instance in (a, b):
        [conn] = instance["connection"]
        assert conn["mode"] == "tcp-tls" and conn["port"] == proxied.traefik.tcp_port
        assert conn["command"].startswith("openssl s_client") and conn["alternatives"]
        host = _host(conn)
        wait_until(lambda h=host: "flag" in tls_read(proxied.traefik, h, 1.0), ROUTE_WAIT)  # type: ignore[misc]
        # What a player runs: the connection info's own command, certificate checked by the test CA.
        command = conn["command"].replace(f"{host}:{conn['port']}", f"127.0.0.1:{conn['port']}")
        out = subprocess.run(
            [*command.split(), "-CAfile", str(proxied.traefik.ca_file), "-verify_return_error"],
            input=b"",
            capture_output=True,
            timeout=20,
            check=True,
        ).stdout.decode()
        assert out.strip() == flags[instance["id"]]


def test_a_revert_draws_a_new_slug_and_the_old_one_stops_answering(proxied: Proxied) -> None:
    proxied.put(demo_spec())
    body = proxied.start("demo-web", "team-1")
    old = _host(body["connection"][0])
    wait_until(lambda: _served(proxied, old), ROUTE_WAIT)
    r = proxied.client.post(f"/api/v1/instances/{body['id']}/revert")
    assert r.status_code == 200, r.text
    new = _host(r.json()["connection"][0])
    assert new != old
    wait_until(lambda: _served(proxied, new), ROUTE_WAIT)
    wait_until(lambda: https_get(proxied.traefik, old)[0] == 404, ROUTE_WAIT)


def test_the_routes_need_the_routes_token(proxied: Proxied) -> None:
    url = "/api/v1/routes/traefik"
    assert proxied.client.get(url).status_code == 403  # the platform token
    assert proxied.client.get(url, headers={"Authorization": "Bearer nope-nope-nope-nope"}).status_code == 401
    r = proxied.client.get(url, headers=auth(ROUTES_TOKEN))
    assert r.status_code == 200 and r.json() == {}
    # The routes token reads the routes and nothing else.
    assert proxied.client.get("/api/v1/instances", headers=auth(ROUTES_TOKEN)).status_code == 403


def test_a_hundred_starts_and_stops_leave_no_route_network_port_or_container(proxied: Proxied) -> None:
    if "postgresql" in proxied.service.settings.database_url:
        pytest.skip("the 100-instance cycle runs once, on SQLite; the tests above cover PostgreSQL's routes")
    proxied.put(demo_spec())
    proxied.put(tcp_spec())
    route_seconds: list[float] = []
    for n in range(100):
        body = proxied.start("demo-tcp" if n % 2 else "demo-web", f"team-{n}")
        if n % 10 == 0:  # reachable through the proxy, end to end, every tenth
            host = _host(body["connection"][0])
            route_seconds.append(wait_until(lambda h=host: _served(proxied, h), ROUTE_WAIT, interval=0.05))  # type: ignore[misc]
        r = proxied.client.delete(f"/api/v1/instances/{body['id']}")
        assert r.json()["state"] == "stopped"
    stats = proxied.service.instances.stats()
    assert (stats.routes, stats.ports_allocated) == (0, 0)
    assert engine_objects(proxied.service) == ([], [])
    assert proxied.client.get("/api/v1/routes/traefik", headers=auth(ROUTES_TOKEN)).json() == {}
    wait_until(lambda: proxied.traefik.routers() == [], ROUTE_WAIT)
    print(
        f"\nroute live after `running`: p50 {statistics.median(route_seconds) * 1000:.0f} ms, "
        f"max {max(route_seconds) * 1000:.0f} ms (Traefik polls every 1 s)"
    )
