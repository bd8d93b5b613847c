"""What the HTTP layer is given by `bootstrap`: use cases, the clock and a few settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ..domain.model import PublicAddresses
from ..domain.ports import Clock
from ..exposure.traefik import TraefikOptions
from ..services.challenges import ChallengeService
from ..services.flags import FlagService
from ..services.instances import InstanceService


@dataclass(frozen=True)
class ApiContext:
    instances: InstanceService
    challenges: ChallengeService
    flags: FlagService
    clock: Clock
    platform_token: str
    admin_token: str
    public: PublicAddresses
    capacity: int
    #: what the Traefik route configuration needs besides the routes
    traefik: TraefikOptions = field(default_factory=TraefikOptions)
    routes_token: str | None = None
    metrics_token: str | None = None
    max_body_bytes: int = 65536
    replica_id: str = "local"
    #: name -> check that raises when the dependency is not usable (for /readyz)
    readiness: dict[str, Callable[[], None]] = field(default_factory=dict)
    #: (when, counts per kind of repair) of the reaper's last full reconcile, if any yet
    last_reconcile: Callable[[], tuple[datetime, dict[str, int]] | None] = lambda: None
    #: repairs by kind this replica has made since it started
    repair_totals: Callable[[], dict[str, int]] = dict
