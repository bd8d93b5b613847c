"""The single-host backend: one Docker engine, one private bridge network per instance.

Each network's Linux bridge is named by `bridges.bridge_name`, whose prefix is what the
host firewall (`firewall.py`, applied apart from this module) matches to isolate it.

Uses docker-py's low-level `APIClient` (no implicit inspects after create, no implicit
pulls). Every docker/requests exception is translated at this module's edge, once, into the
domain's backend errors (by `dockerapi.translate_errors`, which the swarm backend shares).
"""

from __future__ import annotations

import io
import logging
import posixpath
import tarfile
import time
from datetime import UTC, datetime
from typing import Any

import docker
import docker.types

from ..domain.errors import (
    BackendRejected,
    ContainerUnhealthy,
)
from ..domain.ports import ContainerPlan, FileInject, Launched, LaunchPlan, Observed, RouteTarget
from ..domain.spec import Healthcheck
from . import bridges, dockerapi, labels
from .dockerapi import translate_errors

log = logging.getLogger(__name__)

# Bounded logs: a chatty challenge must not fill the engine's disk.
_LOG_CONFIG = docker.types.LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"})


class DockerBackend:
    name = "docker"
    #: a proxy on this host reaches containers on their bridge address: no host port needed
    proxied_ports_need_host_ports = False

    def __init__(
        self,
        *,
        base_url: str,
        deployment: str,
        publish_address: str = "0.0.0.0",  # noqa: S104 - players connect from anywhere
        timeout_seconds: float = 30.0,
        pool_size: int = 64,
    ) -> None:
        self._base_url = base_url
        self._deployment = deployment
        self._publish_address = publish_address
        self._timeout = timeout_seconds
        self._pool_size = pool_size
        self._client: docker.APIClient | None = None

    @property
    def api(self) -> docker.APIClient:
        """The engine client, created on first use so the service starts without an engine."""
        if self._client is None:
            self._client = dockerapi.client(self._base_url, self._timeout, self._pool_size)
        return self._client

    def ping(self) -> None:
        with translate_errors("ping"):
            self.api.ping()

    def start(self, plan: LaunchPlan) -> Launched:
        network = f"inst-{plan.instance_id}-{plan.generation}"
        bridge = bridges.bridge_name(
            deployment=self._deployment,
            instance_id=plan.instance_id,
            generation=plan.generation,
            egress=plan.egress,
        )
        with translate_errors("create the network"):
            self.api.create_network(
                network,
                driver="bridge",
                # The bridge's name prefix is what the host firewall's static rules match.
                options={bridges.BRIDGE_NAME_OPTION: bridge},
                labels=labels.for_network(plan, self._deployment),
                check_duplicate=True,
            )
        return self._run_in_order(plan, network)

    def _run_in_order(self, plan: LaunchPlan, network: str) -> Launched:
        """Start the containers in the plan's order; before each, wait until the dependencies
        it has that carry a healthcheck are healthy (one deadline for the whole start)."""
        deadline = time.monotonic() + plan.healthy_timeout_seconds
        checked = {c.name for c in plan.containers if c.healthcheck is not None}
        started: dict[str, str] = {}  # name -> container id
        healthy: set[str] = set()
        probes: list[tuple[str, int]] = []
        targets: list[RouteTarget] = []
        for container in plan.containers:
            for dependency in sorted((set(container.depends_on) & checked) - healthy):
                self._wait_healthy(dependency, started[dependency], deadline, plan.healthy_timeout_seconds)
                healthy.add(dependency)
            started[container.name], ip = self._run_container(plan, container, network)
            probes += [(ip, port) for port in container.exposed]
            # The proxy runs on this host (or in its network namespace) and reaches the bridge.
            targets += [RouteTarget(container.name, port, f"{ip}:{port}") for port in container.exposed]
        return Launched(probe_targets=tuple(probes), targets=tuple(targets))

    def _run_container(self, plan: LaunchPlan, c: ContainerPlan, network: str) -> tuple[str, str]:
        """Create and start one hardened container; return its id and its address on the
        instance network."""
        api = self.api
        host_config = api.create_host_config(
            port_bindings={f"{b.container_port}/tcp": (self._publish_address, b.host_port) for b in c.ports},
            mem_limit=f"{c.memory_mib}m",
            memswap_limit=f"{c.memory_mib}m",  # no swap beyond the memory limit
            nano_cpus=int(c.cpus * 1e9),
            pids_limit=c.pids,
            cap_drop=["ALL"],
            cap_add=list(c.cap_add) or None,
            security_opt=["no-new-privileges:true"],
            privileged=False,
            network_mode=network,
            log_config=_LOG_CONFIG,
            # A crashed challenge process, or an engine restart, brings the instance back by itself.
            restart_policy={"Name": "unless-stopped"},
        )
        with translate_errors("create the container"):
            created = api.create_container(
                image=c.image,
                command=list(c.command) if c.command is not None else None,
                name=f"inst-{plan.instance_id}-{plan.generation}-{c.name}",
                hostname=c.name,
                environment=c.env,
                labels=labels.for_container(plan, self._deployment, c.name),
                ports=[(port, "tcp") for port in c.exposed],
                host_config=host_config,
                networking_config=api.create_networking_config(
                    # The stub says one EndpointConfig; the SDK takes {network name: EndpointConfig}.
                    {network: api.create_endpoint_config(aliases=[c.name])}  # type: ignore[arg-type]
                ),
                healthcheck=_healthcheck(c.healthcheck),
            )
        for f in c.files:
            with translate_errors(f"write {f.path} into the container"):
                api.put_archive(created["Id"], posixpath.dirname(f.path) or "/", _tar_of(f))
        with translate_errors("start the container"):
            api.start(created["Id"])
            info = api.inspect_container(created["Id"])
        return created["Id"], str(info["NetworkSettings"]["Networks"][network]["IPAddress"])

    def _wait_healthy(self, name: str, container_id: str, deadline: float, timeout: float) -> None:
        """Poll a dependency's health (one inspect each time, 50 ms apart at first, backing off
        to 500 ms) until it is healthy. An unhealthy one, or the deadline, fails the start."""
        pause = 0.05
        while (status := self._health(container_id)) != "healthy":
            if status == "unhealthy":
                raise ContainerUnhealthy(
                    f"container {name!r} turned unhealthy (its healthcheck failed) before the "
                    "containers that depend on it could start",
                    container=name,
                )
            if time.monotonic() >= deadline:
                raise ContainerUnhealthy(
                    f"container {name!r} was not healthy within {timeout:g} s", container=name
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def _health(self, container_id: str) -> str:
        """The engine's health status: `starting`, `healthy` or `unhealthy`."""
        with translate_errors("inspect a container's health"):
            state = self.api.inspect_container(container_id)["State"]
        return str((state.get("Health") or {}).get("Status", "starting"))

    def probe(self, launched: Launched) -> bool:
        return all(dockerapi.accepts(host, port) for host, port in launched.probe_targets)

    def stop(self, instance_id: str) -> None:
        selector = {"label": [f"{labels.INSTANCE}={instance_id}", f"{labels.DEPLOYMENT}={self._deployment}"]}
        with translate_errors("list the instance's containers"):
            containers = self.api.containers(all=True, filters=selector)
        for container in containers:
            self._ignore_gone(self.api.remove_container, container["Id"], force=True, v=True)
        with translate_errors("list the instance's networks"):
            networks = self.api.networks(filters=selector)
        for network in networks:
            self._ignore_gone(self.api.remove_network, network["Id"])

    def _ignore_gone(self, call: Any, *args: Any, **kwargs: Any) -> None:
        """Removing what is already gone (or already being removed) is success."""
        try:
            with translate_errors("remove an object"):
                call(*args, **kwargs)
        except BackendRejected as exc:
            if dockerapi.gone(exc):
                return
            raise

    def list_managed(self) -> list[Observed]:
        selector = {"label": [f"{labels.DEPLOYMENT}={self._deployment}"]}
        with translate_errors("list managed objects"):
            containers = self.api.containers(all=True, filters=selector)
            networks = self.api.networks(filters=selector)
        observed = [
            Observed(
                kind="container",
                name=c["Names"][0].lstrip("/"),
                instance_id=c["Labels"][labels.INSTANCE],
                created_at=datetime.fromtimestamp(c["Created"], UTC),
                running=c["State"] == "running",
            )
            for c in containers
        ]
        observed += dockerapi.observed_networks(networks)
        return observed


def _healthcheck(check: Healthcheck | None) -> dict[str, Any] | None:
    """The engine's healthcheck of a container (durations in nanoseconds); None keeps the image's."""
    if check is None:
        return None
    return {
        "Test": ["CMD", *check.command],  # exec form: no shell is assumed in the image
        "Interval": _nanoseconds(check.interval_seconds),
        "Timeout": _nanoseconds(check.timeout_seconds),
        "StartPeriod": _nanoseconds(check.start_period_seconds),
        "Retries": check.retries,
    }


def _nanoseconds(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


def _tar_of(f: FileInject) -> bytes:
    """A one-file tar archive owned by root with the file's mode, for `put_archive`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(posixpath.basename(f.path))
        info.size, info.mode, info.mtime = len(f.content), f.mode, int(time.time())
        tar.addfile(info, io.BytesIO(f.content))
    return buffer.getvalue()
