"""The Docker backend against the real engine: what it creates, how it is hardened, and
that its failures arrive as our own errors."""

from __future__ import annotations

import dataclasses
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from instancer.backends.docker import DockerBackend
from instancer.domain.errors import ImageMissing, PortUnavailable
from instancer.domain.ports import Backend, ContainerPlan, LaunchPlan, PortBinding
from tests.conftest import DEMO_WEB_IMAGE, docker_host, free_port
from tests.integration.helpers import http_get, wait_until

pytestmark = pytest.mark.docker


@pytest.fixture
def backend(docker_ready: None) -> Iterator[DockerBackend]:
    b = DockerBackend(
        base_url=docker_host(), deployment="t" + secrets.token_hex(4), publish_address="127.0.0.1"
    )
    _typed: Backend = b  # the conformance check mypy makes
    yield b
    for instance_id in {o.instance_id for o in b.list_managed()}:
        b.stop(instance_id)
    assert b.list_managed() == []


def _plan(host_port: int, image: str = DEMO_WEB_IMAGE, flag: str = "flag{backend}") -> LaunchPlan:
    container = ContainerPlan(
        name="main",
        image=image,
        env={"FLAG": flag},
        command=None,
        memory_mib=64,
        cpus=0.25,
        pids=64,
        cap_add=(),
        ports=(PortBinding(8080, host_port),),
    )
    return LaunchPlan(
        secrets.token_hex(16), 1, "demo", "team-9", datetime(2030, 1, 1, tzinfo=UTC), (container,)
    )


def test_start_probe_stop(backend: DockerBackend) -> None:
    port = free_port()
    plan = _plan(port)
    launched = backend.start(plan)
    wait_until(lambda: backend.probe(launched), timeout=10, interval=0.02)
    assert "flag{backend}" in http_get(f"http://127.0.0.1:{port}/")
    kinds = sorted(o.kind for o in backend.list_managed() if o.instance_id == plan.instance_id)
    assert kinds == ["container", "network"]
    backend.stop(plan.instance_id)
    assert backend.list_managed() == []
    backend.stop(plan.instance_id)  # stopping what is gone is success
    backend.stop("0" * 32)


def test_containers_are_hardened_and_labelled(backend: DockerBackend) -> None:
    plan = _plan(free_port())
    backend.start(plan)
    (summary,) = backend.api.containers(filters={"label": f"instancer.instance={plan.instance_id}"})
    info = backend.api.inspect_container(summary["Id"])
    host = info["HostConfig"]
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] == 64 * 1024 * 1024 and host["MemorySwap"] == 64 * 1024 * 1024
    assert host["NanoCpus"] == 250_000_000 and host["PidsLimit"] == 64
    assert host["NetworkMode"] == f"inst-{plan.instance_id}-1" and not host["Binds"] and info["Mounts"] == []
    labels = info["Config"]["Labels"]
    assert labels["instancer.instance"] == plan.instance_id
    assert labels["instancer.owner"] == "team-9" and labels["instancer.challenge"] == "demo"
    assert labels["instancer.expires"] == "2030-01-01T00:00:00+00:00"
    (net,) = backend.api.networks(filters={"label": f"instancer.instance={plan.instance_id}"})
    assert net["Labels"]["instancer.deployment"] == labels["instancer.deployment"]


@pytest.mark.parametrize(("egress", "prefix"), [(False, "ib-"), (True, "ie-")])
def test_each_instance_bridge_is_named_for_the_firewalls_rules(
    backend: DockerBackend, egress: bool, prefix: str
) -> None:
    plan = dataclasses.replace(_plan(free_port()), egress=egress)
    backend.start(plan)
    (net,) = backend.api.networks(filters={"label": f"instancer.instance={plan.instance_id}"})
    bridge = backend.api.inspect_network(net["Id"])["Options"]["com.docker.network.bridge.name"]
    assert bridge.startswith(prefix) and len(bridge) == 15
    assert Path(f"/sys/class/net/{bridge}/bridge").is_dir()  # the Linux bridge carries that name


def test_missing_image_is_image_missing(backend: DockerBackend) -> None:
    with pytest.raises(ImageMissing):
        backend.start(_plan(free_port(), image="instancer/does-not-exist:latest"))


def test_a_port_taken_by_another_process_is_port_unavailable(backend: DockerBackend) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(PortUnavailable):
            backend.start(_plan(holder.getsockname()[1]))
