"""Every real backend behind a real Traefik: an `http` instance at its subdomain and a `tcp-tls`
one by SNI, each serving its own flag; its routes go when it stops. (On a swarm, Traefik
reaches the node that runs the instance on a published host port.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LiveServer, demo_spec, tcp_spec
from tests.contract.conftest import Engine
from tests.integration.helpers import wait_until
from tests.integration.traefik import DOMAIN, ROUTES_TOKEN, https_get, proxy_ports, running_traefik, tls_read

pytestmark = pytest.mark.docker
ROUTE_WAIT = 15.0  # generous: Traefik polls every second


def test_http_and_tcp_tls_instances_answer_through_the_proxy(engine: Engine, tmp_path: Path) -> None:
    ports = proxy_ports()
    service = engine.service(
        expose_default="proxy",
        domain=DOMAIN,
        routes_token=ROUTES_TOKEN,
        proxy_https_port=ports[0],
        proxy_tcp_port=ports[1],
    )
    service.challenges.put(demo_spec())
    service.challenges.put(tcp_spec())
    with (
        LiveServer(service) as server,
        running_traefik(f"{server.url}/api/v1/routes/traefik", ports, tmp_path) as traefik,
    ):
        web = service.instances.start("demo-web", "team-1").instance
        tcp = service.instances.start("demo-tcp", "team-2").instance
        [web_route], [tcp_route] = web.routes, tcp.routes
        web_host, tcp_host = f"{web_route.slug}.{DOMAIN}", f"{tcp_route.slug}.{DOMAIN}"
        wait_until(lambda: https_get(traefik, web_host)[0] == 200, ROUTE_WAIT)
        assert https_get(traefik, web_host)[1].strip() == service.flags.reveal(web.id)
        wait_until(lambda: "flag" in tls_read(traefik, tcp_host, 1.0), ROUTE_WAIT)
        assert tls_read(traefik, tcp_host).strip() == service.flags.reveal(tcp.id)

        service.instances.stop(web.id)
        wait_until(lambda: https_get(traefik, web_host)[0] == 404, ROUTE_WAIT)
