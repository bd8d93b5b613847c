"""benchmarks/engine.py: the raw baselines `make bench` measures the app against.

- Engine: the Docker Engine API over its unix socket (what the app itself talks to), used for
  the raw burst baseline (concurrent create + start, the same work the app's docker backend
  does) and to confirm that a container is gone.
- PrivateSwarm: a dockerd of our own in a network namespace, swarm-initialised, holding the
  demo image, for the ctfd-whale baseline (`docker service create`, one replica, a host-mode
  published port). The shared host engine is never put into swarm mode.

Standard library only. Every object carries a label of this run; cleanup removes only those.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


# What the app's docker backend puts on every container with its default configuration
# (default_memory_mb 256, default_cpus 0.5, pids_limit 256, cap_add, no-new-privileges): the
# raw baselines set the same, so both sides ask the engine for the same work.
LIMITS = {"memory": 256 * 1024 * 1024, "nano_cpus": 500_000_000, "pids": 256,
          "cap_add": ["CHOWN", "SETUID", "SETGID", "NET_BIND_SERVICE"]}
DOCKER_RUN_LIMITS = ["--memory", "256m", "--memory-swap", "256m", "--cpus", "0.5",
                     "--pids-limit", "256", "--cap-drop", "ALL",
                     *[a for c in LIMITS["cap_add"] for a in ("--cap-add", c)],
                     "--security-opt", "no-new-privileges:true", "--restart", "no"]
SERVICE_LIMITS = ["--limit-memory", "256m", "--limit-cpu", "0.5", "--cap-drop", "ALL",
                  *[a for c in LIMITS["cap_add"] for a in ("--cap-add", c)]]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Engine:
    """The Docker Engine API on a unix socket; one connection per call (thread-safe)."""

    def __init__(self, sock="/var/run/docker.sock"):
        self.sock = sock

    def call(self, method, path, body=None, timeout=60):
        conn = UnixHTTPConnection(self.sock, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            raw = r.read()
            try:
                doc = json.loads(raw) if raw else None
            except ValueError:
                doc = raw.decode("utf-8", "replace")
            return r.status, doc
        finally:
            conn.close()

    def run(self, name, image, port, internal, env, labels, bind="127.0.0.1"):
        """create + start, as the app's docker backend does; the container id."""
        spec = {
            "Image": image,
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": labels,
            "ExposedPorts": {f"{internal}/tcp": {}},
            "HostConfig": {
                "PortBindings": {f"{internal}/tcp": [{"HostIp": bind, "HostPort": str(port)}]},
                "Memory": LIMITS["memory"], "MemorySwap": LIMITS["memory"],
                "NanoCpus": LIMITS["nano_cpus"], "PidsLimit": LIMITS["pids"],
                "SecurityOpt": ["no-new-privileges:true"], "CapDrop": ["ALL"],
                "CapAdd": LIMITS["cap_add"], "RestartPolicy": {"Name": "no"},
            },
        }
        st, doc = self.call("POST", f"/containers/create?name={name}", spec)
        if st != 201:
            raise RuntimeError(f"create {name}: {st} {doc}")
        cid = doc["Id"]
        st, doc = self.call("POST", f"/containers/{cid}/start")
        if st not in (204, 304):
            raise RuntimeError(f"start {name}: {st} {doc}")
        return cid

    def remove(self, ref):
        st, _ = self.call("DELETE", f"/containers/{ref}?force=1")
        return st in (204, 404)

    def exists(self, ref):
        st, _ = self.call("GET", f"/containers/{ref}/json")
        return st == 200

    def by_label(self, label):
        q = urllib.request.quote(json.dumps({"label": [label]}))
        st, doc = self.call("GET", f"/containers/json?all=1&filters={q}")
        return [c["Id"] for c in doc] if st == 200 else []


def first_200(url, timeout=30.0, step=0.005):
    """Poll until url answers 200; the perf_counter time it did."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    r.read()
                    return time.perf_counter()
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(step)
    raise RuntimeError(f"{url} gave no 200 within {timeout} s")


def sh(*args, input=None, check=True, timeout=120, env=None):
    r = subprocess.run(args, input=input, capture_output=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args[:4]))}: {r.returncode} "
                           f"{r.stderr.decode(errors='replace').strip()[:400]}")
    return r


def _free_subnet():
    """A 10.250.N.0/24 no interface or route of this machine uses."""
    used = sh("ip", "-4", "route").stdout.decode() + sh("ip", "-4", "addr").stdout.decode()
    for n in [(os.getpid() + i) % 250 + 1 for i in range(250)]:
        if f"10.250.{n}." not in used:
            return f"10.250.{n}"
    raise RuntimeError("no free 10.250.N.0/24")


class PrivateSwarm:
    """A one-node swarm on a private dockerd in its own network namespace."""

    def __init__(self, image, tag):
        if not shutil.which("dockerd") or not shutil.which("nsenter"):
            raise RuntimeError("dockerd or nsenter missing")
        self.image = image
        self.pid = os.getpid()
        self.ns = f"ccb{self.pid}"
        self.veth_host, self.veth_node = f"ccbh{self.pid % 100000}", f"ccbn{self.pid % 100000}"
        self.root = f"/var/lib/ccb-{tag}-{self.pid}"
        self.run_dir = f"/run/ccb-{self.pid}"
        self.sock = os.path.join(self.run_dir, "docker.sock")
        self.proc = None
        self.made_ns = self.made_veth = False
        self.engine = Engine(self.sock)
        try:
            self._up()
        except BaseException:
            self.close()
            raise

    def docker(self, *args, **kw):
        return sh("docker", "-H", f"unix://{self.sock}", *args, **kw)

    def _up(self):
        net = _free_subnet()
        self.host_ip, self.node_ip = f"{net}.1", f"{net}.2"
        sh("ip", "netns", "add", self.ns)
        self.made_ns = True
        sh("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_node)
        self.made_veth = True
        sh("ip", "link", "set", self.veth_node, "netns", self.ns)
        sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.veth_host)
        sh("ip", "link", "set", self.veth_host, "up")
        nsnet = f"--net=/var/run/netns/{self.ns}"
        for cmd in (["ip", "addr", "add", f"{self.node_ip}/24", "dev", self.veth_node],
                    ["ip", "link", "set", self.veth_node, "up"], ["ip", "link", "set", "lo", "up"],
                    ["ip", "route", "add", "default", "via", self.host_ip]):
            sh("nsenter", nsnet, *cmd)
        os.makedirs(self.root, exist_ok=True)
        os.makedirs(self.run_dir, exist_ok=True)
        self.log = open(os.path.join(self.run_dir, "dockerd.log"), "w")
        env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
        self.proc = subprocess.Popen(
            ["nsenter", nsnet, "dockerd", "--data-root", self.root, "--exec-root",
             os.path.join(self.run_dir, "exec"), "--pidfile", os.path.join(self.run_dir, "pid"),
             "--host", f"unix://{self.sock}", "--bip", "10.251.0.1/22"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private dockerd exited {self.proc.returncode}")
            if os.path.exists(self.sock) and self.docker("info", check=False).returncode == 0:
                break
            time.sleep(0.25)
        else:
            raise RuntimeError("private dockerd did not answer in 60 s")
        saved = sh("docker", "save", self.image, timeout=300).stdout
        self.docker("load", input=saved, timeout=300)
        self.docker("swarm", "init", "--advertise-addr", self.node_ip)
        self.version = self.docker("version", "--format",
                                   "{{.Server.Version}}").stdout.decode().strip()

    def service_create(self, name, port, internal, env, labels):
        """ctfd-whale's way: one replicated replica, published port (mode=host here)."""
        args = ["service", "create", "--detach", "--no-resolve-image", "--name", name,
                "--mode", "replicated", "--replicas", "1", "--restart-condition", "none",
                "--publish", f"mode=host,published={port},target={internal},protocol=tcp",
                *SERVICE_LIMITS]
        for k, v in env.items():
            args += ["--env", f"{k}={v}"]
        for k, v in labels.items():
            args += ["--label", f"{k}={v}", "--container-label", f"{k}={v}"]
        self.docker(*args, self.image)

    def service_rm(self, name):
        self.docker("service", "rm", name, check=False)

    def tasks_gone(self, name):
        return not self.engine.by_label(f"com.docker.swarm.service.name={name}")

    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.docker("swarm", "leave", "--force", check=False, timeout=30)
            except Exception:
                pass
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        # Mounts the engine may have left under its own directories only.
        for d in (self.root, self.run_dir):
            mounts = [line.split()[1] for line in open("/proc/mounts") if f" {d}/" in line]
            for m in sorted(mounts, key=len, reverse=True):
                sh("umount", "-l", m, check=False)
        if self.made_veth:
            sh("ip", "link", "del", self.veth_host, check=False)
        if self.made_ns:
            sh("ip", "netns", "del", self.ns, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
