"""The ports the use cases depend on: engine backend, store, clock.

Adapters implement these (`backends/`, `store/`); the use cases never see the
libraries behind them. Every backend method is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from .capacity import Footprint
from .model import Allocation, FlagShare, Instance, Route, State, Version
from .spec import ChallengeSpec, Healthcheck


class Clock(Protocol):
    def now(self) -> datetime: ...


# --- Engine ---------------------------------------------------------------------


@dataclass(frozen=True)
class PortBinding:
    container_port: int
    host_port: int


@dataclass(frozen=True)
class FileInject:
    """A file written into a container after it is created and before it starts."""

    path: str
    content: bytes
    mode: int


@dataclass(frozen=True)
class ContainerPlan:
    name: str
    image: str
    env: dict[str, str]
    command: tuple[str, ...] | None
    memory_mib: int
    cpus: float
    pids: int
    cap_add: tuple[str, ...]
    #: host ports to publish (the `port` exposures)
    ports: tuple[PortBinding, ...]
    files: tuple[FileInject, ...] = ()
    #: every exposed container port (published or proxied): probed for readiness, routed to
    exposed: tuple[int, ...] = ()
    #: containers of the plan started before this one; those with a healthcheck must be healthy
    depends_on: tuple[str, ...] = ()
    healthcheck: Healthcheck | None = None


@dataclass(frozen=True)
class LaunchPlan:
    """Everything an engine needs to run one generation of one instance.

    `containers` are in start order: each after the containers it depends on.

    `egress`: whether its containers may open connections beyond the machine (the
    challenge spec's `egress`); never to the host or other instances either way.
    """

    instance_id: str
    generation: int
    challenge_id: str
    owner: str
    expires_at: datetime
    containers: tuple[ContainerPlan, ...]
    #: how long one start may wait, in all, for dependencies to become healthy
    healthy_timeout_seconds: float = 30.0
    egress: bool = False
    #: where the instance may run, as Swarm placement constraints (ignored on one host)
    constraints: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteTarget:
    container: str
    container_port: int
    address: str


@dataclass(frozen=True)
class Launched:
    """What `start` learned: where the exposed ports can be probed from here, and the
    `address:port` a proxy forwards each (container, container port) to."""

    probe_targets: tuple[tuple[str, int], ...]
    targets: tuple[RouteTarget, ...] = ()
    #: where players reach its host ports, when not at the deployment's public host (the
    #: swarm node that runs it); None: INSTANCER_PUBLIC_HOST
    public_host: str | None = None


@dataclass(frozen=True)
class Observed:
    """One engine object carrying our labels: a container (a Swarm service counts as one),
    a network, or another object an instance holds (a Swarm secret)."""

    kind: str  # "container" | "network" | "secret"
    name: str
    instance_id: str
    created_at: datetime
    running: bool = False
    #: why a container is not running, when the engine can say (e.g. its node is down)
    detail: str = ""


class Backend(Protocol):
    """An engine that runs instances. Stopping what is gone is success."""

    name: str
    #: True when the proxy reaches proxied ports through host ports (on whichever node runs
    #: the instance) rather than at the container's own address: the use cases then give
    #: those ports a host port from the pool as well.
    proxied_ports_need_host_ports: bool

    def ping(self) -> None:
        """Raises BackendUnavailable when the engine cannot be reached."""

    def start(self, plan: LaunchPlan) -> Launched:
        """Create the private network and the containers, and start them in the plan's order;
        a container whose dependency has a healthcheck starts once that dependency is healthy.

        Raises:
            BackendUnavailable, ImageMissing, PortUnavailable, BackendRejected,
            ContainerUnhealthy (a dependency turned unhealthy or was not healthy in time).
        """
        ...

    def probe(self, launched: Launched) -> bool:
        """True when every exposed port accepts a TCP connection."""
        ...

    def stop(self, instance_id: str) -> None:
        """Remove every container and network of the instance (any generation)."""

    def list_managed(self) -> list[Observed]:
        """Every container and network of this deployment, by label (no per-object inspect)."""
        ...


# --- Host isolation ----------------------------------------------------------------


class HostFirewall(Protocol):
    """The host's packet filter rules that keep instances from the host, from each other and,
    unless their challenge allows egress, from the internet. Both methods are idempotent.
    """

    def apply(self) -> list[str]:
        """Put the rules in force; return what had to change (empty when nothing did).

        Raises:
            IsolationUnavailable: the rules cannot be read or written here.
        """
        ...

    def problems(self) -> list[str]:
        """What is missing or out of place; empty when the rules are in force.

        Raises:
            IsolationUnavailable: the rules cannot be read here.
        """
        ...


# --- Flags at rest ---------------------------------------------------------------


@dataclass(frozen=True)
class SealedFlag:
    """A flag as stored: AES-GCM ciphertext under `key_id`, and a keyed hash for lookups."""

    key_id: str
    nonce: bytes
    ciphertext: bytes
    digest: bytes


class FlagVault(Protocol):
    """Encrypts flags at rest and derives their lookup digests. Several keys may be
    configured: the first seals, all open (so keys can be rotated without downtime)."""

    primary_key_id: str

    def seal(self, flag: str, *, instance_id: str) -> SealedFlag:
        """Encrypt under the primary key; the ciphertext is bound to `instance_id`."""
        ...

    def open(self, sealed: SealedFlag, *, instance_id: str) -> str:
        """Raises FlagKeyUnavailable when `sealed.key_id` is not configured."""
        ...

    def digests(self, flag: str) -> list[bytes]:
        """The lookup digest of `flag` under every configured key (candidates for an index lookup)."""
        ...


# --- Store ----------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceFilter:
    challenge_id: str | None = None
    owner: str | None = None
    states: frozenset[State] | None = None


@dataclass(frozen=True)
class Page:
    items: list[Instance]
    total: int
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class Stats:
    by_state: dict[str, int] = field(default_factory=dict)
    by_challenge: dict[str, int] = field(default_factory=dict)
    ports_allocated: int = 0
    routes: int = 0
    #: ready instances waiting in each challenge's warm pool
    pooled_by_challenge: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FlagMatch:
    """A stored flag whose digest matched a submission."""

    instance_id: str
    owner: str
    sealed: SealedFlag
    retired: bool
    #: the challenge's lifetime.after_solve_seconds
    after_solve_seconds: int | None = None


@dataclass(frozen=True)
class ShareFilter:
    challenge_id: str | None = None
    submitter: str | None = None
    flag_owner: str | None = None


@dataclass(frozen=True)
class SharePage:
    items: list[FlagShare]
    total: int
    page: int = 1
    per_page: int = 50


class Tx(Protocol):
    """One database transaction. Commits when the `with` block ends without error."""

    def lock_starts(self) -> None:
        """Serialise start/revert decisions across threads and replicas (a row lock)."""

    def challenge_exists(self, challenge_id: str) -> bool: ...
    def get_challenge(self, challenge_id: str) -> ChallengeSpec | None: ...

    def put_challenge(self, spec: ChallengeSpec, now: datetime) -> bool:
        """Insert or replace; True when created."""
        ...

    def delete_challenge(self, challenge_id: str) -> bool: ...
    def list_challenges(self) -> list[ChallengeSpec]: ...

    def owner_last_start(self, owner: str) -> datetime | None: ...
    def touch_owner(self, owner: str, now: datetime) -> None: ...

    def add_instance(self, instance: Instance, spec: ChallengeSpec, *, claimed_by: str | None = None) -> None:
        """Record an instance with the spec it starts from.

        Raises LiveInstanceExists when (challenge, owner) already holds a live one."""

    def instance_spec(self, instance_id: str) -> ChallengeSpec | None: ...
    def versions(self, states: frozenset[State]) -> dict[str, Version]:
        """Each instance in `states` by id, as a Version, in one query (the reconcile's view)."""
        ...

    def get_instance(self, instance_id: str) -> Instance | None: ...
    def live_instance(self, challenge_id: str, owner: str) -> Instance | None: ...
    def live_of_owner(self, owner: str) -> list[Instance]: ...
    def count_occupying(self, challenge_id: str | None = None) -> int:
        """Instances whose containers may exist (all, or of one challenge)."""
        ...

    def pooled_ids(self, challenge_id: str, pool_key: str, limit: int) -> list[str]:
        """Ready pooled instances of the challenge started from a spec with this key, the longest
        waiting first: the candidates for a claim."""
        ...

    def pool_members(self) -> list[Instance]:
        """Every unclaimed pool instance that is starting or ready, of every challenge."""
        ...

    def occupying_footprint(self) -> Footprint:
        """The resource limits of every occupying instance's containers, summed (from the
        spec each instance started from)."""
        ...

    def find(self, flt: InstanceFilter, *, page: int = 1, per_page: int = 50) -> Page: ...
    def due(self, now: datetime, limit: int) -> list[Instance]:
        """Live instances whose deadline has passed, oldest deadline first."""
        ...

    def heartbeat(self, replica_id: str, now: datetime) -> None:
        """Record that this replica is alive (its claims on instances stand)."""

    def forget_replica(self, replica_id: str) -> None:
        """A replica shutting down cleanly: its claims are free at once."""

    def heartbeats(self) -> dict[str, datetime]:
        """Each replica's last heartbeat, as that replica's own clock wrote it."""
        ...

    def abandoned(self, states: frozenset[State], alive: frozenset[str], limit: int) -> list[Instance]:
        """Instances in `states` claimed by no replica in `alive` (or by none at all)."""
        ...

    def stale(self, states: frozenset[State], before: datetime, limit: int) -> list[Instance]:
        """Instances in `states` whose state has not changed since `before`."""
        ...

    def transition(
        self,
        instance_id: str,
        *,
        expect: frozenset[State],
        to: State,
        now: datetime,
        at_generation: int | None = None,
        expired_by: datetime | None = None,
        held_by: str | None = None,
        owned_by: str | None = None,
        **changes: object,
    ) -> bool:
        """Move an instance to `to` only if it is in one of `expect` (and at `at_generation`,
        and with a deadline at or before `expired_by`, and claimed by `held_by`, and owned by
        `owned_by`).

        This compare-and-set is how two threads or replicas agree on who acts.
        """
        ...

    def bring_deadline_in(self, instance_id: str, until: datetime) -> bool:
        """Set a running instance's deadline to `until` if it is later: one conditional update,
        so an extension or revert committed meanwhile is never undone. True if it changed."""
        ...

    def allocate_ports(
        self,
        instance_id: str,
        wanted: Sequence[tuple[str, int, str]],
        low: int,
        high: int,
        avoid: frozenset[int] = frozenset(),
    ) -> list[Allocation]:
        """Reserve one free host port per (container, container_port, protocol).

        Raises PortsExhausted when the range is full.
        """
        ...

    def release_ports(self, instance_id: str) -> None: ...

    def add_routes(self, instance_id: str, routes: Sequence[Route]) -> None:
        """Record proxied ports (slugs are unique: a clash raises, as it is astronomically rare)."""

    def set_route_targets(self, instance_id: str, targets: Sequence[RouteTarget]) -> None: ...
    def release_routes(self, instance_id: str) -> None: ...
    def routed(self) -> list[tuple[Instance, Route]]:
        """Every route of a running or pooled instance whose target is known: what the proxy
        serves. Pooled ones are served before their claim, so that a claimed instance answers at
        once; their slugs are told to nobody until then (docs/decisions/0009)."""
        ...

    def stats(self) -> Stats: ...

    # flags
    def add_flag(
        self, instance_id: str, challenge_id: str, owner: str, sealed: SealedFlag, now: datetime
    ) -> None: ...
    def get_flag(self, instance_id: str) -> SealedFlag | None: ...
    def set_flag_owner(self, instance_id: str, owner: str) -> None:
        """A claimed pool instance's flag now belongs to its owner (sharing detection uses it)."""

    def find_flags(self, challenge_id: str, digests: Sequence[bytes]) -> list[FlagMatch]: ...
    def retire_flag(self, instance_id: str, now: datetime) -> None: ...
    def delete_flags(self, challenge_id: str) -> int: ...
    def flags_not_under(self, key_id: str, limit: int) -> list[tuple[str, SealedFlag]]: ...
    def reseal_flag(self, instance_id: str, sealed: SealedFlag, *, was_key_id: str) -> bool:
        """Replace a flag's ciphertext, only if it is still under `was_key_id` (compare-and-set)."""
        ...

    def count_flags(self) -> dict[str, int]:
        """Stored flags per key id."""
        ...

    def add_share(self, share: FlagShare) -> None: ...
    def find_shares(self, flt: ShareFilter, *, page: int = 1, per_page: int = 50) -> SharePage: ...
    def audit(self, *, actor: str, action: str, target: str, now: datetime) -> None: ...


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[Tx]: ...
    def read(self) -> AbstractContextManager[Tx]:
        """A transaction for reads only: cheaper, and never waits for writers."""
        ...

    def ping(self) -> None: ...


class LiveInstanceExists(Exception):
    """The store refused a second live instance for one (challenge, owner)."""
