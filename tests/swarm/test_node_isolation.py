"""Isolation on Swarm nodes (`instancer firewall apply --swarm-node`): an instance reaches no
other instance through a node's address and published port (on its own node, through
docker-proxy; on another node, routed out of docker_gwbridge), and no service of the nodes
(Swarm's own ports). Each probe is first shown to succeed without the rules (the control).

The rules go into each node's own network namespace, through an `iptables` that enters it:
the host's firewall is never touched."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from instancer.backends.firewall import IptablesFirewall, SwarmNode
from instancer.bootstrap import Service
from instancer.domain.model import Instance
from tests.conftest import DEMO_WEB_IMAGE
from tests.contract.conftest import SwarmEngine
from tests.integration.helpers import http_get
from tests.swarm.harness import Node, Swarm

pytestmark = pytest.mark.docker

WEB = {"id": "web", "image": DEMO_WEB_IMAGE, "ports": [{"port": 8080, "protocol": "http"}]}
PORTS = (30000, 60000)


def _iptables_in(node: Node, directory: Path) -> str:
    """An `iptables` (and `iptables-restore`) that act in the node's network namespace."""
    directory.mkdir()
    for tool in ("iptables", "iptables-restore"):
        script = directory / tool
        script.write_text(f'#!/bin/sh\nexec nsenter --net=/var/run/netns/{node.netns} {tool} "$@"\n')
        script.chmod(0o755)
    return str(directory / "iptables")


@contextmanager
def _rules_on(swarm: Swarm, tmp_path: Path, *, egress: bool) -> Iterator[list[IptablesFirewall]]:
    policy = SwarmNode(egress=egress, ports=PORTS)
    firewalls = [
        IptablesFirewall(iptables=_iptables_in(node, tmp_path / node.name), swarm=policy)
        for node in swarm.nodes
    ]
    try:
        for firewall in firewalls:
            firewall.apply()
            assert firewall.problems() == []
        yield firewalls
    finally:
        for firewall in firewalls:
            firewall.remove()


def _pairs(instances: list[Instance]) -> tuple[tuple[Instance, Instance], tuple[Instance, Instance]]:
    """(two instances on one node, two on different nodes)."""
    same = next((a, b) for a in instances for b in instances if a is not b and a.public_host == b.public_host)
    other = next((a, b) for a in instances for b in instances if a.public_host != b.public_host)
    return same, other


@pytest.mark.parametrize("egress", [False, True], ids=["no-egress-node", "egress-node"])
def test_instances_reach_no_other_instance_and_no_node_service(
    swarm3: Swarm,
    on_swarm: Callable[..., Service],
    make_service: Callable[..., Service],
    tmp_path: Path,
    egress: bool,
) -> None:
    """With or without egress on the node: egress opens the internet, nothing more."""
    service = on_swarm(swarm3, port_range_start=PORTS[0], port_range_end=PORTS[1])
    service.challenges.put(WEB)
    # Four instances on three nodes: two of them share a node.
    instances = [service.instances.start("web", f"team-{k}").instance for k in range(4)]
    engine = SwarmEngine(make_service, lambda **_: service.settings, swarm3)

    def fetch(source: Instance, host: str | None, port: int) -> str:
        probe = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port} 2>&1; true"
        return engine.exec(service, source.id, "main", "sh", "-c", probe)

    def leaks(source: Instance, target: Instance) -> bool:
        port = target.allocations[0].host_port
        return service.flags.reveal(target.id) in fetch(source, target.public_host, port)

    def reaches_swarm_port(source: Instance) -> bool:  # the node's own Swarm gossip port
        return "open" in engine.exec(
            service,
            source.id,
            "main",
            "sh",
            "-c",
            f"nc -w 2 {source.public_host} 7946 </dev/null && echo open; true",
        )

    same, other = _pairs(instances)
    # The control: without the rules, each of these gets through.
    assert leaks(*same) and leaks(*other) and reaches_swarm_port(same[0])
    with _rules_on(swarm3, tmp_path, egress=egress) as firewalls:
        assert not leaks(*same), "through its own node's address"
        assert not leaks(*other), "through another node's address"
        assert not reaches_swarm_port(same[0])
        dropped = sum(sum(f.dropped().values()) for f in firewalls)
        assert dropped >= 3
        # Players (here: the test host) still reach every instance on its node's port.
        for instance in instances:
            assert service.flags.reveal(instance.id) in _http(instance)
    assert leaks(*same)  # removed: as before


def _http(instance: Instance) -> str:
    return http_get(f"http://{instance.public_host}:{instance.allocations[0].host_port}/")
