"""A Docker Swarm of N engines on this one machine, for tests: each node is its own `dockerd` in
its own network namespace (and UTS namespace, so each has its own host name), all joined to
a private /24 through a bridge that lives in a namespace of its own.

    root netns: <p>r 10.231.S.1/24 ──┐
                                     │  netns <p>-sw: bridge br0 (no iptables of the host's)
    netns <p>-n1: eth0 10.231.S.11 ──┤
    netns <p>-n2: eth0 10.231.S.12 ──┤
    ...                              ┘

Node 1 is the manager, the others workers. Nothing here touches the host's engine or its
swarm state, the host's iptables, or any address outside 10.231.S.0/24: the nodes have no
default route (so an engine that tries a registry fails at once instead of reaching out).
Every namespace, link, engine, mount, cgroup and data directory made here is removed by
`down()`, which is also run before `up()` to clear what a killed run left. A lock file per
subnet keeps two test sessions on one machine from building (or clearing) the same swarm.

Used by the test fixtures and, for a look by hand, as a script:
    python -m tests.swarm.harness up 3      # prints the manager's DOCKER_HOST
    python -m tests.swarm.harness down
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

SUBNET = "10.231.{s}.0/24"
# Each node's own bridges (docker0, docker_gwbridge) and the swarm's overlays: far from the
# host's ranges (10.201/16 and the rest) and from each other.
LOCAL_POOL = "10.232.0.0/16"
OVERLAY_POOL = "10.233.0.0/16"
ENGINE_START_SECONDS = 60.0
#: how often nodes report to the manager; a node silent for a few periods is down
HEARTBEAT_SECONDS = 2


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


@dataclass
class Node:
    name: str
    address: str
    netns: str
    data_root: Path
    run_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "x"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "docker.pid"

    @property
    def log(self) -> Path:
        return self.run_dir / "dockerd.log"

    def api(self, timeout: int = 30) -> docker.APIClient:
        return docker.APIClient(base_url=self.url, version="auto", timeout=timeout)


@dataclass
class Swarm:
    """`size` engines on subnet 10.231.`subnet`.0/24; `prefix` names every object (≤ 6 chars)."""

    size: int
    subnet: int = 0
    prefix: str = ""
    nodes: list[Node] = field(default_factory=list)
    node_ids: dict[str, str] = field(default_factory=dict)
    _lock: int | None = None

    def __post_init__(self) -> None:
        self.prefix = self.prefix or f"isw{self.subnet}"
        assert len(self.prefix) <= 6, "interface names are at most 15 characters"
        base = Path("/var/lib") / f"instancer-{self.prefix}"
        run = Path("/run") / self.prefix
        self.nodes = [
            Node(
                name=f"{self.prefix}-n{k}",
                address=f"10.231.{self.subnet}.{10 + k}",
                netns=f"{self.prefix}-n{k}",
                data_root=base / f"n{k}",
                run_dir=run / f"n{k}",
            )
            for k in range(1, self.size + 1)
        ]
        self._base, self._run = base, run

    # --- objects -------------------------------------------------------------------

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def host_address(self) -> str:
        """This machine's address on the swarm's subnet (where tests talk from)."""
        return f"10.231.{self.subnet}.1"

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    # --- up ------------------------------------------------------------------------

    def up(self) -> Swarm:
        self._take_lock()
        self._clear()
        try:
            self._network()
            for node in self.nodes:
                self._start_engine(node)
            for node in self.nodes:
                self._wait_engine(node)
            self._form_swarm()
        except BaseException:
            self.down()
            raise
        return self

    def _take_lock(self) -> None:
        if self._lock is not None:
            return
        fd = os.open(f"/run/{self.prefix}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(
                f"another process holds /run/{self.prefix}.lock: a test session on this machine is "
                f"using swarm subnet 10.231.{self.subnet}.0/24; wait for it"
            ) from None
        self._lock = fd

    def _network(self) -> None:
        _run("ip", "netns", "add", self.switch)
        _run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.switch, "link", "set", "br0", "up")
        _run("ip", "-n", self.switch, "link", "set", "lo", "up")
        # This machine's leg: an address on the subnet, no route beyond it.
        _run(
            "ip", "link", "add", f"{self.prefix}r", "type", "veth", "peer", "name", "r", "netns", self.switch
        )
        _run("ip", "-n", self.switch, "link", "set", "r", "master", "br0", "up")
        _run("ip", "addr", "add", f"{self.host_address}/24", "dev", f"{self.prefix}r")
        _run("ip", "link", "set", f"{self.prefix}r", "up")
        for k, node in enumerate(self.nodes, start=1):
            _run("ip", "netns", "add", node.netns)
            _run(
                "ip", "-n", self.switch, "link", "add", f"n{k}", "type", "veth",
                "peer", "name", "eth0", "netns", node.netns,
            )  # fmt: skip
            _run("ip", "-n", self.switch, "link", "set", f"n{k}", "master", "br0", "up")
            _run("ip", "-n", node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
            _run("ip", "-n", node.netns, "link", "set", "eth0", "up")
            _run("ip", "-n", node.netns, "link", "set", "lo", "up")

    def _start_engine(self, node: Node) -> None:
        for path in (node.data_root, node.run_dir):
            path.mkdir(parents=True, exist_ok=True)
        # As docs/operations.md asks of every node: Swarm services cannot set it per container.
        (node.run_dir / "daemon.json").write_text('{"no-new-privileges": true}')
        env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
        env.pop("DOCKER_HOST", None)
        host = node.name
        dockerd = [
            "dockerd",
            f"--data-root={node.data_root}",
            f"--exec-root={node.exec_root}",
            f"--pidfile={node.pidfile}",
            f"--host={node.url}",
            f"--default-address-pool=base={LOCAL_POOL},size=24",
            f"--cgroup-parent={self._cgroup(node)}",
            f"--config-file={node.run_dir / 'daemon.json'}",  # not the host's /etc/docker/daemon.json
            "--storage-driver=overlay2",
        ]
        # `nsenter --net`, not `ip netns exec` (which remounts /sys and breaks the devices cgroup);
        # `unshare --uts` so that each node has its own host name in `docker node ls`.
        script = f'hostname {host} && exec "$@"'
        enter = ["unshare", "--uts", "nsenter", f"--net=/var/run/netns/{node.netns}"]
        with node.log.open("wb") as log:
            node.process = subprocess.Popen(
                [*enter, "sh", "-c", script, "sh", *dockerd],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_engine(self, node: Node) -> None:
        deadline = time.monotonic() + ENGINE_START_SECONDS
        while True:
            assert node.process is not None
            if node.process.poll() is not None:
                raise RuntimeError(f"dockerd of {node.name} exited: {node.log.read_text()[-2000:]}")
            try:
                node.api(timeout=2).ping()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"dockerd of {node.name} did not answer: {node.log.read_text()[-2000:]}"
                    ) from exc
                time.sleep(0.2)

    def _form_swarm(self) -> None:
        manager = self.manager.api()
        manager.init_swarm(
            advertise_addr=self.manager.address,
            listen_addr=f"{self.manager.address}:2377",
            default_addr_pool=[OVERLAY_POOL],
            subnet_size=24,
            swarm_spec=manager.create_swarm_spec(dispatcher_heartbeat_period=HEARTBEAT_SECONDS * 10**9),
        )
        token = manager.inspect_swarm()["JoinTokens"]["Worker"]
        for node in self.nodes[1:]:
            node.api().join_swarm(
                remote_addrs=[f"{self.manager.address}:2377"],
                join_token=token,
                advertise_addr=node.address,
                listen_addr=f"{node.address}:2377",
            )
        deadline = time.monotonic() + ENGINE_START_SECONDS
        while True:
            ready = [n for n in manager.nodes() if n["Status"]["State"] == "ready"]
            if len(ready) == self.size:
                break
            assert time.monotonic() < deadline, f"only {len(ready)} of {self.size} nodes are ready"
            time.sleep(0.2)
        self.node_ids = {n["Description"]["Hostname"]: n["ID"] for n in manager.nodes()}

    # --- operations tests use --------------------------------------------------------

    def load_image(self, image: str, nodes: list[Node] | None = None, source: str | None = None) -> None:
        """Copy an image from the host's engine (or `source`) with save | load, as an operator would."""
        src = docker.APIClient(base_url=source or "unix:///var/run/docker.sock", version="auto", timeout=120)
        data = b"".join(src.get_image(image))
        for node in nodes if nodes is not None else self.nodes:
            list(node.api(timeout=120).load_image(data))

    def node_update(
        self, node: Node, *, availability: str | None = None, labels: dict[str, str | None] | None = None
    ) -> None:
        """`docker node update --availability ... --label-add k=v` (a None value: `--label-rm k`)."""
        api = self.manager.api()
        info = api.inspect_node(self.node_ids[node.name])
        spec = info["Spec"]
        if availability is not None:
            spec["Availability"] = availability
        for key, value in (labels or {}).items():
            spec.setdefault("Labels", {}).pop(key, None)
            if value is not None:
                spec["Labels"][key] = value
        api.update_node(info["ID"], info["Version"]["Index"], spec)

    def remove_deployment(self, deployment: str) -> None:
        """Remove every service, network and secret a test's deployment left, without waiting
        for the nodes to kill the containers (the next test uses another deployment)."""
        api = self.manager.api()
        selector = {"label": f"instancer.deployment={deployment}"}
        for service in api.services(filters=selector):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_service(service["ID"])
        for network in api.networks(filters=selector):
            with contextlib.suppress(docker.errors.APIError):  # gone, or going with its tasks
                api.remove_network(network["Id"])
        for secret in api.secrets(filters=selector):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_secret(secret["ID"])

    def kill(self, node: Node) -> None:
        """The machine dies: every process in the node's namespace (engine, containerd, the
        containers) gets SIGKILL at once. The manager notices after its heartbeat timeout."""
        for pid in self._pids(node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if node.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(10)

    def _pids(self, node: Node) -> list[int]:
        """The node's engine and containerd (in its network namespace) and its containers
        (each in a namespace of its own, but in the node's cgroup)."""
        out = _run("ip", "netns", "pids", node.netns, check=False).stdout
        pids = {int(p) for p in out.split()}
        top = Path("/sys/fs/cgroup/pids") / self._cgroup(node).lstrip("/")
        for procs in top.rglob("cgroup.procs") if top.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                pids |= {int(p) for p in procs.read_text().split()}
        return sorted(pids)

    def _cgroup(self, node: Node) -> str:
        """Each node's containers go under a cgroup of its own, so that all can be found."""
        return f"/{node.name}"

    # --- down ----------------------------------------------------------------------

    def down(self) -> None:
        """Remove everything `up` made (or a killed earlier run left), whatever state it is in."""
        self._take_lock()
        self._clear()
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.unlink(f"/run/{self.prefix}.lock")  # while still held: nobody waits on it
            os.close(self._lock)  # releases the lock
            self._lock = None

    def _clear(self) -> None:
        self._stop_engines()
        for node in self.nodes:
            self.kill(node)  # containers or shims the engine left behind
        for mount in sorted(self._mounts(), key=len, reverse=True):
            _run("umount", "-l", mount, check=False)
        for node in self.nodes:
            _run("ip", "netns", "del", node.netns, check=False)
        _run("ip", "link", "del", f"{self.prefix}r", check=False)
        _run("ip", "netns", "del", self.switch, check=False)
        self._remove_cgroups()
        for path in (self._base, self._run):
            shutil.rmtree(path, ignore_errors=True)

    def _stop_engines(self) -> None:
        """SIGTERM to every engine at once, SIGKILL to those still there after 5 s (everything
        they hold is removed anyway)."""
        pids = [pid for node in self.nodes if (pid := _pid_of(node.pidfile)) is not None]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is not None:
                    node.process.poll()  # reap our own children, or they stay zombies
            time.sleep(0.1)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _mounts(self) -> list[str]:
        roots = (str(self._base), str(self._run))
        found = []
        for line in Path("/proc/mounts").read_text().splitlines():
            target = line.split()[1].replace("\\040", " ")
            if target in roots or target.startswith(tuple(root + "/" for root in roots)):
                found.append(target)
        return found

    def _remove_cgroups(self) -> None:
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            for node in self.nodes:
                top = hierarchy / self._cgroup(node).lstrip("/")
                if not top.is_dir():
                    continue
                for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if path.is_dir():
                        with contextlib.suppress(OSError):
                            path.rmdir()
                with contextlib.suppress(OSError):
                    top.rmdir()


def _pid_of(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def main(argv: list[str]) -> int:
    command, size = argv[0], int(argv[1]) if len(argv) > 1 else 3
    swarm = Swarm(size=size, subnet=int(os.environ.get("SWARM_SUBNET", "0")))
    if command == "down":
        swarm.down()
        return 0
    swarm.up()
    print(f"DOCKER_HOST={swarm.manager.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
