"""The swarm backend itself, on real swarms: what it creates (hardened, labelled, pinned to one
node, host-mode ports, dnsrr, the flag file as a secret), a crashed container restarted in place
with the same connection info, and an engine that is not a manager refused by name."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from instancer.backends.swarm import RESTART_ATTEMPTS, SwarmBackend
from instancer.domain.errors import BackendUnavailable
from instancer.domain.ports import Backend, ContainerPlan, FileInject, LaunchPlan, PortBinding
from tests.conftest import DEMO_TCP_IMAGE, DEMO_WEB_IMAGE, free_port
from tests.integration.helpers import http_get, wait_until
from tests.swarm.harness import Swarm

pytestmark = pytest.mark.docker


@pytest.fixture
def backend(swarm3: Swarm) -> Iterator[SwarmBackend]:
    b = SwarmBackend(base_url=swarm3.manager.url, deployment="t" + secrets.token_hex(4))
    _typed: Backend = b  # the conformance check mypy makes
    yield b
    for instance_id in {o.instance_id for o in b.list_managed()}:
        b.stop(instance_id)
    assert b.list_managed() == []


def _plan(port: int) -> LaunchPlan:
    web = ContainerPlan(
        name="web",
        image=DEMO_WEB_IMAGE,
        env={"FLAG": "flag{swarm}"},
        command=None,
        memory_mib=64,
        cpus=0.25,
        pids=64,
        cap_add=("NET_BIND_SERVICE",),
        ports=(PortBinding(8080, port),),
        files=(FileInject("/flag.txt", b"flag{swarm}\n", 0o444),),
        exposed=(8080,),
    )
    db = ContainerPlan("db", DEMO_TCP_IMAGE, {"FLAG": "flag{db}"}, None, 64, 0.25, 64, (), ports=())
    when = datetime(2030, 1, 1, tzinfo=UTC)
    return LaunchPlan(secrets.token_hex(16), 1, "demo", "team-9", when, (web, db))


def test_services_are_hardened_labelled_and_pinned_to_one_node(swarm3: Swarm, backend: SwarmBackend) -> None:
    port = free_port()
    plan = _plan(port)
    launched = backend.start(plan)
    wait_until(lambda: backend.probe(launched), timeout=30, interval=0.05)
    assert "flag{swarm}" in http_get(f"http://{launched.public_host}:{port}/")
    api = swarm3.manager.api()
    services = {
        s["Spec"]["Labels"]["instancer.container"]: s
        for s in api.services(filters={"label": f"instancer.instance={plan.instance_id}"})
    }
    assert set(services) == {"web", "db"}
    pins = set()
    for name, service in services.items():
        spec = service["Spec"]
        task, container = spec["TaskTemplate"], spec["TaskTemplate"]["ContainerSpec"]
        assert container["CapabilityDrop"] == ["ALL"] and container["Hostname"] == name
        assert (
            spec["Labels"]["instancer.owner"] == "team-9" and spec["Labels"]["instancer.challenge"] == "demo"
        )
        assert spec["Labels"]["instancer.expires"] == "2030-01-01T00:00:00+00:00"
        limits, reserved = task["Resources"]["Limits"], task["Resources"]["Reservations"]
        assert limits == {"NanoCPUs": 250_000_000, "MemoryBytes": 64 * 2**20, "Pids": 64}
        assert reserved == {"NanoCPUs": 62_500_000, "MemoryBytes": 16 * 2**20}
        assert task["RestartPolicy"]["Condition"] == "on-failure"
        assert task["RestartPolicy"]["MaxAttempts"] == RESTART_ATTEMPTS
        assert spec["EndpointSpec"]["Mode"] == "dnsrr"
        pins |= {c for c in task["Placement"]["Constraints"] if c.startswith("node.id==")}
    assert len(pins) == 1  # both on one node
    web = services["web"]["Spec"]
    assert web["TaskTemplate"]["ContainerSpec"]["CapabilityAdd"] == ["NET_BIND_SERVICE"]
    assert web["EndpointSpec"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": port, "PublishMode": "host"}
    ]
    [secret] = web["TaskTemplate"]["ContainerSpec"]["Secrets"]
    assert secret["File"] == {"Name": "/flag.txt", "UID": "0", "GID": "0", "Mode": 0o444}
    (network,) = api.networks(filters={"label": f"instancer.instance={plan.instance_id}"})
    assert network["Driver"] == "overlay" and not network["Attachable"] and not network["Internal"]
    assert {o.kind for o in backend.list_managed()} == {"container", "network", "secret"}
    backend.stop(plan.instance_id)
    assert backend.list_managed() == []
    backend.stop(plan.instance_id)  # stopping what is gone is success


def test_a_crashed_container_comes_back_on_its_node_at_the_same_address(
    swarm3: Swarm, backend: SwarmBackend
) -> None:
    port = free_port()
    plan = _plan(port)
    launched = backend.start(plan)
    wait_until(lambda: backend.probe(launched), timeout=30, interval=0.05)
    (node,) = [n for n in swarm3.nodes if n.address == launched.probe_targets[0][0]]
    api = node.api()
    label = {"label": [f"instancer.instance={plan.instance_id}", "instancer.container=web"]}
    (first,) = api.containers(filters=label)
    api.kill(first["Id"])  # the challenge process dies
    wait_until(lambda: [c["Id"] for c in api.containers(filters=label)] not in ([], [first["Id"]]), 30)
    wait_until(lambda: backend.probe(launched), timeout=30, interval=0.05)
    assert "flag{swarm}" in http_get(f"http://{node.address}:{port}/")
    # Swarm reports the new task running a moment after it answers.
    wait_until(lambda: all(o.running for o in backend.list_managed() if o.kind == "container"), 30)


def test_an_engine_that_is_not_a_manager_is_named(swarm3: Swarm) -> None:
    worker = SwarmBackend(base_url=swarm3.nodes[1].url, deployment="t")
    with pytest.raises(BackendUnavailable, match="not a Swarm manager"):
        worker.ping()
    SwarmBackend(base_url=swarm3.manager.url, deployment="t").ping()
