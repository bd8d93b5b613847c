"""The isolation guarantees of instances (issue 5), on the real engine with the real rules:

1. an instance's containers reach no container of another instance (same or other challenge);
2. an instance reaches no service of the host, through its gateway or any host address;
3. outbound connections are dropped unless the challenge spec says `egress: true`; even
   then, private and link-local addresses (cloud metadata) stay out of reach;
4. the containers of one instance reach each other by name;
and players still reach instances on their published ports.

Every refusal has a control that shows the same connection succeeding where instancer's
rules do not apply (a container on a plain Docker network, the host itself, a player
outside), and the firewall's DROP counters show that it, not chance, decided. "Outside" is
a network namespace of this machine (`netlab.py`): no packet leaves the machine.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from instancer.backends.docker import DockerBackend
from instancer.backends.firewall import IptablesFirewall
from instancer.bootstrap import Service
from tests.conftest import DEMO_TCP_IMAGE, DEMO_WEB_IMAGE, docker_host, tcp_spec
from tests.integration.helpers import engine_objects, tcp_read
from tests.integration.netlab import HostListener, Outside, nc, outside, primary_address, reach_all, reaches

pytestmark = pytest.mark.docker
MakeService = Callable[..., Service]


@dataclass
class Box:
    """A container to run `nc` in, with its address and gateway on its one network."""

    id: str
    ip: str
    gateway: str
    host_port: int = 0


@pytest.fixture
def api(docker_ready: None) -> docker.APIClient:
    return docker.APIClient(base_url=docker_host(), version="auto")


@pytest.fixture
def lab() -> Iterator[Outside]:
    with outside() as made:
        yield made


@pytest.fixture
def control(api: docker.APIClient) -> Iterator[Box]:
    """A container on a plain Docker network, not an instance's: what containers reach
    when instancer's rules do not apply to them."""
    name = f"isoctl-{secrets.token_hex(4)}"
    network = api.create_network(name, driver="bridge")
    try:
        created = api.create_container(
            DEMO_TCP_IMAGE,
            name=name,
            environment={"FLAG": "control"},
            host_config=api.create_host_config(network_mode=name),
        )
        api.start(created["Id"])
        yield _box(api, created["Id"], name)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(name, force=True)
        api.remove_network(network["Id"])


@pytest.fixture
def service(docker_service: MakeService, isolation_rules: IptablesFirewall, lab: Outside) -> Service:
    """Instances publish on the lab link's host address, where the lab's "player" connects."""
    made = docker_service(per_owner_limit=10, publish_address=lab.host_ip)
    made.challenges.put(tcp_spec("iso-closed"))
    made.challenges.put(tcp_spec("iso-other"))
    made.challenges.put(tcp_spec("iso-open", egress=True))
    return made


def _box(api: docker.APIClient, container_id: str, network: str) -> Box:
    settings = api.inspect_container(container_id)["NetworkSettings"]["Networks"][network]
    return Box(container_id, settings["IPAddress"], settings["Gateway"])


@dataclass
class Started:
    flag: str
    boxes: dict[str, Box]  # by container name in the spec

    @property
    def main(self) -> Box:
        return self.boxes["main"]


def _start(service: Service, challenge: str, owner: str) -> Started:
    instance = service.instances.start(challenge, owner).instance
    backend = service.backend
    assert isinstance(backend, DockerBackend)
    containers, _ = engine_objects(service, instance.id)
    ports = {a.container: a.host_port for a in instance.allocations}
    boxes = {}
    for c in containers:
        name = c["Labels"]["instancer.container"]
        box = _box(backend.api, c["Id"], f"inst-{instance.id}-{instance.generation}")
        box.host_port = ports.get(name, 0)
        boxes[name] = box
    return Started(service.flags.reveal(instance.id), boxes)


@contextlib.contextmanager
def _drops(firewall: IptablesFirewall) -> Iterator[dict[str, int]]:
    """Packets each DROP rule dropped during the block, by `CHAIN rule`."""
    before = firewall.dropped()
    delta: dict[str, int] = {}
    yield delta
    for rule, packets in firewall.dropped().items():
        delta[rule.removeprefix("-A ")] = packets - before[rule]


def _tx_packets(interface: str) -> int:
    return int(Path(f"/sys/class/net/{interface}/statistics/tx_packets").read_text())


def _settled_tx_packets(interface: str) -> int:
    """The counter once the controls' last packets (their connections' closing FINs, forwarded
    just after `nc` exits) are out, so that any later packet would be the probe's."""
    last = _tx_packets(interface)
    for _ in range(20):
        time.sleep(0.3)
        if (now := _tx_packets(interface)) == last:
            return now
        last = now
    raise AssertionError(f"{interface} never went quiet")


# Rules (without `-A CHAIN`) whose counters the tests read.
CLOSED_FORWARD = "-i ib-+ -j DROP"
OPEN_TO_INSTANCES = "-i ie-+ -o ib-+ -j DROP"
CLOSED_TO_HOST = "-i ib-+ -j DROP"
OPEN_TO_HOST = "-i ie-+ -j DROP"
HTTP_GET = "GET / HTTP/1.0\\r\\n\\r\\n"


def test_an_instance_reaches_no_container_of_another_instance(
    service: Service, isolation_rules: IptablesFirewall, api: docker.APIClient, lab: Outside
) -> None:
    a = _start(service, "iso-closed", "team-a")
    b = _start(service, "iso-closed", "team-b")  # same challenge
    c = _start(service, "iso-other", "team-a")  # another challenge
    e = _start(service, "iso-open", "team-e")  # egress on
    # Controls: B answers the host at its address, and a player outside at its published port.
    assert b.flag in tcp_read(b.main.ip, 9000)
    assert b.flag in lab.run("busybox", "nc", "-w", "3", lab.host_ip, str(b.main.host_port)).stdout

    with _drops(isolation_rules) as dropped:
        reached = reach_all(
            api,
            [
                (a.main.id, b.main.ip, 9000, b.flag),
                (a.main.id, c.main.ip, 9000, c.flag),
                (a.main.id, lab.host_ip, b.main.host_port, b.flag),  # B's published port, via the host
                (e.main.id, a.main.ip, 9000, a.flag),
                (e.main.id, b.main.ip, 9000, b.flag),
                (e.main.id, lab.host_ip, b.main.host_port, b.flag),
            ],
        )
    assert reached == [False] * 6
    # Our rules decided: between bridges before Docker's own isolation had to; and at the
    # host for published ports, which Docker's isolation does not cover (its docker-proxy
    # relays a container's connection to a host address on to the other instance).
    assert dropped[f"{isolation_rules.forward_chain} {CLOSED_FORWARD}"] >= 2
    assert dropped[f"{isolation_rules.forward_chain} {OPEN_TO_INSTANCES}"] >= 2
    assert dropped[f"{isolation_rules.input_chain} {CLOSED_TO_HOST}"] >= 1
    assert dropped[f"{isolation_rules.input_chain} {OPEN_TO_HOST}"] >= 1


def test_an_instance_reaches_no_service_of_the_host(
    service: Service, isolation_rules: IptablesFirewall, api: docker.APIClient, lab: Outside, control: Box
) -> None:
    closed = _start(service, "iso-closed", "team-a").main
    opened = _start(service, "iso-open", "team-e").main
    # The host's primary address, the lab link's and another bridge's (the control's gateway).
    host_addresses = [primary_address(), lab.host_ip, control.gateway]
    with HostListener() as host:
        # Control: a container on a plain network reaches the host's service at each of them.
        targets = [(control.id, address, host.port, host.token) for address in host_addresses]
        assert reach_all(api, targets) == [True] * 3
        with _drops(isolation_rules) as dropped:
            reached = reach_all(
                api,
                [
                    (box.id, address, host.port, host.token)
                    for box in (closed, opened)
                    for address in (box.gateway, *host_addresses)
                ],
            )
    assert reached == [False] * 8
    assert dropped[f"{isolation_rules.input_chain} {CLOSED_TO_HOST}"] >= 4
    assert dropped[f"{isolation_rules.input_chain} {OPEN_TO_HOST}"] >= 4


def test_instances_have_no_ipv6_to_go_around_the_rules(service: Service, api: docker.APIClient) -> None:
    for challenge in ("iso-closed", "iso-open"):
        box = _start(service, challenge, "team-6").main
        run = api.exec_create(box.id, ["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"])
        assert api.exec_start(run["Id"]).decode().strip() == "1"


def test_outbound_connections_are_dropped_unless_the_spec_turns_egress_on(
    service: Service, isolation_rules: IptablesFirewall, api: docker.APIClient, lab: Outside, control: Box
) -> None:
    closed = _start(service, "iso-closed", "team-a").main
    opened = _start(service, "iso-open", "team-e").main
    assert reaches(api, control.id, lab.outside_ip, lab.port, lab.token)  # control

    sent_before = _settled_tx_packets(lab.host_if)
    with _drops(isolation_rules) as dropped:
        assert not reaches(api, closed.id, lab.outside_ip, lab.port, lab.token)
    assert dropped[f"{isolation_rules.forward_chain} {CLOSED_FORWARD}"] > 0
    assert _tx_packets(lab.host_if) == sent_before  # not one packet went out

    assert reaches(api, opened.id, lab.outside_ip, lab.port, lab.token)


def test_egress_on_instances_reach_no_private_or_link_local_address(
    service: Service, isolation_rules: IptablesFirewall, api: docker.APIClient, lab: Outside, control: Box
) -> None:
    opened = _start(service, "iso-open", "team-e").main
    targets = [lab.link_local_ip, lab.private_ip]  # as cloud metadata and a neighbour would be
    assert reach_all(api, [(control.id, t, lab.port, lab.token) for t in targets]) == [True, True]

    sent_before = _settled_tx_packets(lab.host_if)
    with _drops(isolation_rules) as dropped:
        assert reach_all(api, [(opened.id, t, lab.port, lab.token) for t in targets]) == [False, False]
    assert dropped[f"{isolation_rules.forward_chain} -d 169.254.0.0/16 -i ie-+ -j DROP"] > 0
    assert dropped[f"{isolation_rules.forward_chain} -d 10.0.0.0/8 -i ie-+ -j DROP"] > 0
    assert _tx_packets(lab.host_if) == sent_before


@pytest.mark.parametrize("egress", [False, True])
def test_the_containers_of_one_instance_reach_each_other_by_name(
    service: Service, isolation_rules: IptablesFirewall, api: docker.APIClient, egress: bool
) -> None:
    service.challenges.put(
        {
            "id": "iso-pair",
            "egress": egress,
            "containers": [
                {"name": "web", "image": DEMO_WEB_IMAGE, "ports": [{"port": 8080, "protocol": "http"}]},
                {"name": "svc", "image": DEMO_TCP_IMAGE},  # no published port: reached by name only
            ],
        }
    )
    pair = _start(service, "iso-pair", "team-p")
    assert pair.flag in nc(api, pair.boxes["web"].id, "svc", 9000)
    assert pair.flag in nc(api, pair.boxes["svc"].id, "web", 8080, send=HTTP_GET)


def test_players_reach_instances_on_their_published_ports(service: Service, lab: Outside) -> None:
    for challenge in ("iso-closed", "iso-open"):
        box = _start(service, challenge, "team-p")  # ready: the host's probe reached it
        played = lab.run("busybox", "nc", "-w", "3", lab.host_ip, str(box.main.host_port))
        assert box.flag in played.stdout
