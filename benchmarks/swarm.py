"""Swarm services as a start method (what ctfd-whale does), and the swarm the run may need.

A start is the SDK's equivalent of `docker service create` with one replica and a host-mode
published port (the engines here have no IPVS: no ingress mesh, no VIPs, so `dnsrr`), the
same image and limits as the baseline, timed from the create call until the task's
container accepts on its address and on the published port. A stop removes the service
and waits until its container is gone.

The service joins no network of its own: its task sits on the engine's default bridge, as
ctfd-whale's single-image instances share one network. The baseline and the service create
a network per instance (isolation), which the Swarm figures therefore do not pay for.

The image is given by its id: a swarm task then never tries a registry (there is none
here), whether or not the engine has DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1.

`swarm_session` uses the engine's swarm when it is a manager. When the engine is in no
swarm it initialises a single-node one only if asked to (`--swarm-init`), on loopback with
its own address pool, and leaves it at the end of the session, so that a shared engine is
in swarm mode only while the swarm part runs. It creates no overlay network (a host-mode
port needs none; `swarm init` itself makes `ingress`, which leaving removes).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import docker.types
from common import RUN_LABEL, wait_accepts

#: not the engine's local pool (10.201.0.0/16, daemon.json) nor anything else here
SWARM_ADDRESS_POOL = "10.203.0.0/16"
_FAILED = {"failed", "rejected", "orphaned", "remove", "shutdown"}
_GWBRIDGE = "docker_gwbridge"


class SwarmService:
    def __init__(self, api: docker.APIClient, run_id: str, *, image: str, port: int) -> None:
        self.api, self.run_id, self.port = api, run_id, port
        self.image_id = api.inspect_image(image)["Id"]

    def start(self, n: int) -> tuple[float, Any]:
        t0 = time.perf_counter()
        service = self.api.create_service(
            self._template(),
            name=f"bench-{self.run_id}-{n}-{secrets.token_hex(3)}",
            labels={RUN_LABEL: self.run_id},
            endpoint_spec=docker.types.EndpointSpec(
                mode="dnsrr", ports=[{"Protocol": "tcp", "TargetPort": self.port, "PublishMode": "host"}]
            ),
        )
        try:
            task = self._running_task(service["ID"])
            container = self.api.inspect_container(task["Status"]["ContainerStatus"]["ContainerID"])
            address = next(iter(container["NetworkSettings"]["Networks"].values()))["IPAddress"]
            wait_accepts(address, self.port)
            wait_accepts("127.0.0.1", task["Status"]["PortStatus"]["Ports"][0]["PublishedPort"])
        except Exception:
            self.stop(service["ID"])
            raise
        return time.perf_counter() - t0, service["ID"]

    def _template(self) -> docker.types.TaskTemplate:
        spec = docker.types.ContainerSpec(
            self.image_id, env={"FLAG": "flag{bench}"}, cap_drop=["ALL"], labels={RUN_LABEL: self.run_id}
        )
        limits = docker.types.Resources(cpu_limit=500_000_000, mem_limit=256 * 2**20)
        return docker.types.TaskTemplate(spec, resources=limits)

    def _running_task(self, service_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll the service's tasks (5 ms at first, up to every 50 ms) until one runs."""
        deadline, pause = time.monotonic() + timeout, 0.005
        while time.monotonic() < deadline:
            for task in self.api.tasks(filters={"service": service_id}):
                state = task["Status"]["State"]
                if state == "running" and task["Status"].get("ContainerStatus", {}).get("ContainerID"):
                    return task
                if state in _FAILED:
                    raise RuntimeError(f"swarm task {state}: {task['Status'].get('Err', '')}")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        raise TimeoutError(f"service {service_id} had no running task after {timeout:g} s")

    def stop(self, handle: Any) -> float:
        t0 = time.perf_counter()
        self.api.remove_service(handle)
        self._wait_gone(handle)
        return time.perf_counter() - t0

    def _wait_gone(self, service_id: str, timeout: float = 60) -> None:
        selector = {"label": [f"com.docker.swarm.service.id={service_id}"]}
        deadline, pause = time.monotonic() + timeout, 0.005
        while self.api.containers(all=True, filters=selector):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the container of service {service_id} outlived {timeout:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


@dataclass
class Session:
    """The swarm a run uses, or why it has none."""

    skipped: str | None = None
    initialised: bool = False
    errors: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        pool = SWARM_ADDRESS_POOL if self.initialised else "the engine's own"
        return {"initialised_by_benchmark": self.initialised, "address_pool": pool}


@contextmanager
def swarm_session(api: docker.APIClient, run_id: str, *, init: bool) -> Iterator[Session]:
    """The engine's swarm if it is a manager; a single-node swarm of our own with `init`
    (left at the end); otherwise a session saying why not. The run's services are removed
    at the end either way."""
    state = api.info()["Swarm"]
    if state.get("LocalNodeState") == "active":
        manager = bool(state.get("ControlAvailable"))
        try:
            yield Session(
                skipped=None if manager else "skipped: this engine is a swarm worker, not a manager"
            )
        finally:
            if manager:
                _remove_services(api, run_id)
        return
    if not init:
        yield Session(
            skipped="skipped: engine not in swarm mode (pass --swarm-init to make a swarm for the run)"
        )
        return
    had_gwbridge = bool(api.networks(names=[_GWBRIDGE]))
    try:
        api.init_swarm(
            advertise_addr="127.0.0.1",
            listen_addr="127.0.0.1:2377",
            default_addr_pool=[SWARM_ADDRESS_POOL],
            subnet_size=24,
        )
    except docker.errors.APIError as exc:  # e.g. someone else made a swarm meanwhile: not ours to leave
        why = f"could not initialise a swarm: {exc.explanation}"
        yield Session(skipped=f"skipped: {why}", errors=[why])
        return
    session = Session(initialised=True)
    try:
        yield session
    finally:
        _remove_services(api, run_id)
        _leave(api, session, had_gwbridge)


def _remove_services(api: docker.APIClient, run_id: str) -> None:
    for service in api.services(filters={"label": f"{RUN_LABEL}={run_id}"}):
        with suppress(docker.errors.NotFound):
            api.remove_service(service["ID"])


def _leave(api: docker.APIClient, session: Session, had_gwbridge: bool) -> None:
    """Leave the swarm, and remove the gateway bridge that swarm mode made (if it did, and
    nothing else uses it)."""
    api.leave_swarm(force=True)
    if had_gwbridge:
        return
    for network in api.networks(names=[_GWBRIDGE]):
        if not api.inspect_network(network["Id"]).get("Containers"):
            try:
                api.remove_network(network["Id"])
            except docker.errors.APIError as exc:
                session.errors.append(f"could not remove {_GWBRIDGE}: {exc}")
