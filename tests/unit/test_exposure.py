"""Exposure as pure logic: spec validation of `expose`, the connection info players see per
mode, Traefik's dynamic configuration, slugs, and the settings around them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from instancer.domain.errors import ValidationFailed
from instancer.domain.model import (
    SLUG_CHARS,
    Allocation,
    Instance,
    PublicAddresses,
    Route,
    State,
    endpoints,
    new_slug,
)
from instancer.domain.spec import Expose, Port, Protocol, parse_spec
from instancer.exposure.traefik import TraefikOptions, dynamic_config
from instancer.settings import Settings
from tests.conftest import ADMIN_TOKEN, FLAG_KEYS, PLATFORM_TOKEN

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _spec(port: dict) -> None:
    parse_spec({"id": "c", "image": "x", "ports": [port]})


@pytest.mark.parametrize(
    ("port", "ok"),
    [
        ({"port": 80, "expose": "http"}, True),  # implies protocol http
        ({"port": 80, "protocol": "http", "expose": "http"}, True),
        ({"port": 80, "protocol": "tcp", "expose": "http"}, False),
        ({"port": 80, "expose": "tcp-tls"}, True),
        ({"port": 80, "protocol": "http", "expose": "tcp-tls"}, False),
        ({"port": 80, "expose": "port"}, True),
        ({"port": 80, "expose": "udp"}, False),
    ],
)
def test_expose_is_validated_against_the_protocol(port: dict, ok: bool) -> None:
    if ok:
        _spec(port)
    else:
        with pytest.raises(ValidationFailed):
            _spec(port)


def test_expose_http_implies_protocol_http() -> None:
    assert Port.model_validate({"port": 80, "expose": "http"}).protocol is Protocol.HTTP


@pytest.mark.parametrize(
    ("port", "proxy", "mode"),
    [
        (Port(port=1), False, Expose.PORT),
        (Port(port=1), True, Expose.TCP_TLS),
        (Port(port=1, protocol=Protocol.HTTP), True, Expose.HTTP),
        (Port(port=1, protocol=Protocol.HTTP, expose=Expose.PORT), True, Expose.PORT),
        (Port(port=1, expose=Expose.TCP_TLS), False, Expose.TCP_TLS),
    ],
)
def test_the_mode_of_a_port(port: Port, proxy: bool, mode: Expose) -> None:
    assert port.mode(proxy) is mode


def _instance(**kw: object) -> Instance:
    return Instance(
        id="i" * 32, challenge_id="c", owner="o", state=State.RUNNING, generation=1,
        created_at=NOW, expires_at=NOW, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_connection_info_per_mode() -> None:
    public = PublicAddresses(host="ctf.example", domain="i.ctf.example", https_port=443, tcp_tls_port=1337)
    inst = _instance(
        allocations=(
            Allocation("a", 80, Protocol.HTTP, 31000),
            Allocation("b", 9000, Protocol.TCP, 31001),
        ),
        routes=(
            Route("slugweb", "c", 80, Expose.HTTP, "10.0.0.2:80"),
            Route("slugtcp", "d", 9000, Expose.TCP_TLS, "10.0.0.3:9000"),
        ),
    )
    web, nc, https, tls = endpoints(inst, public)
    assert (web.mode, web.url) == (Expose.PORT, "http://ctf.example:31000/")
    assert (nc.mode, nc.command) == (Expose.PORT, "nc ctf.example 31001")
    assert (https.mode, https.url, https.port) == (Expose.HTTP, "https://slugweb.i.ctf.example/", 443)
    assert tls.command == (
        "openssl s_client -quiet -verify_quiet -connect slugtcp.i.ctf.example:1337 "
        "-servername slugtcp.i.ctf.example"
    )
    assert tls.alternatives == (
        "ncat --ssl slugtcp.i.ctf.example 1337",
        "socat - OPENSSL:slugtcp.i.ctf.example:1337",
    )
    assert all(e.hint for e in (web, nc, https, tls))


def test_an_https_port_other_than_443_is_in_the_url() -> None:
    inst = _instance(routes=(Route("s", "c", 80, Expose.HTTP, "t:80"),))
    [e] = endpoints(inst, PublicAddresses(domain="d.test", https_port=8443))
    assert e.url == "https://s.d.test:8443/"


def test_slugs_are_random_dns_labels() -> None:
    slugs = {new_slug() for _ in range(1000)}
    assert len(slugs) == 1000
    assert all(len(s) == SLUG_CHARS and s[0].isalpha() and s.isalnum() and s.islower() for s in slugs)


def test_traefik_config_routes_http_by_host_and_tcp_by_sni() -> None:
    routes = [
        Route("aaa", "c", 80, Expose.HTTP, "10.0.0.2:80"),
        Route("bbb", "c", 9000, Expose.TCP_TLS, "10.0.0.2:9000"),
        Route("ccc", "c", 81, Expose.HTTP, None),  # not running yet: no route
    ]
    config = dynamic_config(routes, TraefikOptions(domain="d.test"))
    assert config["http"]["routers"] == {
        "i-aaa": {"rule": "Host(`aaa.d.test`)", "entryPoints": ["websecure"], "service": "i-aaa", "tls": {}}
    }
    assert config["http"]["services"]["i-aaa"] == {
        "loadBalancer": {"servers": [{"url": "http://10.0.0.2:80"}]}
    }
    assert config["tcp"]["routers"]["i-bbb"]["rule"] == "HostSNI(`bbb.d.test`)"
    assert config["tcp"]["services"]["i-bbb"] == {"loadBalancer": {"servers": [{"address": "10.0.0.2:9000"}]}}
    assert dynamic_config([], TraefikOptions()) == {}


def test_a_cert_resolver_asks_for_the_wildcard() -> None:
    config = dynamic_config(
        [Route("a", "c", 80, Expose.HTTP, "t:80")], TraefikOptions("d.test", cert_resolver="le")
    )
    assert config["http"]["routers"]["i-a"]["tls"] == {
        "certResolver": "le",
        "domains": [{"main": "*.d.test"}],
    }


def _settings(**kw: object) -> Settings:
    return Settings(platform_token=PLATFORM_TOKEN, admin_token=ADMIN_TOKEN, flag_keys=FLAG_KEYS, **kw)  # type: ignore[arg-type]


def test_the_routes_token_must_differ_and_be_long() -> None:
    assert _settings(routes_token="r" * 16).routes_token is not None
    for bad in ("short", PLATFORM_TOKEN, ADMIN_TOKEN):
        with pytest.raises(ValidationError):
            _settings(routes_token=bad)


@pytest.mark.parametrize("domain", ["UPPER.test", "-a.test", "a..test", "a_b.test", ""])
def test_the_domain_must_be_a_lower_case_dns_name(domain: str) -> None:
    with pytest.raises(ValidationError):
        _settings(domain=domain)
