"""The host firewall that isolates instances, kept in force by running `iptables`.

A static rule set (docs/decisions/0007-instance-isolation.md): instance bridges are named
with a prefix (`bridges.py`) that the rules match with interface wildcards, so no rule
changes per instance. Two chains of our own, each jumped to first:

- `<prefix>-INPUT`, from `INPUT`: no new connection from an instance bridge to any
  address of the host (gateways, the primary address, other bridges' addresses);
- `<prefix>-FORWARD`, from `DOCKER-USER` (which Docker evaluates before its own
  forwarding rules): traffic within one bridge passes; anything routed out of a
  no-egress bridge is dropped; an egress bridge may not reach other instances or private,
  loopback, link-local, multicast or reserved addresses.

On a Swarm node (`SwarmNode`), an instance's containers leave their overlay network through
the node's one `docker_gwbridge`, shared by every instance there; the same two chains then
also drop new connections from it to the node itself (its services, and docker-proxy in
front of other instances' published ports), to another container through it, to the
published port range and Swarm's own ports on any address (other instances and nodes), to
private ranges and the addresses the operator names (the nodes' public ones); and everything
else unless the node allows egress. Egress is the node's policy there, not
each instance's: the shared bridge tells no instance from another.

Replies (ESTABLISHED, RELATED) pass first: the host's readiness probe, players on
published ports and, later, Traefik connect *to* instances. The chains only ever
`DROP` or `RETURN`, so Docker's own rules still decide everything else.

Errors of `iptables` (missing, no privilege, a flavour, nft or legacy, other than the
engine's) become `IsolationUnavailable` here. This module touches no chain but its own two
and the jumps into them.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from ..domain.errors import IsolationUnavailable
from .bridges import EGRESS, NO_EGRESS

# Destinations an egress-on instance never reaches (RFC 6890's non-global IPv4 blocks that
# lead somewhere on this machine or site): this host's and its neighbours' networks, cloud
# metadata (169.254.169.254), CGNAT, multicast and reserved space.
PRIVATE_RANGES = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
# Replies to connections made *to* an instance: the readiness probe, players, Traefik.
_REPLIES = "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
# Switched inside one bridge (br_netfilter shows such frames to iptables), as opposed to
# routed out of it: the containers of one instance talking to each other.
_WITHIN_BRIDGE = "-m physdev --physdev-is-bridged -j RETURN"
_NO_PRIVILEGE = ("permission denied", "you must be root", "operation not permitted")
_COUNTERS = re.compile(r" -c (\d+) (\d+)")
_WAIT = ("-w", "5")  # wait for the xtables lock rather than fail while Docker edits rules

#: chain -> rules as `iptables -S` prints them (packets, bytes) of each.
Table = dict[str, list[tuple[str, int]]]
#: the bridge through which swarm tasks reach anything beyond their overlay networks
GATEWAY_BRIDGE = "docker_gwbridge"


#: Swarm's own ports (managers' API, gossip, VXLAN): never an instance's business, on any
#: address. VXLAN above all: overlays are unencrypted, so a datagram sent there could be
#: taken into another instance's overlay network.
SWARM_PORTS = (("tcp", "2377"), ("tcp", "7946"), ("udp", "7946"), ("udp", "4789"))


@dataclass(frozen=True)
class SwarmNode:
    """The node's part of the rules on a Swarm node: whether its instances may reach the
    internet, the host port range instances publish on (INSTANCER_PORT_RANGE_*), and more
    addresses they never reach (the nodes' and the platform's public ones, CIDRs)."""

    egress: bool = False
    ports: tuple[int, int] = (30000, 60000)
    deny: tuple[str, ...] = ()


def _any(prefix: str) -> str:
    """The interface wildcard for every bridge with this prefix."""
    return prefix + "+"


class IptablesFirewall:
    """Applies, checks and removes instancer's isolation rules in the filter table.

    `iptables` is the binary to run; it must be the engine's flavour (on hosts where Docker
    uses legacy iptables: `iptables-legacy`). `chain_prefix` names our chains (tests use
    their own, so they never disturb the real ones).
    """

    def __init__(
        self, iptables: str = "iptables", chain_prefix: str = "INSTANCER", swarm: SwarmNode | None = None
    ) -> None:
        self._iptables = iptables
        self._swarm = swarm
        self.input_chain = f"{chain_prefix}-INPUT"
        self.forward_chain = f"{chain_prefix}-FORWARD"

    # --- the rule set ---------------------------------------------------------------

    def rules(self) -> dict[str, tuple[str, ...]]:
        """Our chains and their rules in order, exactly as `iptables -S` prints them."""
        ib, ie = _any(NO_EGRESS), _any(EGRESS)
        inputs: tuple[str, ...] = (_REPLIES, f"-i {ib} -j DROP", f"-i {ie} -j DROP")
        forwards: tuple[str, ...] = (
            _REPLIES,
            f"-i {ib} {_WITHIN_BRIDGE}",
            f"-i {ie} {_WITHIN_BRIDGE}",
            f"-i {ib} -j DROP",
            f"-i {ie} -o {ib} -j DROP",
            f"-i {ie} -o {ie} -j DROP",
            *(f"-d {cidr} -i {ie} -j DROP" for cidr in PRIVATE_RANGES),
        )
        if self._swarm is not None:
            inputs += (f"-i {GATEWAY_BRIDGE} -j DROP",)
            forwards += _gateway_rules(self._swarm)
        return {
            self.input_chain: tuple(f"-A {self.input_chain} {r}" for r in inputs),
            self.forward_chain: tuple(f"-A {self.forward_chain} {r}" for r in forwards),
        }

    def jumps(self) -> tuple[tuple[str, str], ...]:
        """(parent, chain): each parent chain's first rule must jump to our chain."""
        return (("INPUT", self.input_chain), ("DOCKER-USER", self.forward_chain))

    # --- the port (domain.ports.HostFirewall) ---------------------------------------

    def problems(self) -> list[str]:
        return self._problems(self._snapshot())

    def apply(self) -> list[str]:
        table = self._snapshot()
        if not self._docker_hooked(table):
            raise IsolationUnavailable(_NO_DOCKER_USER.format(iptables=self._iptables))
        changed = [chain for chain, wanted in self.rules().items() if _lines(table, chain) != list(wanted)]
        if changed:
            self._restore(changed)
        done = [f"wrote chain {chain}" for chain in changed]
        for parent, chain in self.jumps():
            if _lines(table, parent)[:1] != [_jump(parent, chain)]:
                self._jump_first(parent, chain, table)
                done.append(f"made {parent} jump to {chain} first")
        return done

    # --- operators and tests --------------------------------------------------------

    def remove(self) -> list[str]:
        """Remove our jumps and chains; removing what is gone is success."""
        table = self._snapshot()
        done = []
        for parent, chain in self.jumps():
            for _ in range(_lines(table, parent).count(_jump(parent, chain))):
                self._run("-D", parent, "-j", chain)
                done.append(f"removed the jump from {parent} to {chain}")
        for chain in self.rules():
            if chain in table:
                self._run("-F", chain)
                self._run("-X", chain)
                done.append(f"removed chain {chain}")
        return done

    def dropped(self) -> dict[str, int]:
        """Packets each of our DROP rules has dropped, by rule: the firewall's decisions."""
        table = self._snapshot()
        return {
            rule: packets
            for chain in self.rules()
            for rule, packets in table.get(chain, [])
            if rule.endswith("-j DROP")
        }

    # --- helpers --------------------------------------------------------------------

    def _problems(self, table: Table) -> list[str]:
        found = [] if self._docker_hooked(table) else [_NO_DOCKER_USER.format(iptables=self._iptables)]
        for chain, wanted in self.rules().items():
            if chain not in table:
                found.append(f"chain {chain} is missing")
            elif _lines(table, chain) != list(wanted):
                found.append(f"chain {chain} differs from instancer's rules")
        for parent, chain in self.jumps():
            if _lines(table, parent)[:1] != [_jump(parent, chain)]:
                found.append(f"the first rule of {parent} is not a jump to {chain}")
        return found

    @staticmethod
    def _docker_hooked(table: Table) -> bool:
        """Docker evaluates DOCKER-USER first in FORWARD; without that jump our rules are inert."""
        return _jump("FORWARD", "DOCKER-USER") in _lines(table, "FORWARD")

    def _jump_first(self, parent: str, chain: str, table: Table) -> None:
        """One jump, at the top: another tool inserting above us must not shadow our drops."""
        for _ in range(_lines(table, parent).count(_jump(parent, chain))):
            self._run("-D", parent, "-j", chain)
        self._run("-I", parent, "1", "-j", chain)

    def _restore(self, chains: Sequence[str]) -> None:
        """Rewrite whole chains in one transaction, so no packet sees a half-written chain.
        With --noflush, declaring a chain creates or flushes it; other chains stay untouched."""
        rules = self.rules()
        body = [f":{chain} - [0:0]" for chain in chains] + [r for c in chains for r in rules[c]]
        self._run(*_WAIT, "--noflush", stdin="\n".join(["*filter", *body, "COMMIT", ""]), restore=True)

    def _snapshot(self) -> Table:
        """The filter table, every chain and rule with its packet counter, in one call."""
        table: Table = {}
        for line in self._run("-v", "-S").splitlines():
            words = line.split(" ")
            if len(words) >= 2 and words[0] in ("-P", "-N"):
                table.setdefault(words[1], [])
            elif len(words) >= 2 and words[0] == "-A":
                match = _COUNTERS.search(line)
                rule = _COUNTERS.sub("", line)
                table.setdefault(words[1], []).append((rule, int(match.group(1)) if match else 0))
        return table

    def _run(self, *args: str, stdin: str | None = None, restore: bool = False) -> str:
        binary = self._iptables + ("-restore" if restore else "")
        command = [binary, *args] if restore else [binary, *_WAIT, *args]
        try:
            done = subprocess.run(  # noqa: S603 - a fixed binary and arguments we build, no shell
                command, input=stdin, capture_output=True, text=True, timeout=30, check=False
            )
        except FileNotFoundError as exc:
            raise IsolationUnavailable(f"`{binary}` is not installed here; install iptables") from exc
        except (OSError, subprocess.SubprocessError) as exc:
            raise IsolationUnavailable(f"`{binary}` could not be run: {exc}") from exc
        if done.returncode != 0:
            raise IsolationUnavailable(_failure(binary, args, done.stderr))
        return done.stdout


def _gateway_rules(node: SwarmNode) -> tuple[str, ...]:
    """FORWARD rules for traffic swarm tasks send out through the node's gateway bridge."""
    gw, (low, high) = GATEWAY_BRIDGE, node.ports
    rules = (
        f"-i {gw} -o {gw} -j DROP",  # to another container on this node, hairpin included
        *(f"-i {gw} -p {proto} -m {proto} --dport {low}:{high} -j DROP" for proto in ("tcp", "udp")),
        *(f"-i {gw} -p {proto} -m {proto} --dport {port} -j DROP" for proto, port in SWARM_PORTS),
        *(f"-d {cidr} -i {gw} -j DROP" for cidr in (*PRIVATE_RANGES, *node.deny)),
    )
    return rules if node.egress else (*rules, f"-i {gw} -j DROP")


_NO_DOCKER_USER = (
    "FORWARD does not jump to DOCKER-USER in `{iptables}`: start the Docker engine first, and use "
    "the iptables flavour (nft or legacy) the engine uses"
)


def _jump(parent: str, chain: str) -> str:
    return f"-A {parent} -j {chain}"


def _lines(table: Table, chain: str) -> list[str]:
    return [rule for rule, _ in table.get(chain, [])]


def _failure(binary: str, args: Sequence[str], stderr: str) -> str:
    text = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    hint = ""
    if any(marker in stderr.lower() for marker in _NO_PRIVILEGE):
        hint = "; managing the firewall needs root or CAP_NET_ADMIN (see docs/operations.md, Isolation)"
    return f"`{binary} {' '.join(args)}` failed: {text}{hint}"
