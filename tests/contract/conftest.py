"""The contract suite: the same tests against every real backend, `docker` (the host's engine)
and `swarm` (a one-node swarm of the suite's own, tests/swarm/harness.py).

Each test gets an `engine`: it makes services wired to its backend, and looks at what that
backend holds (containers or services, networks, secrets) and inside an instance's containers,
so that the tests themselves never name a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import docker
import pytest

from instancer import bootstrap
from instancer.bootstrap import Service
from instancer.settings import Settings
from tests.conftest import docker_host
from tests.integration.helpers import engine_objects
from tests.swarm.harness import Swarm

MakeService = Callable[..., Service]


@dataclass(frozen=True)
class Objects:
    """What an engine holds of a deployment (or of one instance): ids of its containers (a
    service counts as one on a swarm) and of its networks."""

    containers: list[str]
    networks: list[str]


class Engine(Protocol):
    name: str
    #: how long the engine itself takes to remove an instance, beyond instancer's own work
    removal_seconds: float

    def service(self, **overrides: Any) -> Service: ...
    def objects(self, service: Service, instance_id: str | None = None) -> Objects: ...
    def leftovers(self, service: Service) -> list[str]:
        """Everything of the deployment still on the engine (on every node), by name."""
        ...

    def exec(self, service: Service, instance_id: str, container: str, *cmd: str) -> str:
        """Run a command in one of the instance's containers (by spec name); its output."""
        ...

    def address(self, service: Service, instance_id: str, container: str) -> str:
        """The container's address on its instance's own network."""
        ...


@dataclass
class DockerEngine:
    make: MakeService
    name: str = "docker"
    removal_seconds: float = 0.0
    made: list[Service] = field(default_factory=list)

    def service(self, **overrides: Any) -> Service:
        service = self.make(**overrides)
        self.made.append(service)
        return service

    def objects(self, service: Service, instance_id: str | None = None) -> Objects:
        containers, networks = engine_objects(service, instance_id)
        return Objects([c["Id"] for c in containers], [n["Id"] for n in networks])

    def leftovers(self, service: Service) -> list[str]:
        containers, networks = engine_objects(service)
        return [c["Names"][0] for c in containers] + [n["Name"] for n in networks]

    def _container(self, service: Service, instance_id: str, container: str) -> dict[str, Any]:
        (found,) = [
            c
            for c in engine_objects(service, instance_id)[0]
            if c["Labels"]["instancer.container"] == container and c["State"] == "running"
        ]
        return found

    def exec(self, service: Service, instance_id: str, container: str, *cmd: str) -> str:
        api = docker.APIClient(base_url=docker_host(), version="auto")
        run = api.exec_create(self._container(service, instance_id, container)["Id"], list(cmd))
        return str(api.exec_start(run["Id"]).decode())

    def address(self, service: Service, instance_id: str, container: str) -> str:
        info = self._container(service, instance_id, container)
        (network,) = info["NetworkSettings"]["Networks"].values()
        return str(network["IPAddress"])


@dataclass
class SwarmEngine:
    make: MakeService
    make_settings: Callable[..., Settings]
    swarm: Swarm
    name: str = "swarm"
    # A node kills a removed task's container once Swarm's gossip has converged (a fixed 2 s in
    # the engine), then reports it; a wave of removals on one node queues.
    removal_seconds: float = 5.0
    made: list[Service] = field(default_factory=list)

    def service(self, **overrides: Any) -> Service:
        """A service wired as `INSTANCER_BACKEND=swarm` wires it, to this swarm's manager."""
        values = {"docker_host": self.swarm.manager.url, **overrides}
        settings = self.make_settings(backend="swarm", **values)
        values.setdefault("deployment", settings.deployment)
        service = self.make(backend=bootstrap.backend_of(settings), **values)
        self.made.append(service)
        return service

    def _selector(self, service: Service, instance_id: str | None) -> dict[str, list[str]]:
        wanted = [f"instancer.deployment={service.settings.deployment}"]
        if instance_id:
            wanted.append(f"instancer.instance={instance_id}")
        return {"label": wanted}

    def objects(self, service: Service, instance_id: str | None = None) -> Objects:
        api = self.swarm.manager.api()
        selector = self._selector(service, instance_id)
        return Objects(
            [s["ID"] for s in api.services(filters=selector)],
            [n["Id"] for n in api.networks(filters=selector)],
        )

    def leftovers(self, service: Service) -> list[str]:
        api = self.swarm.manager.api()
        selector = self._selector(service, None)
        found = [s["Spec"]["Name"] for s in api.services(filters=selector)]
        found += [n["Name"] for n in api.networks(filters=selector)]
        found += [s["Spec"]["Name"] for s in api.secrets(filters=selector)]
        deployment = f"instancer.deployment={service.settings.deployment}"
        for node in self.swarm.nodes:  # the containers the nodes ran, once they have removed them
            found += [c["Names"][0] for c in node.api().containers(all=True, filters={"label": deployment})]
        return found

    def _task(self, service: Service, instance_id: str, container: str) -> dict[str, Any]:
        api = self.swarm.manager.api()
        selector = self._selector(service, instance_id)
        selector["label"].append(f"instancer.container={container}")
        (task,) = [
            t
            for t in api.tasks(filters={**selector, "desired-state": "running"})
            if t["Status"]["State"] == "running"
        ]
        return task

    def exec(self, service: Service, instance_id: str, container: str, *cmd: str) -> str:
        task = self._task(service, instance_id, container)
        (node,) = [n for n in self.swarm.nodes if self.swarm.node_ids[n.name] == task["NodeID"]]
        api = node.api()
        run = api.exec_create(task["Status"]["ContainerStatus"]["ContainerID"], list(cmd))
        return str(api.exec_start(run["Id"]).decode())

    def address(self, service: Service, instance_id: str, container: str) -> str:
        (attachment,) = self._task(service, instance_id, container)["NetworksAttachments"]
        return str(attachment["Addresses"][0].split("/")[0])


@pytest.fixture(params=["docker", "swarm"])
def engine(
    request: pytest.FixtureRequest,
    docker_ready: None,
    make_service: MakeService,
    make_settings: Callable[..., Settings],
) -> Iterator[Engine]:
    """A backend under contract. Whatever its services' deployments hold afterwards is removed."""
    made: DockerEngine | SwarmEngine
    if request.param == "swarm" and request.node.callspec.params.get("db_url") == "postgresql":
        pytest.skip("the swarm backend runs on SQLite only: the store is the same, and proved on docker")
    if request.param == "docker":
        made = DockerEngine(make_service)
    else:
        made = SwarmEngine(make_service, make_settings, request.getfixturevalue("swarm1"))
    yield made
    for service in made.made:
        service.reaper.stop()
        if isinstance(made, SwarmEngine):  # a swarm takes seconds per removal: do not wait
            made.swarm.remove_deployment(service.settings.deployment)
            continue
        for instance_id in {o.instance_id for o in service.backend.list_managed()}:
            service.backend.stop(instance_id)
