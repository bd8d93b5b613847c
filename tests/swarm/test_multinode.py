"""The swarm backend on a real three-node swarm: instances spread over the nodes and each answers
at its own connection info (the node that runs it); placement constraints and a node's public
name are obeyed; a paused node keeps its instances and gets no new one; a drained node gets no
new one and its instances are reported lost, never moved by Swarm behind instancer's back; a
worker that dies has its instances marked lost, or recreated on the others, per the policy.

Sizes: `make test` runs these short, `make test-swarm` at full size (30 instances)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from instancer.bootstrap import Service
from instancer.domain.model import Instance, PublicAddresses, State, endpoints
from tests.conftest import LiveServer, demo_spec, tcp_spec
from tests.integration.helpers import http_get, tcp_read, wait_until
from tests.swarm.conftest import node_of, scale, spread
from tests.swarm.harness import Node, Swarm

pytestmark = pytest.mark.docker
OnSwarm = Callable[..., Service]
# Fast repair loops for the tests: reconcile every second, lost after 2 s short.
REPAIRS = {"reaper_interval_seconds": 0.5, "reconcile_interval_seconds": 1, "lost_after_seconds": 2}
# Generous: Swarm notices a dead node after a few heartbeats (2 s each here), then the
# reconcile needs `lost_after_seconds` more. Pass/fail never hinges on how long it took.
LOSS_WAIT = 90.0


def _start(service: Service, owners: list[str], challenge: str = "demo-tcp") -> list[Instance]:
    with ThreadPoolExecutor(6) as pool:
        return list(pool.map(lambda owner: service.instances.start(challenge, owner).instance, owners))


def _answers(service: Service, instance: Instance) -> bool:
    """Whether the instance serves its own flag at the connection info a player gets."""
    [shown] = endpoints(service.instances.get(instance.id), PublicAddresses(host="unused.invalid"))
    flag = service.flags.reveal(instance.id)
    if shown.url is not None:
        return flag in http_get(shown.url)
    return flag in tcp_read(shown.host, shown.port)


@contextmanager
def _availability(swarm: Swarm, node: Node, availability: str) -> Iterator[None]:
    swarm.node_update(node, availability=availability)
    try:
        yield
    finally:
        swarm.node_update(node, availability="active")


def _node_named(swarm: Swarm, name: str) -> Node:
    (node,) = [n for n in swarm.nodes if n.name == name]
    return node


def test_instances_spread_over_the_nodes_and_each_answers_at_its_connection_info(
    swarm3: Swarm, on_swarm: OnSwarm
) -> None:
    count = scale(9, 30)
    service = on_swarm(swarm3, capacity=100)
    service.challenges.put(tcp_spec())
    service.challenges.put(demo_spec())
    owners = [f"team-{n}" for n in range(count)]
    instances = _start(service, owners[: count // 2], "demo-web") + _start(service, owners[count // 2 :])
    per_node = spread(swarm3, [i.public_host for i in instances])
    print(f"\n{count} instances over the nodes: {dict(sorted(per_node.items()))}")
    assert sum(per_node.values()) == count and set(per_node) == {n.name for n in swarm3.nodes}
    assert max(per_node.values()) <= count // 2
    assert all(_answers(service, i) for i in instances)


def test_placement_constraints_and_a_nodes_public_name_are_obeyed(swarm3: Swarm, on_swarm: OnSwarm) -> None:
    pwn, other = swarm3.nodes[2], swarm3.nodes[1]
    swarm3.node_update(pwn, labels={"instancer.pool": "pwn", "instancer.public-host": "pwn.ctf.test"})
    swarm3.node_update(other, labels={"instancer.pool": "pwn"})
    try:
        service = on_swarm(swarm3)
        constraints = ["node.labels.instancer.pool==pwn", f"node.hostname!={other.name}"]
        service.challenges.put(tcp_spec(placement={"constraints": constraints}))
        instances = _start(service, ["a", "b", "c"])
        assert {i.public_host for i in instances} == {"pwn.ctf.test"}
        [shown] = endpoints(instances[0], PublicAddresses(host="unused.invalid"))
        assert shown.command == f"nc pwn.ctf.test {instances[0].allocations[0].host_port}"
        # The name is for players; the service probes and routes to the node's address.
        assert all(
            flag in tcp_read(pwn.address, i.allocations[0].host_port)
            for i, flag in _flags(service, instances)
        )
    finally:
        swarm3.node_update(pwn, labels={"instancer.pool": None, "instancer.public-host": None})
        swarm3.node_update(other, labels={"instancer.pool": None})


def _flags(service: Service, instances: list[Instance]) -> list[tuple[Instance, str]]:
    return [(i, service.flags.reveal(i.id)) for i in instances]


def test_a_paused_node_keeps_its_instances_and_gets_no_new_one(swarm3: Swarm, on_swarm: OnSwarm) -> None:
    service = on_swarm(swarm3, **REPAIRS)
    service.challenges.put(tcp_spec())
    with LiveServer(service):  # the reaper and its reconcile run
        before = _start(service, [f"before-{n}" for n in range(3)])
        paused = _node_named(swarm3, node_of(swarm3, before[0].public_host))
        with _availability(swarm3, paused, "pause"):
            after = _start(service, [f"after-{n}" for n in range(scale(4, 9))])
            assert paused.name not in spread(swarm3, [i.public_host for i in after])
            service.instances.reconcile(lost_after_seconds=0)  # nothing on the paused node is lost
            assert all(service.instances.get(i.id).state is State.RUNNING for i in before)
            assert all(_answers(service, i) for i in before + after)


def test_a_drained_node_gets_nothing_new_and_its_instances_are_lost_not_moved(
    swarm3: Swarm, on_swarm: OnSwarm
) -> None:
    service = on_swarm(swarm3, **REPAIRS)
    service.challenges.put(tcp_spec())
    with LiveServer(service):
        before = _start(service, [f"before-{n}" for n in range(3)])
        drained = _node_named(swarm3, node_of(swarm3, before[0].public_host))
        victims = [i for i in before if node_of(swarm3, i.public_host) == drained.name]
        with _availability(swarm3, drained, "drain"):
            after = _start(service, [f"after-{n}" for n in range(scale(3, 6))])
            assert drained.name not in spread(swarm3, [i.public_host for i in after])
            # Swarm stops the tasks of a drained node; pinned, their replacements cannot go elsewhere.
            wait_until(lambda: _stopped_in_place(swarm3, victims, drained), LOSS_WAIT)
            for victim in victims:
                wait_until(lambda v=victim: service.instances.get(v.id).state is State.LOST, LOSS_WAIT)  # type: ignore[misc]
                assert f"its node {drained.name} is drained" in (
                    service.instances.get(victim.id).reason or ""
                )
        survivors = [i for i in before + after if i not in victims]
        assert all(service.instances.get(i.id).state is State.RUNNING for i in survivors)
        assert all(_answers(service, i) for i in survivors)


def _stopped_in_place(swarm: Swarm, instances: list[Instance], node: Node) -> bool:
    """Whether Swarm has stopped these instances' tasks on `node` and left their replacements
    unplaced (or instancer has removed them since); fails at once if one ran anywhere else."""
    api = swarm.manager.api()
    settled = 0
    for instance in instances:
        tasks = api.tasks(filters={"label": f"instancer.instance={instance.id}"})
        moved = [t for t in tasks if t.get("NodeID") not in (None, swarm.node_ids[node.name])]
        assert moved == [], f"Swarm moved a task of {instance.id}: {moved}"
        settled += not tasks or any(t["Status"]["State"] == "pending" for t in tasks)
    return settled == len(instances)


@pytest.mark.parametrize("policy", ["mark", "recreate"])
def test_a_worker_that_dies_has_its_instances_lost_or_recreated_on_the_others(
    doomed_swarm: Swarm, on_swarm: OnSwarm, policy: str
) -> None:
    service = on_swarm(doomed_swarm, lost_policy=policy, capacity=100, **REPAIRS)
    service.challenges.put(tcp_spec())
    with LiveServer(service):
        instances = _start(service, [f"team-{n}" for n in range(scale(6, 15))])
        dead = doomed_swarm.nodes[2]  # a worker
        victims = [i for i in instances if node_of(doomed_swarm, i.public_host) == dead.name]
        assert victims, "the spread put nothing on the worker to kill"
        doomed_swarm.kill(dead)

        def repaired(i: Instance) -> bool:
            now = service.instances.get(i.id)
            return (
                now.state is State.LOST
                if policy == "mark"
                else (now.generation, now.state) == (2, State.RUNNING)
            )

        for victim in victims:
            wait_until(lambda v=victim: repaired(v), LOSS_WAIT)  # type: ignore[misc]
            now = service.instances.get(victim.id)
            if policy == "mark":
                assert f"its node {dead.name} is down" in (now.reason or ""), now.reason
            else:
                assert node_of(doomed_swarm, now.public_host) != dead.name and _answers(service, now)
        survivors = [i for i in instances if i not in victims]
        assert all(service.instances.get(i.id).state is State.RUNNING for i in survivors)
        assert all(_answers(service, i) for i in survivors)
