"""A small network lab for the isolation tests, on this machine only.

- `outside()`: a network namespace joined to the host by a veth pair, standing for "the
  internet" (an address from TEST-NET-3, 203.0.113.0/24) and, through /32 routes into it,
  for a link-local address (as cloud metadata, 169.254.169.254, is) and a private one. A
  listener in it answers every connection with a token.
- `HostListener`: a service of the host itself, on 0.0.0.0, answering a token.
- `reaches`: busybox `nc` inside a container; true when the token came back.

Traffic only ever goes to addresses of this machine or of the namespace the lab creates.
Addresses are checked first to be held by nothing here (they would leave by the default
route), so the lab's routes hide nobody's traffic. Never TEST-NET-1: on the project's
machines 192.0.2.0/24 is the real uplink.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SERVER = r"""
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[1])))
server.listen(64)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(sys.argv[2].encode() + b"\n")
    conn.close()
"""
LAB_PORT = 7007
# Long enough for a SYN on an idle machine; a dropped one fails after this many seconds.
NC_TIMEOUT_SECONDS = 3


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def _default_dev() -> str:
    return ip("-4", "route", "show", "default").split(" dev ")[1].split()[0]


def primary_address() -> str:
    """The host's address on its default route's interface (read, no packet sent)."""
    return ip("-4", "-o", "addr", "show", "dev", _default_dev()).split(" inet ")[1].split("/")[0]


def _unheld(address: str) -> bool:
    """True when nothing on this machine holds or routes `address` but the default route."""
    route = ip("-4", "-o", "route", "get", address)
    return not route.startswith("local") and " via " in route and f" dev {_default_dev()} " in route


def _pick(candidates: Iterable[str]) -> str:
    for address in candidates:
        if _unheld(address):
            return address
    raise AssertionError("no free lab address found")


def _random_in(network: str, tries: int = 50) -> Iterator[str]:
    net = ipaddress.ip_network(network)
    for _ in range(tries):
        yield str(net.network_address + random.randrange(1, net.num_addresses - 1))


def _free_link() -> tuple[str, str]:
    """(host, outside) ends of a /30 in TEST-NET-3 that nothing here uses."""
    for k in random.sample(range(64), 64):
        host, far = f"203.0.113.{4 * k + 1}", f"203.0.113.{4 * k + 2}"
        if _unheld(host) and _unheld(far):
            return host, far
    raise AssertionError("no free /30 in 203.0.113.0/24")


@dataclass
class Outside:
    """The lab namespace. `host_ip` is the host's end of the link (an address of the host)."""

    name: str
    host_if: str
    host_ip: str
    outside_ip: str
    link_local_ip: str
    private_ip: str
    token: str
    port: int = LAB_PORT

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (nsenter: `ip netns exec` remounts /sys)."""
        return subprocess.run(
            ["nsenter", f"--net=/var/run/netns/{self.name}", *command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


@contextlib.contextmanager
def outside() -> Iterator[Outside]:
    suffix = secrets.token_hex(4)
    host_ip, outside_ip = _free_link()
    lab = Outside(
        name=f"isolab-{suffix}",
        host_if=f"il{suffix}h",
        host_ip=host_ip,
        outside_ip=outside_ip,
        link_local_ip=_pick(a for a in _random_in("169.254.0.0/16") if a != "169.254.169.254"),
        private_ip=_pick(_random_in("10.255.0.0/16")),
        token="outside-" + secrets.token_hex(8),
    )
    server: subprocess.Popen[str] | None = None
    try:
        _wire(lab, f"il{suffix}n")
        enter = ["nsenter", f"--net=/var/run/netns/{lab.name}"]
        server = subprocess.Popen(
            [*enter, sys.executable, "-c", _SERVER, str(lab.port), lab.token],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield lab
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", lab.host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", lab.name], capture_output=True, check=False)


def _wire(lab: Outside, far_if: str) -> None:
    ip("netns", "add", lab.name)
    ip("link", "add", lab.host_if, "type", "veth", "peer", "name", far_if, "netns", lab.name)
    # Only forwarded IPv4 may leave by the link, so its packet counter tells whether anything
    # got out: no IPv6 (router solicitations, MLD) and no ARP (a permanent neighbour entry).
    Path(f"/proc/sys/net/ipv6/conf/{lab.host_if}/disable_ipv6").write_text("1")
    ip("addr", "add", f"{lab.host_ip}/30", "dev", lab.host_if)
    ip("link", "set", lab.host_if, "up")
    far_mac = ip("-n", lab.name, "-o", "link", "show", far_if).split("link/ether ")[1].split()[0]
    ip("neigh", "replace", lab.outside_ip, "lladdr", far_mac, "dev", lab.host_if, "nud", "permanent")
    ip("-n", lab.name, "addr", "add", f"{lab.outside_ip}/30", "dev", far_if)
    for address in (lab.link_local_ip, lab.private_ip):
        ip("-n", lab.name, "addr", "add", f"{address}/32", "dev", "lo")
        ip("route", "add", f"{address}/32", "via", lab.outside_ip, "dev", lab.host_if)
    ip("-n", lab.name, "link", "set", "lo", "up")
    ip("-n", lab.name, "link", "set", far_if, "up")


class HostListener:
    """A service of the host on 0.0.0.0:<free port> that answers each connection with a token."""

    def __init__(self) -> None:
        self.token = "host-" + secrets.token_hex(8)
        self._socket = socket.socket()
        self._socket.bind(("0.0.0.0", 0))  # every host address: that is the point
        self._socket.listen(64)
        self.port = int(self._socket.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # closed by __exit__
            while True:
                conn, _ = self._socket.accept()
                with conn:
                    conn.sendall(self.token.encode() + b"\n")

    def __enter__(self) -> HostListener:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._thread.join(5)


def nc(api: Any, container_id: str, host: str, port: int, send: str = "") -> str:
    """What busybox `nc` inside the container printed (reply, or its error)."""
    script = f'printf "$0" | nc -w {NC_TIMEOUT_SECONDS} "$1" "$2" 2>&1'
    run = api.exec_create(container_id, ["sh", "-c", script, send, host, str(port)])
    return str(api.exec_start(run["Id"]).decode())


def reaches(api: Any, container_id: str, host: str, port: int, token: str) -> bool:
    return token in nc(api, container_id, host, port)


def reach_all(api: Any, probes: list[tuple[str, str, int, str]]) -> list[bool]:
    """`reaches` for each (container, host, port, token), in parallel: a dropped SYN costs
    NC_TIMEOUT_SECONDS each, and the tests make many."""
    with ThreadPoolExecutor(len(probes)) as pool:
        return list(pool.map(lambda p: reaches(api, *p), probes))
