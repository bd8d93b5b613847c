"""Proxied exposures over a real database with the fake engine: which ports get a route or a
host port, slugs that are random and renewed by a revert (kept by a repair), targets recorded
with `running`, and routes gone as soon as an instance stops, fails or is lost."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from instancer.backends.fake import FakeBackend
from instancer.bootstrap import Service
from instancer.domain.errors import InstanceStartFailed
from instancer.domain.model import State
from instancer.domain.spec import Expose
from tests.conftest import FakeClock, demo_spec, tcp_spec

MakeService = Callable[..., Service]


@pytest.fixture
def svc(make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock) -> Service:
    service = make_service(
        backend=fake_backend, clock=clock, expose_default="proxy", ready_timeout_seconds=0.1
    )
    service.challenges.put(demo_spec("web"))
    service.challenges.put(tcp_spec("pwn"))
    service.challenges.put(
        {
            "id": "mixed",
            "image": "instancer/demo-web:latest",
            "ports": [
                {"port": 8080, "protocol": "http"},
                {"port": 9000, "expose": "port"},
                {"port": 9001, "expose": "tcp-tls"},
            ],
        }
    )
    return service


def test_the_default_proxy_exposure_routes_http_and_tcp_and_takes_no_host_port(svc: Service) -> None:
    web = svc.instances.start("web", "team-1").instance
    pwn = svc.instances.start("pwn", "team-2").instance
    assert [r.mode for r in web.routes] == [Expose.HTTP] and web.allocations == ()
    assert [r.mode for r in pwn.routes] == [Expose.TCP_TLS] and pwn.allocations == ()
    assert all(r.target is not None for r in (*web.routes, *pwn.routes))
    assert len({r.slug for r in (*web.routes, *pwn.routes)}) == 2
    assert {r.slug for r in svc.instances.routes()} == {web.routes[0].slug, pwn.routes[0].slug}


def test_expose_in_the_spec_wins_over_the_default(svc: Service) -> None:
    inst = svc.instances.start("mixed", "team-1").instance
    assert [(a.container_port, a.host_port > 0) for a in inst.allocations] == [(9000, True)]
    assert sorted((r.container_port, r.mode) for r in inst.routes) == [
        (8080, Expose.HTTP),
        (9001, Expose.TCP_TLS),
    ]


def test_the_port_default_gives_host_ports_and_no_routes(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend)
    service.challenges.put(demo_spec("web"))
    inst = service.instances.start("web", "team-1").instance
    assert inst.routes == () and len(inst.allocations) == 1


def test_a_revert_draws_new_slugs_and_a_repair_keeps_them(
    svc: Service, make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    inst = svc.instances.start("web", "team-1").instance
    reverted = svc.instances.revert(inst.id)
    assert reverted.routes[0].slug != inst.routes[0].slug and reverted.routes[0].target is not None
    assert [r.slug for r in svc.instances.routes()] == [reverted.routes[0].slug]

    # A second replica on the same database, repairing instead of marking lost.
    repairing = make_service(
        backend=fake_backend, clock=clock, expose_default="proxy", lost_policy="recreate"
    )
    fake_backend.running.pop(inst.id)  # its containers vanish behind our back
    assert repairing.instances.reconcile(lost_after_seconds=0)["recreated"] == 1
    repaired = svc.instances.get(inst.id)
    assert repaired.state is State.RUNNING and repaired.routes[0].slug == reverted.routes[0].slug


def test_routes_vanish_when_an_instance_stops_expires_or_fails(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    a = svc.instances.start("web", "team-1").instance
    b = svc.instances.start("web", "team-2").instance
    svc.instances.stop(a.id)
    assert [r.slug for r in svc.instances.routes()] == [b.routes[0].slug]
    clock.advance(4000)
    svc.instances.reap()
    assert svc.instances.routes() == [] and svc.instances.stats().routes == 0
    fake_backend.ready = False
    with pytest.raises(InstanceStartFailed):
        svc.instances.start("web", "team-3")
    assert svc.instances.stats().routes == 0


def test_a_starting_instance_has_no_live_route(svc: Service, fake_backend: FakeBackend) -> None:
    seen: list[int] = []
    fake_backend.before_start = lambda plan: seen.append(len(svc.instances.routes()))
    svc.instances.start("web", "team-1")
    assert seen == [0] and len(svc.instances.routes()) == 1
