"""The use cases with an engine shaped like a swarm (the fake, told so): proxied ports hold a host
port too, but players see only the route; the host players connect to is the one the engine
names (the node's) for the instance, and an engine-given reason shows in a loss."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from instancer.backends.fake import FakeBackend
from instancer.bootstrap import Service
from instancer.domain.model import PublicAddresses, State, endpoints
from instancer.domain.spec import Expose
from tests.conftest import FakeClock, demo_spec, tcp_spec

MakeService = Callable[..., Service]
PUBLIC = PublicAddresses(host="ctf.example.org")


@pytest.fixture
def swarmish() -> FakeBackend:
    return FakeBackend(proxied_ports_need_host_ports=True, public_host="node2.example.org")


@pytest.fixture
def svc(make_service: MakeService, swarmish: FakeBackend, clock: FakeClock) -> Service:
    service = make_service(backend=swarmish, clock=clock)
    service.challenges.put(
        {
            "id": "mixed",
            "image": "instancer/demo-web:latest",
            "ports": [{"port": 8080, "expose": "http"}, {"port": 9000, "expose": "port"}],
            "placement": {"constraints": ["node.labels.instancer.pool==web"]},
        }
    )
    service.challenges.put(tcp_spec("pwn", placement={"constraints": ["node.role==worker"]}))
    return service


def test_proxied_ports_hold_host_ports_that_players_never_see(svc: Service, swarmish: FakeBackend) -> None:
    inst = svc.instances.start("mixed", "team-1").instance
    assert sorted(a.container_port for a in inst.allocations) == [8080, 9000]
    [plan] = swarmish.running.values()
    assert sorted(b.container_port for b in plan.containers[0].ports) == [8080, 9000]
    shown = endpoints(inst, PUBLIC)
    assert [(e.container_port, e.mode) for e in shown] == [(8080, Expose.HTTP), (9000, Expose.PORT)]
    [routed] = [e for e in shown if e.mode is Expose.HTTP]
    assert routed.url is not None and str(inst.allocations[0].host_port) not in routed.url


def test_players_connect_to_the_host_the_engine_named(svc: Service, swarmish: FakeBackend) -> None:
    inst = svc.instances.start("pwn", "team-1").instance
    assert inst.public_host == "node2.example.org"
    [shown] = endpoints(svc.instances.get(inst.id), PUBLIC)
    assert shown.command == f"nc node2.example.org {inst.allocations[0].host_port}"
    swarmish.public_host = "node3.example.org"  # a revert may land on another node
    reverted = svc.instances.revert(inst.id)
    assert endpoints(reverted, PUBLIC)[0].host == "node3.example.org"


def test_without_a_host_from_the_engine_the_public_host_applies(make_service: MakeService) -> None:
    service = make_service(backend=FakeBackend())
    service.challenges.put(demo_spec("web"))
    inst = service.instances.start("web", "team-1").instance
    assert inst.public_host is None and endpoints(inst, PUBLIC)[0].host == "ctf.example.org"


def test_the_placement_constraints_reach_the_engine(svc: Service, swarmish: FakeBackend) -> None:
    inst = svc.instances.start("mixed", "team-1").instance
    assert swarmish.running[inst.id].constraints == ("node.labels.instancer.pool==web",)


def test_a_loss_says_what_the_engine_said(svc: Service, swarmish: FakeBackend, clock: FakeClock) -> None:
    inst = svc.instances.start("pwn", "team-1").instance
    swarmish.stalled[inst.id] = "its node node2 is down"
    svc.instances.reconcile(lost_after_seconds=0)
    lost = svc.instances.get(inst.id)
    assert lost.state is State.LOST
    assert lost.reason == "LOST: 0 of 1 container(s) running at the last reconcile (its node node2 is down)"
