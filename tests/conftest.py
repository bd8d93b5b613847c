"""Shared fixtures: databases (SQLite always, PostgreSQL when configured), settings, a fake
clock, the service wired with the fake or the real Docker backend, and a live HTTP server.

Environment:
- INSTANCER_TEST_POSTGRES_URL: also run every database test on this PostgreSQL database
  (its tables are dropped and re-created per test).
- INSTANCER_TEST_REQUIRE=postgres,docker,swarm: fail instead of skip when one is missing (CI
  sets it). `swarm` needs root and `dockerd`: the tests build swarms of their own engines in
  network namespaces (tests/swarm/harness.py), never touching the host's engine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from sqlalchemy import create_engine, text

from instancer import bootstrap
from instancer.backends.docker import DockerBackend
from instancer.backends.fake import FakeBackend
from instancer.backends.firewall import IptablesFirewall
from instancer.domain.ports import Backend
from instancer.settings import Settings

PLATFORM_TOKEN = "platform-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789abc"
FLAG_KEYS = "k1:" + "A" * 43 + "="  # a fixed 32-byte test key (all zero bits)
DEMO_WEB_IMAGE = "instancer/demo-web:latest"
DEMO_TCP_IMAGE = "instancer/demo-tcp:latest"
DEMO_DUO_IMAGE = "instancer/demo-duo:latest"
_REQUIRED = set(filter(None, os.environ.get("INSTANCER_TEST_REQUIRE", "").split(",")))


def _missing(what: str, reason: str) -> None:
    if what in _REQUIRED:
        pytest.fail(f"{reason} (INSTANCER_TEST_REQUIRE includes {what})")
    pytest.skip(reason)


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/instancer.db"
        return
    url = os.environ.get("INSTANCER_TEST_POSTGRES_URL")
    if not url:
        _missing("postgres", "INSTANCER_TEST_POSTGRES_URL is not set; PostgreSQL runs are skipped")
    assert url
    _reset_postgres(url)
    yield url


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def make_settings(db_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "platform_token": PLATFORM_TOKEN,
            "admin_token": ADMIN_TOKEN,
            "flag_keys": FLAG_KEYS,
            "database_url": db_url,
            "public_host": "127.0.0.1",
            "publish_address": "127.0.0.1",
            "cooldown_seconds": 0,
            "extension_interval_seconds": 0,
            "deployment": "t" + secrets.token_hex(4),
            # The host firewall is shared by every test on this machine: the isolation tests
            # put it in force themselves (the `isolation_rules` fixture), no service does.
            "isolation": "off",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def make_service(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., bootstrap.Service]]:
    built: list[bootstrap.Service] = []

    def make(*, backend: Backend | None = None, clock: Any = None, **overrides: Any) -> bootstrap.Service:
        service = bootstrap.build(make_settings(**overrides), backend=backend, clock=clock)
        bootstrap.upgrade_database(service)
        built.append(service)
        return service

    yield make
    for service in built:
        service.pool_filler.stop()
        service.reaper.stop()
        service.engine.dispose()


# --- Docker -----------------------------------------------------------------------------


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


@pytest.fixture(scope="session")
def docker_ready() -> None:
    """Skip (or fail, in CI) when no engine or no demo image is there."""
    probe = DockerBackend(base_url=docker_host(), deployment="probe")
    try:
        probe.ping()
        for image in (DEMO_WEB_IMAGE, DEMO_TCP_IMAGE, DEMO_DUO_IMAGE):
            probe.api.inspect_image(image)
    except Exception as exc:
        _missing(
            "docker",
            f"no Docker engine with the demo images ({exc}); run scripts/docker-up and scripts/build-images",
        )


@pytest.fixture
def docker_service(
    docker_ready: None, make_service: Callable[..., bootstrap.Service]
) -> Iterator[Callable[..., bootstrap.Service]]:
    """Services on the real engine; whatever their deployment label holds is removed afterwards,
    and the test fails if anything was left behind."""
    made: list[bootstrap.Service] = []

    def make(**overrides: Any) -> bootstrap.Service:
        service = make_service(**overrides)
        made.append(service)
        return service

    yield make
    for service in made:
        service.pool_filler.stop()
        service.reaper.stop()
        backend = service.backend
        assert isinstance(backend, DockerBackend)
        leftovers = backend.list_managed()
        for instance_id in {o.instance_id for o in leftovers}:
            backend.stop(instance_id)


@pytest.fixture(scope="session")
def firewall_restored(docker_ready: None) -> Iterator[IptablesFirewall]:
    """The host's real isolation rules, as they were before the session once it ends: removed
    if they were not in force then (a service under test may apply them)."""
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("iptables", "ip", "nsenter")):
        _missing("docker", "the isolation tests need root, iptables, ip and nsenter")
    firewall = IptablesFirewall()
    in_force_before = firewall.problems() == []
    yield firewall
    if not in_force_before:
        firewall.remove()


@pytest.fixture(scope="session")
def isolation_rules(firewall_restored: IptablesFirewall) -> IptablesFirewall:
    """The real isolation rules, in force for the rest of the session."""
    firewall_restored.apply()
    assert firewall_restored.problems() == []
    return firewall_restored


# --- Swarm ------------------------------------------------------------------------------


def swarm_of(request: pytest.FixtureRequest, size: int, subnet: int) -> Any:
    """A swarm of `size` engines of its own (tests/swarm/harness.py) with the demo images on
    every node, removed when the requesting fixture's scope ends. Skips (fails in CI) where
    swarms cannot be built here."""
    from tests.swarm.harness import Swarm  # noqa: PLC0415 - only where a swarm is wanted

    request.getfixturevalue("docker_ready")  # the demo images come from the host's engine
    missing = [tool for tool in ("dockerd", "nsenter", "unshare", "ip") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        _missing("swarm", f"test swarms need root and {', '.join(missing) or 'dockerd'}")
    swarm = Swarm(size=size, subnet=subnet)
    request.addfinalizer(swarm.down)
    swarm.up()
    swarm.load_image(DEMO_WEB_IMAGE, source=docker_host())
    swarm.load_image(DEMO_TCP_IMAGE, source=docker_host())
    return swarm


@pytest.fixture(scope="session")
def swarm1(request: pytest.FixtureRequest) -> Any:
    """A one-node swarm (the contract suite's), on 10.231.1.0/24."""
    return swarm_of(request, 1, 1)


# --- Live HTTP server -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, service: bootstrap.Service, *, run_reaper: bool = True) -> None:
        self.service = service
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            bootstrap.app_of(service, run_reaper=run_reaper),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            limit_concurrency=1000,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def auth(token: str = PLATFORM_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def demo_spec(challenge_id: str = "demo-web", **extra: Any) -> dict[str, Any]:
    return {
        "id": challenge_id,
        "image": DEMO_WEB_IMAGE,
        "ports": [{"port": 8080, "protocol": "http"}],
        **extra,
    }


def tcp_spec(challenge_id: str = "demo-tcp", **extra: Any) -> dict[str, Any]:
    return {
        "id": challenge_id,
        "image": DEMO_TCP_IMAGE,
        "ports": [{"port": 9000, "protocol": "tcp"}],
        **extra,
    }
