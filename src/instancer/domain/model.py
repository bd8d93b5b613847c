"""Instances and their states: plain values the use cases pass around."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .spec import Protocol


class State(StrEnum):
    """Where an instance is in its life.

    starting -> running -> stopping -> stopped | expired
    starting -> failed            (not ready in time, or the engine refused)
    running  -> lost              (its containers vanished behind our back)
    """

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    EXPIRED = "expired"
    FAILED = "failed"
    LOST = "lost"


#: States that hold the (challenge, owner) slot and count against the owner's limit.
LIVE_STATES = frozenset({State.STARTING, State.RUNNING})
#: States whose containers may still exist and so count against global capacity.
OCCUPYING_STATES = frozenset({State.STARTING, State.RUNNING, State.STOPPING})
ENDED_STATES = frozenset({State.STOPPED, State.EXPIRED, State.FAILED, State.LOST})


@dataclass(frozen=True)
class Endpoint:
    """How a player reaches one exposed port of an instance."""

    container: str
    container_port: int
    protocol: Protocol
    host: str
    port: int

    @property
    def url(self) -> str | None:
        return f"http://{self.host}:{self.port}/" if self.protocol is Protocol.HTTP else None

    @property
    def command(self) -> str | None:
        return f"nc {self.host} {self.port}" if self.protocol is Protocol.TCP else None


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
    #: the replica whose start or stop is under way (meaningful in starting/stopping)
    claimed_by: str | None = None

    @property
    def extensions_left(self) -> int:
        return max(0, self.max_extensions - self.extensions_used)

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


def endpoints(instance: Instance, host: str) -> list[Endpoint]:
    """The connection info of an instance as players see it, on the public host name."""
    return [
        Endpoint(a.container, a.container_port, a.protocol, host, a.host_port) for a in instance.allocations
    ]


@dataclass(frozen=True)
class Allocation:
    """A host port reserved for one exposed port of one instance."""

    container: str
    container_port: int
    protocol: Protocol
    host_port: int


@dataclass(frozen=True)
class FlagShare:
    """One owner submitted the flag of another owner's instance."""

    challenge_id: str
    submitter: str
    flag_owner: str
    instance_id: str
    created_at: datetime
    id: int | None = None
