"""Traefik's dynamic configuration for the proxied ports of running instances.

Traefik's HTTP provider polls `GET /api/v1/routes/traefik` and applies what it gets: one
HTTP router per `http` route (by Host name) and one TCP router per `tcp-tls` route (by TLS
SNI, TLS terminated by Traefik, raw TCP to the container). The service holds the state;
Traefik holds none, so any replica answers and a restarted Traefik is complete at its first
poll. Pure: a function of the routes, no I/O. (Why this provider: docs/decisions/0008.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..domain.model import Route
from ..domain.spec import Expose


@dataclass(frozen=True)
class TraefikOptions:
    domain: str = "instances.localhost"
    http_entrypoint: str = "websecure"
    tcp_entrypoint: str = "tcptls"
    #: a certificate resolver (ACME); None: Traefik's default certificate
    cert_resolver: str | None = None


def dynamic_config(routes: Sequence[Route], options: TraefikOptions) -> dict[str, Any]:
    """The whole dynamic configuration. Routes without a target yet are left out."""
    http_routers: dict[str, Any] = {}
    http_services: dict[str, Any] = {}
    tcp_routers: dict[str, Any] = {}
    tcp_services: dict[str, Any] = {}
    tls = _tls(options)
    for route in routes:
        if route.target is None:
            continue
        host = f"{route.slug}.{options.domain}"
        name = f"i-{route.slug}"
        if route.mode is Expose.HTTP:
            http_routers[name] = _router(f"Host(`{host}`)", options.http_entrypoint, name, tls)
            http_services[name] = {"loadBalancer": {"servers": [{"url": f"http://{route.target}"}]}}
        elif route.mode is Expose.TCP_TLS:
            tcp_routers[name] = _router(f"HostSNI(`{host}`)", options.tcp_entrypoint, name, tls)
            tcp_services[name] = {"loadBalancer": {"servers": [{"address": route.target}]}}
    config: dict[str, Any] = {}
    # Traefik rejects an empty `routers` map in some versions: leave out what is empty.
    if http_routers:
        config["http"] = {"routers": http_routers, "services": http_services}
    if tcp_routers:
        config["tcp"] = {"routers": tcp_routers, "services": tcp_services}
    return config


def _tls(options: TraefikOptions) -> dict[str, Any]:
    if options.cert_resolver is None:
        return {}
    wildcard = {"main": f"*.{options.domain}"}
    return {"certResolver": options.cert_resolver, "domains": [wildcard]}


def _router(rule: str, entrypoint: str, service: str, tls: dict[str, Any]) -> dict[str, Any]:
    return {"rule": rule, "entryPoints": [entrypoint], "service": service, "tls": tls}
