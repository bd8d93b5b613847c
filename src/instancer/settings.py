"""One typed settings object, loaded from `INSTANCER_*` environment variables.

Loaded once by `bootstrap`/`cli`, never at import time. Every field documents its unit;
`docs/configuration.md` lists them all (a test keeps the two in step).
"""

from __future__ import annotations

import ipaddress
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .vault.aesgcm import KeyringError, parse_keys


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INSTANCER_", extra="ignore", frozen=True)

    # --- access -----------------------------------------------------------------
    platform_token: SecretStr = Field(
        description="Bearer token of the platform (the CTFd plugin); acts for owners. Required."
    )
    admin_token: SecretStr = Field(
        description="Bearer token of administrators. Required; differs from the platform token."
    )

    flag_keys: SecretStr = Field(
        description=(
            "Flag encryption keys, `id:base64(32 random bytes)`, comma-separated. The first encrypts; "
            "all decrypt. Required. Make one with `instancer new-flag-key ID`."
        )
    )
    flag_accept_retired: bool = Field(
        default=True,
        description=(
            "Accept an owner's flag from an instance that has ended (false: only the live instance's flag)."
        ),
    )

    # --- storage ----------------------------------------------------------------
    database_url: str = Field(
        default="sqlite:///./data/instancer.db",
        description="SQLAlchemy URL. SQLite file (embedded default) or postgresql+psycopg://user@host/db.",
    )

    # --- engine -----------------------------------------------------------------
    backend: Literal["docker", "swarm", "fake"] = Field(
        default="docker",
        description=(
            "Engine backend: `docker` (one host), `swarm` (a Docker Swarm, through a manager) or "
            "`fake` (in memory, for trying the API)."
        ),
    )
    docker_host: str = Field(
        default="unix:///var/run/docker.sock",
        validation_alias=AliasChoices("INSTANCER_DOCKER_HOST", "DOCKER_HOST"),
        description=(
            "Docker engine address (with `swarm`: a manager's); falls back to DOCKER_HOST, then the "
            "local socket."
        ),
    )
    docker_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one engine API call, seconds."
    )
    swarm_start_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "With `swarm`: how long a start waits for Swarm to run every container of an instance "
            "(before the readiness probe), seconds."
        ),
    )
    swarm_reserve_fraction: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description=(
            "With `swarm`: the share of each container's CPU and memory limits reserved on its node; "
            "Swarm places a task only where its reservations fit. 0: no reservations."
        ),
    )
    swarm_node_engines: str = Field(
        default="",
        description=(
            "For `instancer images sync`: each swarm node's engine, `NODE=URL` comma-separated, by host "
            "name (the manager's own node defaults to INSTANCER_DOCKER_HOST)."
        ),
    )
    swarm_node_egress: bool = Field(
        default=False,
        description=(
            "With the swarm backend and INSTANCER_ISOLATION=enforce: whether instances on the service's "
            "own host (a swarm node) may reach the internet (`firewall apply --swarm-node --egress`)."
        ),
    )
    swarm_node_deny: str = Field(
        default="",
        description=(
            "With the swarm backend: CIDRs, comma-separated, that instances never reach (the nodes' and "
            "the platform's public addresses), in the service's own host's node rules (`--deny`)."
        ),
    )
    registry: str | None = Field(
        default=None,
        description=(
            "A registry the swarm's nodes pull challenge images from; set, `instancer images sync` "
            "copies nothing (push images there instead)."
        ),
    )
    deployment: str = Field(
        default="default",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
        description=(
            "Name stamped on every engine object (label instancer.deployment); "
            "two deployments on one engine ignore each other."
        ),
    )

    isolation: Literal["enforce", "check", "off"] = Field(
        default="enforce",
        description=(
            "The host firewall that keeps instances from the host, each other and (unless their "
            "spec says `egress: true`) the internet: `enforce` applies it at start (refusing to start "
            "when it cannot: needs root or CAP_NET_ADMIN) and repairs it on every reconcile; `check` "
            "only warns when it is not in force; `off` does nothing. Ignored with the fake backend."
        ),
    )

    # --- exposure ---------------------------------------------------------------
    public_host: str = Field(
        default="localhost", description="Host name players connect to, shown in connection info."
    )
    publish_address: str = Field(
        default="0.0.0.0",  # noqa: S104 - players connect from anywhere by default
        description="Host address instance ports are published on.",
    )
    port_range_start: int = Field(
        default=30000, ge=1024, le=65535, description="First host port handed to instances."
    )
    port_range_end: int = Field(
        default=60000, ge=1024, le=65535, description="Last host port handed to instances."
    )

    expose_default: Literal["port", "proxy"] = Field(
        default="port",
        description=(
            "Exposure of ports whose spec sets no `expose`: `port` (a host port from the range) or "
            "`proxy` (`http` ports at https://<slug>.<domain>, `tcp` ports as `tcp-tls` by SNI)."
        ),
    )
    domain: str = Field(
        default="instances.localhost",
        max_length=200,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$",
        description="Proxied instances are at <slug>.<domain> (a wildcard DNS record and certificate).",
    )
    proxy_https_port: int = Field(
        default=443, ge=1, le=65535, description="Public port of the proxy's HTTPS entry point."
    )
    proxy_tcp_port: int = Field(
        default=1337, ge=1, le=65535, description="Public port of the proxy's TLS entry point for `tcp-tls`."
    )
    routes_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token Traefik's HTTP provider sends to GET /api/v1/routes/traefik (read-only: "
            "the routes). Unset: only the admin token reads the routes."
        ),
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token Prometheus sends to GET /metrics (read-only: the metrics). Unset: only "
            "the admin token reads them."
        ),
    )
    traefik_http_entrypoint: str = Field(
        default="websecure", description="Traefik entry point the `http` routes attach to."
    )
    traefik_tcp_entrypoint: str = Field(
        default="tcptls", description="Traefik entry point the `tcp-tls` routes attach to."
    )
    traefik_cert_resolver: str | None = Field(
        default=None,
        description=(
            "Traefik certificate resolver for the routes (e.g. an ACME DNS-challenge resolver issuing "
            "*.<domain>); unset: Traefik's default certificate (a wildcard from its file provider)."
        ),
    )

    # --- limits (each overridable per challenge where noted) ---------------------
    per_owner_limit: int = Field(
        default=1,
        ge=1,
        description="Live instances per owner, across challenges (per challenge: limits.per_owner).",
    )
    capacity: int = Field(default=500, ge=1, description="Live instances in all, across owners.")
    capacity_memory_mib: int | None = Field(
        default=None,
        ge=16,
        description=(
            "Cap on the memory limits (resources.memory_mib) of all containers of occupying instances, "
            "summed, MiB. Unset: no cap."
        ),
    )
    capacity_cpus: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Cap on the CPU limits (resources.cpus) of all containers of occupying instances, summed, "
            "cores. Unset: no cap."
        ),
    )
    cooldown_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Minimum time between two starts or reverts of one owner, seconds "
            "(per challenge: limits.cooldown_seconds)."
        ),
    )
    extension_interval_seconds: float = Field(
        default=300.0,
        ge=0,
        description=(
            "Minimum time between two extensions of one instance, seconds "
            "(per challenge: limits.extension_interval_seconds)."
        ),
    )

    # --- timings ----------------------------------------------------------------
    ready_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a start waits for the exposed ports to accept connections, seconds.",
    )
    reaper_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="Period of the expiry loop, seconds."
    )
    reconcile_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Period of the full reconcile (orphaned engine objects, lost instances), seconds.",
    )
    lost_policy: Literal["mark", "recreate"] = Field(
        default="mark",
        description=(
            "What the reconcile does with a running instance whose containers vanished: `mark` it lost "
            "(its slot is freed; the owner starts a new one) or `recreate` its containers in place "
            "(same id, deadline, ports and flag)."
        ),
    )
    lost_after_seconds: float = Field(
        default=20.0,
        ge=0,
        description=(
            "A running instance with fewer running containers than its spec is marked lost once it has "
            "been so this long, with no healthy reconcile between (an engine restart is no loss), seconds."
        ),
    )
    pool_parallel_starts: int = Field(
        default=4,
        ge=1,
        le=64,
        description=(
            "Warm-pool starts (and drains) one replica runs at once; the pool filler ticks with the "
            "reaper's interval."
        ),
    )
    orphan_grace_seconds: float = Field(
        default=120.0,
        ge=0,
        description="Age before an engine object with no live record is removed, seconds.",
    )
    replica_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description=(
            "A replica (service process) whose heartbeat is older than this is dead: another "
            "replica fails the starts it left unfinished and removes their containers, seconds."
        ),
    )

    # --- HTTP -------------------------------------------------------------------
    max_body_bytes: int = Field(default=65536, ge=1024, description="Largest request body accepted, bytes.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")

    @property
    def swarm_engines(self) -> dict[str, str]:
        """INSTANCER_SWARM_NODE_ENGINES as {node host name: engine URL}."""
        return parse_engines(self.swarm_node_engines)

    @property
    def swarm_denied(self) -> tuple[str, ...]:
        """INSTANCER_SWARM_NODE_DENY as CIDRs."""
        return parse_cidrs(self.swarm_node_deny)

    @property
    def flag_key_primary(self) -> str:
        return parse_keys(self.flag_keys.get_secret_value())[0][0]

    @field_validator("routes_token", "metrics_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An optional token set to nothing (`${VAR:-}` in a compose file) is not set."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.port_range_end < self.port_range_start:
            raise ValueError("INSTANCER_PORT_RANGE_END must not be below INSTANCER_PORT_RANGE_START")
        parse_cidrs(self.swarm_node_deny, name="INSTANCER_SWARM_NODE_DENY")
        for name in ("platform_token", "admin_token", "routes_token", "metrics_token"):
            token = getattr(self, name)
            if token is not None and len(token.get_secret_value()) < 16:
                raise ValueError(f"INSTANCER_{name.upper()} must be at least 16 characters")
        given = (self.platform_token, self.admin_token, self.routes_token, self.metrics_token)
        tokens = [t.get_secret_value() for t in given if t]
        if len(tokens) != len(set(tokens)):
            raise ValueError(
                "INSTANCER_PLATFORM_TOKEN, INSTANCER_ADMIN_TOKEN, INSTANCER_ROUTES_TOKEN and "
                "INSTANCER_METRICS_TOKEN must differ"
            )
        if self.replica_timeout_seconds < 3 * self.reaper_interval_seconds:
            raise ValueError(
                "INSTANCER_REPLICA_TIMEOUT_SECONDS must be at least 3 reaper intervals, or live replicas "
                "would be taken for dead between two heartbeats"
            )
        try:
            parse_keys(self.flag_keys.get_secret_value())
        except KeyringError as exc:
            raise ValueError(f"INSTANCER_FLAG_KEYS: {exc}") from exc
        try:
            parse_engines(self.swarm_node_engines)
        except ValueError as exc:
            raise ValueError(f"INSTANCER_SWARM_NODE_ENGINES: {exc}") from exc
        return self


def parse_engines(text: str) -> dict[str, str]:
    """`name=url,name=url` (the INSTANCER_SWARM_NODE_ENGINES syntax) into a map; names unique."""
    engines: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, url = (part.strip() for part in entry.partition("="))
        if not sep or not name or not url:
            raise ValueError(f"{entry!r} is not NODE=ENGINE_URL")
        if name in engines:
            raise ValueError(f"node {name!r} is listed twice")
        engines[name] = url
    return engines


def parse_cidrs(text: str, *, name: str = "the address list") -> tuple[str, ...]:
    """Comma-separated IPv4 networks (`203.0.113.0/24`, or an address) as iptables prints
    them; raises ValueError naming the entry that is not one."""
    cidrs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            network = ipaddress.IPv4Network(item, strict=False)
        except ValueError:
            raise ValueError(f"{name}: {item!r} is not an IPv4 address or CIDR") from None
        cidrs.append(str(network) if network.prefixlen < 32 else f"{network.network_address}/32")
    return tuple(cidrs)
