"""The composition root: the only module that wires every layer together."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy import Engine

from .api.app import create_app
from .api.context import ApiContext
from .backends.docker import DockerBackend
from .backends.fake import FakeBackend
from .backends.firewall import IptablesFirewall, SwarmNode
from .backends.imagesync import ImageSync
from .backends.swarm import SwarmBackend
from .domain.model import PublicAddresses
from .domain.ports import Backend, Clock, HostFirewall
from .exposure.traefik import TraefikOptions
from .services.challenges import ChallengeService
from .services.flags import FlagService
from .services.instances import InstanceService
from .services.isolation import IsolationGuard
from .services.policy import Policy
from .services.pools import PoolService
from .settings import Settings
from .store import migrate
from .store.sql import SqlStore, make_engine
from .vault.aesgcm import AesGcmVault, parse_keys
from .worker.pools import PoolFiller, PoolFillerConfig
from .worker.reaper import Reaper, ReaperConfig


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class Service:
    settings: Settings
    engine: Engine
    store: SqlStore
    backend: Backend
    clock: Clock
    instances: InstanceService
    challenges: ChallengeService
    flags: FlagService
    reaper: Reaper
    isolation: IsolationGuard
    pools: PoolService
    pool_filler: PoolFiller


def policy_of(settings: Settings) -> Policy:
    return Policy(
        per_owner=settings.per_owner_limit,
        capacity=settings.capacity,
        capacity_memory_mib=settings.capacity_memory_mib,
        capacity_cpus=settings.capacity_cpus,
        cooldown_seconds=settings.cooldown_seconds,
        extension_interval_seconds=settings.extension_interval_seconds,
        ready_timeout_seconds=settings.ready_timeout_seconds,
        port_low=settings.port_range_start,
        port_high=settings.port_range_end,
        replica_timeout_seconds=settings.replica_timeout_seconds,
        lost_policy=settings.lost_policy,
        expose_proxy=settings.expose_default == "proxy",
    )


def backend_of(settings: Settings) -> Backend:
    if settings.backend == "fake":
        return FakeBackend()
    if settings.backend == "swarm":
        return SwarmBackend(
            base_url=settings.docker_host,
            deployment=settings.deployment,
            timeout_seconds=settings.docker_timeout_seconds,
            start_timeout_seconds=settings.swarm_start_timeout_seconds,
            reserve_fraction=settings.swarm_reserve_fraction,
        )
    return DockerBackend(
        base_url=settings.docker_host,
        deployment=settings.deployment,
        publish_address=settings.publish_address,
        timeout_seconds=settings.docker_timeout_seconds,
    )


#: what the `instancer firewall` commands drive
Firewall = IptablesFirewall


def host_firewall() -> Firewall:
    """The firewall that isolates instances on this host (the `instancer firewall` commands)."""
    return IptablesFirewall()


def node_firewall(*, egress: bool, ports: tuple[int, int], deny: tuple[str, ...] = ()) -> Firewall:
    """The same on a Swarm node running instances: its gateway bridge's rules too."""
    return IptablesFirewall(swarm=SwarmNode(egress=egress, ports=ports, deny=deny))


def isolation_of(settings: Settings, firewall: HostFirewall | None = None) -> IsolationGuard:
    """The fake backend starts no container, so there is nothing to isolate. On a swarm the
    service keeps its own host's node rules in force (INSTANCER_SWARM_NODE_*); every other
    node needs `instancer firewall apply --swarm-node` (docs/operations.md)."""
    if settings.backend == "fake" or settings.isolation == "off":
        return IsolationGuard(None, "off")
    if firewall is None and settings.backend == "swarm":
        firewall = node_firewall(
            egress=settings.swarm_node_egress,
            ports=(settings.port_range_start, settings.port_range_end),
            deny=settings.swarm_denied,
        )
    return IsolationGuard(firewall or host_firewall(), settings.isolation)


def image_sync_of(settings: Settings) -> ImageSync:
    """What `instancer images sync` copies with: the manager and the nodes' engines."""
    return ImageSync(
        manager_url=settings.docker_host,
        engines=settings.swarm_engines,
        registry=settings.registry,
    )


def build(
    settings: Settings,
    *,
    backend: Backend | None = None,
    clock: Clock | None = None,
    firewall: HostFirewall | None = None,
) -> Service:
    """Wire the service. `backend`, `clock` and `firewall` may be replaced (tests)."""
    engine = make_engine(settings.database_url)
    store = SqlStore(engine)
    backend = backend or backend_of(settings)
    clock = clock or SystemClock()
    vault = AesGcmVault(parse_keys(settings.flag_keys.get_secret_value()))
    policy = policy_of(settings)
    instances = InstanceService(
        store=store, backend=backend, clock=clock, policy=policy, vault=vault, replica_id=secrets.token_hex(8)
    )
    challenges = ChallengeService(store=store, clock=clock, instances=instances)
    flags = FlagService(store=store, vault=vault, clock=clock, accept_retired=settings.flag_accept_retired)
    isolation = isolation_of(settings, firewall)
    reaper = Reaper(
        instances,
        ReaperConfig(
            interval_seconds=settings.reaper_interval_seconds,
            reconcile_every_ticks=max(
                1, round(settings.reconcile_interval_seconds / settings.reaper_interval_seconds)
            ),
            orphan_grace_seconds=settings.orphan_grace_seconds,
            heartbeat_seconds=settings.replica_timeout_seconds / 3,
            lost_after_seconds=settings.lost_after_seconds,
        ),
        guard=isolation.tick,
    )
    pools = PoolService(store=store, clock=clock, instances=instances, vault=vault, policy=policy)
    filler = PoolFiller(
        pools,
        PoolFillerConfig(
            interval_seconds=settings.reaper_interval_seconds, parallel=settings.pool_parallel_starts
        ),
    )
    return Service(
        settings,
        engine,
        store,
        backend,
        clock,
        instances,
        challenges,
        flags,
        reaper,
        isolation,
        pools,
        filler,
    )


def upgrade_database(service: Service) -> None:
    migrate.upgrade(service.engine)


def app_of(service: Service, *, run_reaper: bool = True) -> FastAPI:
    """The HTTP app; its lifespan runs the background loops, the reaper and the pool filler (unless
    told not to), and closes the connection pool."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.instances.heartbeat()  # before any request: this replica's claims must stand
        if run_reaper:
            service.reaper.start()
            service.pool_filler.start()
        try:
            yield
        finally:
            service.pool_filler.stop()
            service.reaper.stop()
            service.instances.retire()
            service.engine.dispose()

    s = service.settings
    ctx = ApiContext(
        instances=service.instances,
        challenges=service.challenges,
        flags=service.flags,
        clock=service.clock,
        platform_token=s.platform_token.get_secret_value(),
        admin_token=s.admin_token.get_secret_value(),
        public=PublicAddresses(
            host=s.public_host,
            domain=s.domain,
            https_port=s.proxy_https_port,
            tcp_tls_port=s.proxy_tcp_port,
        ),
        traefik=TraefikOptions(
            domain=s.domain,
            http_entrypoint=s.traefik_http_entrypoint,
            tcp_entrypoint=s.traefik_tcp_entrypoint,
            cert_resolver=s.traefik_cert_resolver,
        ),
        routes_token=s.routes_token.get_secret_value() if s.routes_token else None,
        metrics_token=s.metrics_token.get_secret_value() if s.metrics_token else None,
        capacity=s.capacity,
        max_body_bytes=s.max_body_bytes,
        readiness={"database": service.store.ping, "engine": service.backend.ping},
        last_reconcile=lambda: service.reaper.last_reconcile,
        repair_totals=lambda: dict(service.reaper.totals),
        replica_id=service.instances.replica_id,
    )
    return create_app(ctx, lifespan=lifespan)
