"""Instances and their states: plain values the use cases pass around."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .spec import Expose, Protocol


class State(StrEnum):
    """Where an instance is in its life.

    starting -> running -> stopping -> stopped | expired
    starting -> failed            (not ready in time, or the engine refused)
    running  -> lost              (its containers vanished behind our back)
    starting -> pooled -> running (a warm pool's instance, claimed by a start)
    pooled   -> stopping | lost   (drained: stale spec, above pool.max, challenge deleted)
    """

    STARTING = "starting"
    #: ready, owned by nobody (a sentinel owner), waiting in its challenge's warm pool
    POOLED = "pooled"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    EXPIRED = "expired"
    FAILED = "failed"
    LOST = "lost"


#: States that hold the (challenge, owner) slot and count against the owner's limit.
LIVE_STATES = frozenset({State.STARTING, State.RUNNING})
#: States whose containers may still exist and so count against global capacity.
OCCUPYING_STATES = frozenset({State.STARTING, State.POOLED, State.RUNNING, State.STOPPING})
ENDED_STATES = frozenset({State.STOPPED, State.EXPIRED, State.FAILED, State.LOST})


#: Owners of pool instances not claimed yet: `~pool:<instance id>`. No real owner can be one
#: (the API's OWNER_PATTERN starts with a letter or digit), and one per instance keeps the
#: one-live-instance-per-(challenge, owner) index out of the way of a pool's concurrent starts.
POOL_OWNER_PREFIX = "~pool:"


def pool_owner(instance_id: str) -> str:
    return POOL_OWNER_PREFIX + instance_id


def is_pool_owner(owner: str) -> bool:
    return owner.startswith(POOL_OWNER_PREFIX)


@dataclass(frozen=True)
class PublicAddresses:
    """Where players reach instances: the settings that turn records into connection info."""

    host: str = "localhost"
    #: proxied instances live at <slug>.<domain>
    domain: str = "instances.localhost"
    https_port: int = 443
    tcp_tls_port: int = 1337


@dataclass(frozen=True)
class Endpoint:
    """How a player reaches one exposed port of an instance: a URL or a command, with
    alternatives and a one-line hint."""

    container: str
    container_port: int
    protocol: Protocol
    mode: Expose
    host: str
    port: int
    url: str | None = None
    command: str | None = None
    alternatives: tuple[str, ...] = ()
    hint: str = ""


@dataclass(frozen=True)
class Instance:
    id: str
    challenge_id: str
    owner: str
    state: State
    generation: int
    created_at: datetime
    expires_at: datetime
    extensions_used: int = 0
    max_extensions: int = 0
    last_extended_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    reason: str | None = None
    allocations: tuple[Allocation, ...] = field(default=())
    routes: tuple[Route, ...] = field(default=())
    #: the replica whose start or stop is under way (meaningful in starting/stopping)
    claimed_by: str | None = None
    #: set while the instance belongs to a warm pool (unclaimed): the key of the spec it runs
    pool_key: str | None = None
    #: where its host ports are reached, when the engine said (a swarm node); None: the
    #: deployment's public host
    public_host: str | None = None

    @property
    def extensions_left(self) -> int:
        return max(0, self.max_extensions - self.extensions_used)

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def unclaimed(self) -> bool:
        """Started for a warm pool and not handed to an owner (yet)."""
        return is_pool_owner(self.owner)


@dataclass(frozen=True)
class Version:
    """What identifies one incarnation of an instance (the compare-and-set key of repairs), and
    how many containers its spec has: the reconcile's whole view of a record."""

    state: State
    generation: int
    owner: str
    containers: int


def endpoints(instance: Instance, public: PublicAddresses) -> list[Endpoint]:
    """The connection info of an instance as players see it, in the spec's port order.

    A proxied port may hold a host port too (the proxy reaches a swarm node through it);
    players get the route, never that host port."""
    host = instance.public_host or public.host
    routed = {(r.container, r.container_port) for r in instance.routes}
    found = [
        _port_endpoint(a, host) for a in instance.allocations if (a.container, a.container_port) not in routed
    ]
    found += [_route_endpoint(r, public) for r in instance.routes]
    return sorted(found, key=lambda e: (e.container, e.container_port))


def _port_endpoint(a: Allocation, host: str) -> Endpoint:
    if a.protocol is Protocol.HTTP:
        url = f"http://{host}:{a.host_port}/"
        return Endpoint(
            a.container,
            a.container_port,
            a.protocol,
            Expose.PORT,
            host,
            a.host_port,
            url=url,
            hint="Open the URL in a browser.",
        )
    return Endpoint(
        a.container,
        a.container_port,
        a.protocol,
        Expose.PORT,
        host,
        a.host_port,
        command=f"nc {host} {a.host_port}",
        hint="A raw TCP service: connect with netcat.",
    )


def _route_endpoint(r: Route, public: PublicAddresses) -> Endpoint:
    host = f"{r.slug}.{public.domain}"
    if r.mode is Expose.HTTP:
        port = public.https_port
        url = f"https://{host}/" if port == 443 else f"https://{host}:{port}/"
        return Endpoint(
            r.container,
            r.container_port,
            Protocol.HTTP,
            r.mode,
            host,
            port,
            url=url,
            hint="Open the URL in a browser (HTTPS, through the event's proxy).",
        )
    port = public.tcp_tls_port
    return Endpoint(
        r.container,
        r.container_port,
        Protocol.TCP,
        r.mode,
        host,
        port,
        command=f"openssl s_client -quiet -verify_quiet -connect {host}:{port} -servername {host}",
        alternatives=(f"ncat --ssl {host} {port}", f"socat - OPENSSL:{host}:{port}"),
        hint="A TCP service inside TLS: plain nc will not work; use openssl, ncat --ssl or socat.",
    )


@dataclass(frozen=True)
class Allocation:
    """A host port reserved for one exposed port of one instance."""

    container: str
    container_port: int
    protocol: Protocol
    host_port: int


@dataclass(frozen=True)
class Route:
    """A proxied exposed port: the proxy sends `<slug>.<domain>` to `target`.

    The slug is random (not derived from the owner), so an instance cannot be found by
    guessing names; a revert draws new ones. `target` (`address:port` the proxy forwards
    to) is known once the engine has started the containers."""

    slug: str
    container: str
    container_port: int
    mode: Expose
    target: str | None = None


_SLUG_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
SLUG_CHARS = 16  # 36**16 ~ 2**82: not found by trying names


def new_slug() -> str:
    """A random DNS label for a proxied port, starting with a letter."""
    first = secrets.choice(_SLUG_ALPHABET[:26])
    return first + "".join(secrets.choice(_SLUG_ALPHABET) for _ in range(SLUG_CHARS - 1))


@dataclass(frozen=True)
class FlagShare:
    """One owner submitted the flag of another owner's instance."""

    challenge_id: str
    submitter: str
    flag_owner: str
    instance_id: str
    created_at: datetime
    id: int | None = None
