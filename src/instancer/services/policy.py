"""The organiser's global limits and timings, as the use cases need them."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.spec import ChallengeSpec


@dataclass(frozen=True)
class Policy:
    per_owner: int = 1
    capacity: int = 500
    #: caps on the summed resource limits of occupying instances; None: no cap
    capacity_memory_mib: int | None = None
    capacity_cpus: float | None = None
    cooldown_seconds: float = 5.0
    extension_interval_seconds: float = 300.0
    ready_timeout_seconds: float = 30.0
    port_low: int = 30000
    port_high: int = 60000
    #: A replica silent this long is dead: another one finishes the starts it left.
    replica_timeout_seconds: float = 15.0
    #: what the reconcile does with a running instance whose containers vanished
    lost_policy: str = "mark"  # "mark" (state lost, slot freed) | "recreate" (fresh containers in place)
    #: ports whose spec leaves `expose` unset go through the proxy (`http`/`tcp-tls`), not a host port
    expose_proxy: bool = False
    #: A `stopping` record whose engine call failed is retried after this long.
    stop_retry_seconds: float = 3.0

    def per_owner_for(self, spec: ChallengeSpec) -> int:
        return spec.limits.per_owner if spec.limits.per_owner is not None else self.per_owner

    def cooldown_for(self, spec: ChallengeSpec) -> float:
        c = spec.limits.cooldown_seconds
        return c if c is not None else self.cooldown_seconds

    def extension_interval_for(self, spec: ChallengeSpec) -> float:
        e = spec.limits.extension_interval_seconds
        return e if e is not None else self.extension_interval_seconds
