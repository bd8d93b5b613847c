"""The Swarm backend: instances run as Swarm services on a Docker Swarm, behind the same `Backend`
port as the single-host backend, with the same labels and the same behaviour where players
and the use cases can tell.

Per instance generation, through the manager's API:

- an overlay network `inst-<id>-<generation>`, neither attachable (nothing joins it from
  outside) nor internal (host-mode published ports need the node's gateway bridge, which an
  internal network does not get; egress is as on the single host);
- one Docker secret per flag file, mounted read-only (0444, root) at the spec's path;
- one service per container, `inst-<first 16 of id>-<generation>-<name>` (Swarm names are at
  most 63 characters): one replica; endpoint mode `dnsrr` (no IPVS: service VIPs do not
  answer there); the container's name as its host name and network alias; every exposed port
  published in host mode on its host port from the pool (a proxy on the manager reaches a
  proxied port through it too); limits from the spec and reservations a share of them;
  capabilities dropped; restarted on failure at most `RESTART_ATTEMPTS` times.

Placement: Swarm picks the node of the first container (its spread strategy, the spec's
placement constraints, resources; drained, paused and down nodes get nothing). The backend
then pins that service to its node (`node.id==...`: Swarm does not restart a task whose node
still satisfies changed constraints) and starts the other containers pinned there too. So an
instance lives on one node, its restarts stay there and Swarm never moves it behind
instancer's back: a node that goes down or is drained leaves the instance's tasks pending, and
the reconcile reports it lost or recreates it elsewhere (INSTANCER_LOST_POLICY). A revert
prefers the node the instance ran on, so its connection info stays the same.

Every docker/requests exception is translated at this module's edge (`dockerapi`); none
crosses it. This module must not import the single-host backend.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.types

from ..domain.errors import BackendRejected, BackendUnavailable, ImageMissing, PortUnavailable
from ..domain.ports import ContainerPlan, Launched, LaunchPlan, Observed, RouteTarget
from . import dockerapi, labels
from .dockerapi import translate_errors

log = logging.getLogger(__name__)

#: a failed container is restarted in place this many times, then the instance is short
RESTART_ATTEMPTS = 3
#: node label giving the name players use to reach the node (default: its address)
PUBLIC_HOST_LABEL = "instancer.public-host"
_MIB = 1024 * 1024
_FINISHED = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})
_IMAGE_TROUBLE = ("no such image", "pull access denied", "repository does not exist", "manifest unknown")
_LOG_DRIVER = docker.types.DriverConfig("json-file", {"max-size": "1m", "max-file": "1"})
_REMEMBERED_NODES = 1024


@dataclass(frozen=True)
class SwarmNode:
    id: str
    hostname: str
    #: the node's address in the swarm: where the manager (and a proxy on it) reaches its ports
    address: str
    #: what players connect to: the node's `instancer.public-host` label, or its address
    public_host: str
    state: str  # ready | down | unknown | disconnected
    availability: str  # active | pause | drain
    labels: dict[str, str]

    @property
    def takes_new(self) -> bool:
        return self.state == "ready" and self.availability == "active"


@dataclass(frozen=True)
class _Service:
    """A service as this backend created it: an update must send exactly this back."""

    id: str
    name: str
    labels: dict[str, str]
    task: docker.types.TaskTemplate
    endpoint: docker.types.EndpointSpec


class _Unplaceable(Exception):
    """Swarm found no node for a task (constraints, resources, ports): its own words."""


class SwarmBackend:
    name = "swarm"
    proxied_ports_need_host_ports = True

    def __init__(
        self,
        *,
        base_url: str,
        deployment: str,
        timeout_seconds: float = 30.0,
        start_timeout_seconds: float = 60.0,
        stop_wait_seconds: float = 20.0,
        reserve_fraction: float = 0.25,
        pool_size: int = 64,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base_url = base_url
        self._deployment = deployment
        self._timeout = timeout_seconds
        self._start_timeout = start_timeout_seconds
        self._stop_wait = stop_wait_seconds
        self._reserve = reserve_fraction
        self._pool_size = pool_size
        self._sleep = sleep
        # Any: types-docker leaves the SDK's swarm calls (services, tasks, ...) untyped.
        self._client: Any = None
        #: the node each recently stopped instance ran on: a revert (stop, then start) goes back there
        self._last_node: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def api(self) -> Any:
        """The manager's client, created on first use so the service starts without an engine."""
        if self._client is None:
            self._client = dockerapi.client(self._base_url, self._timeout, self._pool_size)
        return self._client

    def ping(self) -> None:
        with translate_errors("reach the Swarm manager"):
            try:
                self.api.inspect_swarm()
            except docker.errors.APIError as exc:
                if "not a swarm manager" in str(exc.explanation).lower():
                    raise BackendUnavailable(
                        f"the engine at {self._base_url} is not a Swarm manager (INSTANCER_DOCKER_HOST)"
                    ) from exc
                raise

    # --- nodes ---------------------------------------------------------------------

    def nodes(self) -> dict[str, SwarmNode]:
        """Every node of the swarm, by id (one call)."""
        with translate_errors("list the swarm's nodes"):
            return {n["ID"]: _node(n) for n in self.api.nodes()}

    # --- start ---------------------------------------------------------------------

    def start(self, plan: LaunchPlan) -> Launched:
        nodes = self.nodes()
        # A revert (or a retry on other ports) follows a stop: the old containers hold their
        # host ports until their node has killed them, a few seconds after their removal.
        self._wait_gone(self._selector(plan.instance_id), nodes)
        network = self._create_network(plan)
        secrets = {c.name: self._secrets(plan, c) for c in plan.containers}
        first, *rest = plan.containers
        prefer = self._previous_node(plan, nodes)
        service, node_id = self._place(plan, first, network, secrets[first.name], prefer=prefer, nodes=nodes)
        services = {service} | {
            self._create_service(plan, c, network, secrets[c.name], node_id).id for c in rest
        }
        self._wait_running(plan, nodes, services)
        node = nodes.get(node_id) or self.nodes().get(node_id)
        if node is None:
            raise BackendUnavailable("the node the swarm chose for the instance has left the swarm")
        return _launched(plan, node)

    def _create_network(self, plan: LaunchPlan) -> str:
        """The instance's own overlay network: not attachable (nothing joins it from outside),
        not internal (host-mode ports need the node's gateway bridge)."""
        network = f"inst-{plan.instance_id}-{plan.generation}"
        with translate_errors("create the overlay network"):
            self.api.create_network(
                network,
                driver="overlay",
                labels=labels.for_network(plan, self._deployment),
                attachable=False,
                internal=False,
                check_duplicate=True,
            )
        return network

    def _place(
        self,
        plan: LaunchPlan,
        c: ContainerPlan,
        network: str,
        secrets: list[docker.types.SecretReference],
        *,
        prefer: str | None,
        nodes: dict[str, SwarmNode],
    ) -> tuple[str, str]:
        """Start the first container where Swarm puts it (or on `prefer`, if it can go there),
        then pin it to that node; returns the service's and the node's ids."""
        reason = ""
        for pin in [prefer, None] if prefer else [None]:
            service = self._create_service(plan, c, network, secrets, pin)
            try:
                node_id = self._wait_placed(plan, service.id, nodes)
            except _Unplaceable as exc:
                reason = str(exc)
                self._remove(self.api.remove_service, service.id)
                continue
            if pin is None:
                self._pin(service, node_id)
            return service.id, node_id
        raise _unplaceable(reason)

    def _previous_node(self, plan: LaunchPlan, nodes: dict[str, SwarmNode]) -> str | None:
        with self._lock:
            node_id = self._last_node.pop(plan.instance_id, None)
        node = nodes.get(node_id or "")
        return node.id if node is not None and node.takes_new else None

    def _secrets(self, plan: LaunchPlan, c: ContainerPlan) -> list[docker.types.SecretReference]:
        """One secret per file to put into the container (the flag file), mounted read-only."""
        refs = []
        for n, f in enumerate(c.files):
            name = f"{_service_name(plan, c)}-{n}"
            with translate_errors(f"create the secret for {f.path}"):
                created = self.api.create_secret(
                    name, f.content, labels=labels.for_container(plan, self._deployment, c.name)
                )
            ref = docker.types.SecretReference(
                created["ID"], name, filename=f.path, uid="0", gid="0", mode=f.mode
            )
            refs.append(ref)
        return refs

    def _create_service(
        self,
        plan: LaunchPlan,
        c: ContainerPlan,
        network: str,
        secrets: list[docker.types.SecretReference],
        node_id: str | None,
    ) -> _Service:
        service_labels = labels.for_container(plan, self._deployment, c.name)
        task = self._task(plan, c, network, secrets, node_id)
        # Published port -> (target, protocol, mode); the SDK wants the published port as an int.
        ports: dict[Any, Any] = {b.host_port: (b.container_port, "tcp", "host") for b in c.ports}
        endpoint = docker.types.EndpointSpec(mode="dnsrr", ports=ports)
        name = _service_name(plan, c)
        with translate_errors("create the service"):
            created = self.api.create_service(task, name=name, labels=service_labels, endpoint_spec=endpoint)
        return _Service(str(created["ID"]), name, service_labels, task, endpoint)

    def _task(
        self,
        plan: LaunchPlan,
        c: ContainerPlan,
        network: str,
        secrets: list[docker.types.SecretReference],
        node_id: str | None,
    ) -> docker.types.TaskTemplate:
        """What each task of the service runs: hardened, limited, labelled, on the instance's
        network under its own name, restarted in place a few times, pinned when `node_id`."""
        env: dict[str, str | bytes | None] = dict(c.env)
        spec = docker.types.ContainerSpec(
            image=c.image,
            args=list(c.command) if c.command is not None else None,  # replaces CMD, keeps ENTRYPOINT
            hostname=c.name,
            env=env,
            labels=labels.for_container(plan, self._deployment, c.name),
            secrets=secrets or None,
            cap_drop=["ALL"],
            cap_add=list(c.cap_add) or None,
            stop_grace_period=0,  # removal kills at once, like `docker rm -f` on one host
        )
        constraints = [*plan.constraints, *([f"node.id=={node_id}"] if node_id else [])]
        return docker.types.TaskTemplate(
            container_spec=spec,
            resources=self._resources(c),
            restart_policy=docker.types.RestartPolicy(
                "on-failure", delay=1_000_000_000, max_attempts=RESTART_ATTEMPTS
            ),
            placement=docker.types.Placement(constraints=constraints),
            log_driver=_LOG_DRIVER,
            networks=[docker.types.NetworkAttachmentConfig(network, aliases=[c.name])],
        )

    def _resources(self, c: ContainerPlan) -> docker.types.Resources:
        """Limits from the spec (the SDK's helper knows no pids limit, the API does);
        reservations, what the scheduler counts, a share of them."""
        limits = {"NanoCPUs": int(c.cpus * 1e9), "MemoryBytes": c.memory_mib * _MIB, "Pids": c.pids}
        resources = docker.types.Resources()
        resources["Limits"] = limits
        if self._reserve > 0:
            resources["Reservations"] = {
                "NanoCPUs": int(limits["NanoCPUs"] * self._reserve),
                "MemoryBytes": int(limits["MemoryBytes"] * self._reserve),
            }
        return resources

    def _pin(self, service: _Service, node_id: str) -> None:
        """Add `node.id==<node>` to a service's constraints. Swarm does not restart a task whose
        node satisfies the new constraints, if nothing else in its spec changed: so the update
        sends the very spec the service was created with (an inspected one would not do: it
        shows unset fields as empty ones, and that counts as a change)."""
        task = service.task
        constraints = [*(task.get("Placement") or {}).get("Constraints", []), f"node.id=={node_id}"]
        pinned = {**task, "Placement": docker.types.Placement(constraints=constraints)}
        with translate_errors("pin the service to its node"):
            version = self.api.inspect_service(service.id)["Version"]["Index"]
            self.api.update_service(
                service.id,
                version,
                task_template=pinned,
                name=service.name,
                labels=service.labels,
                mode=docker.types.ServiceMode("replicated", replicas=1),
                endpoint_spec=service.endpoint,
            )

    def _wait_placed(self, plan: LaunchPlan, service: str, nodes: dict[str, SwarmNode]) -> str:
        """Wait until Swarm has put the service's task on a node; return the node's id."""
        for tasks in self._polls(plan, "place the instance on a node"):
            for t in tasks:
                if t["ServiceID"] != service:
                    continue
                self._check_task(t, nodes)
                if t.get("NodeID"):
                    return str(t["NodeID"])
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_running(self, plan: LaunchPlan, nodes: dict[str, SwarmNode], services: set[str]) -> None:
        """Wait until every service of this start has a running task; fail fast and clearly
        when Swarm says one cannot start (image missing, port taken, no node, exit)."""
        for tasks in self._polls(plan, "start the instance's containers"):
            running = set()
            for t in tasks:
                if t["ServiceID"] not in services:
                    continue  # a service of an attempt given up on, being removed
                try:
                    self._check_task(t, nodes)
                except _Unplaceable as exc:
                    raise _unplaceable(str(exc)) from None
                if t["Status"]["State"] == "running" and t["DesiredState"] == "running":
                    running.add(t["ServiceID"])
            if running == services:
                return

    def _polls(self, plan: LaunchPlan, action: str) -> Iterable[list[dict[str, Any]]]:
        """This generation's tasks, listed quickly at first, then every 200 ms, until the start
        timeout (one label-filtered call each)."""
        this = [f"{labels.INSTANCE}={plan.instance_id}", f"{labels.GENERATION}={plan.generation}"]
        selector = {"label": [*this, f"{labels.DEPLOYMENT}={self._deployment}"]}
        deadline = time.monotonic() + self._start_timeout
        pause = 0.02
        while True:
            with translate_errors("list the instance's tasks"):
                yield self.api.tasks(filters=selector)
            if time.monotonic() >= deadline:
                raise BackendRejected(f"the swarm did not {action} within {self._start_timeout:g} s")
            self._sleep(pause)
            pause = min(pause * 2, 0.2)

    def _check_task(self, t: dict[str, Any], nodes: dict[str, SwarmNode] | None) -> None:
        """Raise the domain's error for a task Swarm gave up on (or cannot place)."""
        state, err = t["Status"]["State"], str(t["Status"].get("Err") or "")
        if state == "pending" and "no suitable node" in err:
            raise _Unplaceable(err)
        if state not in ("rejected", "failed"):
            return
        node = (nodes or {}).get(t.get("NodeID") or "")
        where = f"node {node.hostname}" if node else "its node"
        image = t["Spec"]["ContainerSpec"]["Image"]
        if any(trouble in err.lower() for trouble in _IMAGE_TROUBLE):
            raise ImageMissing(
                f"the image {image} is not on {where}; copy it to every node with "
                f"`instancer images sync {image}` (swarm: {err})"
            )
        if dockerapi.port_clash(err) or "port already in use" in err:
            raise PortUnavailable(f"a host port is held by something else on {where}")
        raise BackendRejected(f"a container of this instance could not run on {where}: {err}")

    def probe(self, launched: Launched) -> bool:
        return all(dockerapi.accepts(host, port) for host, port in launched.probe_targets)

    # --- stop ----------------------------------------------------------------------

    def stop(self, instance_id: str) -> None:
        """Remove the instance's services, networks and secrets (every generation), and wait
        until its containers are gone from every live node: then nothing of it is left and its
        host ports are free, as on one host. That takes a few seconds (a node kills a removed
        task's container only after Swarm's gossip has converged, about 2 s)."""
        selector = self._selector(instance_id)
        with translate_errors("list the instance's services"):
            services = self.api.services(filters=selector)
        self._remember_node(instance_id, services)
        for s in services:
            self._remove(self.api.remove_service, s["ID"])
        with translate_errors("list the instance's networks and secrets"):
            networks = self.api.networks(filters=selector)
            secrets = self.api.secrets(filters=selector)
        for n in networks:
            self._remove(self.api.remove_network, n["Id"])
        for s in secrets:
            self._remove(self.api.remove_secret, s["ID"])
        if services:
            self._wait_gone(selector, self.nodes(), networks=bool(networks))

    def _selector(self, instance_id: str) -> dict[str, list[str]]:
        return {"label": [f"{labels.INSTANCE}={instance_id}", f"{labels.DEPLOYMENT}={self._deployment}"]}

    def _remember_node(self, instance_id: str, services: list[dict[str, Any]]) -> None:
        pinned = [n for s in services if (n := _pinned_node(s)) is not None]
        if not pinned:
            return
        with self._lock:
            self._last_node[instance_id] = pinned[0]
            while len(self._last_node) > _REMEMBERED_NODES:
                self._last_node.popitem(last=False)

    def _wait_gone(
        self, selector: dict[str, list[str]], nodes: dict[str, SwarmNode], *, networks: bool = False
    ) -> None:
        """Until no task of removed services still runs on a live node and (with `networks`)
        the networks Swarm deletes once their tasks are gone have gone. Bounded: Swarm finishes
        the removal by itself. A node that is down never reports: its tasks, and a network
        they hold, wait for it to come back or be removed from the swarm (`docker node rm`)."""
        deadline = time.monotonic() + self._stop_wait
        pause = 0.05
        while True:
            with translate_errors("list the instance's tasks"):
                tasks = self.api.tasks(filters=selector)
                busy = [t for t in tasks if _stopping(t) and _on_live_node(t, nodes)]
                stranded = any(_stopping(t) and not _on_live_node(t, nodes) for t in tasks)
                if not busy and networks and not stranded:
                    busy = self.api.networks(filters=selector)
            if not busy:
                return
            if time.monotonic() >= deadline:
                log.warning("instance objects still going after %g s; Swarm finishes that", self._stop_wait)
                return
            self._sleep(pause)
            pause = min(pause * 2, 0.25)

    def _remove(self, call: Callable[[str], Any], object_id: str) -> None:
        """Removing what is already gone (or already being removed) is success."""
        try:
            with translate_errors("remove an object"):
                call(object_id)
        except BackendRejected as exc:
            if not dockerapi.gone(exc):
                raise

    # --- reconcile -----------------------------------------------------------------

    def list_managed(self) -> list[Observed]:
        """Every service, network and secret of this deployment (five label-filtered calls, no
        per-object inspect). A service counts as a running container when its task runs on a
        node that is up; otherwise `detail` says why not (its node is down, drained, ...)."""
        selector = {"label": [f"{labels.DEPLOYMENT}={self._deployment}"]}
        with translate_errors("list managed objects"):
            services = self.api.services(filters=selector)
            tasks = self.api.tasks(filters={**selector, "desired-state": "running"})
            networks = self.api.networks(filters=selector)
            secrets = self.api.secrets(filters=selector)
        nodes = self.nodes()
        running = {
            t["ServiceID"] for t in tasks if t["Status"]["State"] == "running" and _on_live_node(t, nodes)
        }
        pending = {t["ServiceID"]: str(t["Status"].get("Err") or "") for t in tasks}
        observed = [
            Observed(
                kind="container",
                name=s["Spec"]["Name"],
                instance_id=s["Spec"]["Labels"][labels.INSTANCE],
                created_at=dockerapi.parse_engine_time(s["CreatedAt"]),
                running=s["ID"] in running,
                detail="" if s["ID"] in running else _why_not_running(s, nodes, pending.get(s["ID"], "")),
            )
            for s in services
        ]
        observed += dockerapi.observed_networks(networks)
        observed += [
            Observed(
                kind="secret",
                name=s["Spec"]["Name"],
                instance_id=s["Spec"]["Labels"][labels.INSTANCE],
                created_at=dockerapi.parse_engine_time(s["CreatedAt"]),
            )
            for s in secrets
        ]
        return observed


def _launched(plan: LaunchPlan, node: SwarmNode) -> Launched:
    """Where the instance answers: every published port on its node's address (Traefik on the
    manager forwards there too); players are told the node's public name."""
    bindings = [(c, b) for c in plan.containers for b in c.ports]
    return Launched(
        probe_targets=tuple((node.address, b.host_port) for _, b in bindings),
        targets=tuple(
            RouteTarget(c.name, b.container_port, f"{node.address}:{b.host_port}") for c, b in bindings
        ),
        public_host=node.public_host,
    )


def _unplaceable(reason: str) -> BackendRejected | PortUnavailable:
    if "port already in use" in reason:
        return PortUnavailable(f"a host port of this instance is taken where it could run ({reason})")
    return BackendRejected(f"no node of the swarm can run this instance: {reason}")


def _service_name(plan: LaunchPlan, c: ContainerPlan) -> str:
    return f"inst-{plan.instance_id[:16]}-{plan.generation}-{c.name}"


def _node(n: dict[str, Any]) -> SwarmNode:
    address = str(n["Status"].get("Addr") or "")
    if address in ("", "0.0.0.0"):  # noqa: S104 - a manager may report this; its raft address is right
        address = str(n.get("ManagerStatus", {}).get("Addr", "")).rpartition(":")[0] or address
    node_labels = dict(n["Spec"].get("Labels") or {})
    return SwarmNode(
        id=n["ID"],
        hostname=n["Description"]["Hostname"],
        address=address,
        public_host=node_labels.get(PUBLIC_HOST_LABEL) or address,
        state=n["Status"]["State"],
        availability=n["Spec"]["Availability"],
        labels=node_labels,
    )


def _pinned_node(service: dict[str, Any]) -> str | None:
    placement = service["Spec"]["TaskTemplate"].get("Placement") or {}
    for constraint in placement.get("Constraints") or []:
        attribute, _, value = constraint.replace(" ", "").partition("==")
        if attribute == "node.id":
            return str(value)
    return None


def _stopping(task: dict[str, Any]) -> bool:
    """Told to stop (its service removed or replaced), not stopped yet."""
    return task["DesiredState"] in _FINISHED and task["Status"]["State"] not in _FINISHED


def _on_live_node(task: dict[str, Any], nodes: dict[str, SwarmNode]) -> bool:
    """Whether the task's node is up (a task not yet placed is still the swarm's to run)."""
    node_id = task.get("NodeID")
    if not node_id:
        return True
    node = nodes.get(node_id)
    return node is not None and node.state == "ready"


def _why_not_running(service: dict[str, Any], nodes: dict[str, SwarmNode], err: str) -> str:
    node_id = _pinned_node(service)
    node = nodes.get(node_id or "")
    if node_id and node is None:
        return f"its node {node_id[:12]} has left the swarm"
    if node is not None and node.state != "ready":
        return f"its node {node.hostname} is {node.state}"
    if node is not None and node.availability == "drain":
        return f"its node {node.hostname} is drained"
    return err
