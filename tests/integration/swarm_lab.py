"""A swarm of three engines in network namespaces (scripts/swarm-lab), for
test_swarm.py. Never the host's engine: that one only builds and saves the
demo images. Each lab gets its own name and /24 (from the test's pid), and is
torn down at the end even when a case fails."""
import json
import os
import shutil
import subprocess

from harness import SRCDIR, Skip, sh

LAB = os.path.join(SRCDIR, "scripts", "swarm-lab")


class Lab:
    def __init__(self, nodes=3, images="manager"):
        if os.geteuid() != 0:
            raise Skip("the swarm lab needs root (network namespaces, engines)")
        for tool in ("dockerd", "ip", "nsenter", "curl"):
            if shutil.which(tool) is None:
                raise Skip(f"the swarm lab needs {tool}")
        n = os.getpid() % 40
        self.name = f"ccst{n}"
        self.net = f"192.168.{200 + n}"
        self.env = {**os.environ, "CCSW_NAME": self.name, "CCSW_NET": self.net}
        self.nodes = nodes
        self.up = False
        r = subprocess.run([LAB, "up", "--nodes", str(nodes), "--images", images], env=self.env,
                           capture_output=True, text=True, timeout=300)
        self.up = True  # whatever it made is torn down by close()
        if r.returncode != 0:
            self.close()
            raise RuntimeError(f"swarm-lab up failed: {r.stderr.strip()[-800:]}")

    def sock(self, i):
        return f"/run/{self.name}/n{i}.sock"

    def endpoint(self, i):
        return f"unix://{self.sock(i)}"

    def tcp_endpoint(self, i):
        return f"tcp://{self.addr(i)}:2375"

    def addr(self, i):
        return f"{self.net}.{10 + i}"

    def netns(self, i):
        return f"/var/run/netns/{self.name}-n{i}"

    def public_host(self, i):
        """The node's ctfd-containers.public_host label (scripts/swarm-lab sets them)."""
        return {1: "n1.swarm.test", 2: self.addr(2)}.get(i, self.addr(i))

    def reach(self, host):
        """The address to connect to for a reported host (n1.swarm.test is node 1)."""
        return self.addr(1) if host == "n1.swarm.test" else host

    def node_of(self, host):
        """Node number of a reported host."""
        for i in range(1, self.nodes + 1):
            if host in (self.public_host(i), self.addr(i)):
                return i
        return None

    def docker(self, i, *args, check=True, timeout=60):
        return sh("docker", "-H", self.endpoint(i), *args, check=check, timeout=timeout)

    def node_id(self, i):
        return self.docker(i, "info", "--format", "{{.Swarm.NodeID}}").stdout.strip()

    def services(self, site_name):
        """{name: labels} of the manager's services labelled with this site."""
        out = self.docker(1, "service", "ls", "--filter", f"label=ctfd-containers.site={site_name}",
                          "--format", "{{.Name}}").stdout.split()
        objs = {}
        for name in out:
            r = self.docker(1, "service", "inspect", "--format", "{{json .Spec.Labels}}", name,
                            check=False)
            if r.returncode == 0:
                objs[name] = json.loads(r.stdout)
        return objs

    def containers(self, i, site_name):
        """Names of the containers on node i carrying this site's label."""
        r = self.docker(i, "ps", "-a", "--filter", f"label=ctfd-containers.site={site_name}",
                        "--format", "{{.Names}}", check=False)
        return r.stdout.split() if r.returncode == 0 else None

    def kill(self, i):
        subprocess.run([LAB, "kill", str(i)], env=self.env, check=True, capture_output=True)

    def revive(self, i):
        subprocess.run([LAB, "revive", str(i)], env=self.env, check=True, capture_output=True,
                       timeout=120)

    def close(self):
        if self.up:
            r = subprocess.run([LAB, "down"], env=self.env, capture_output=True, text=True,
                               timeout=300)
            if r.returncode != 0 or os.path.exists(f"/var/run/netns/{self.name}-hub"):
                print(f"# swarm-lab down left something ({r.returncode}): {r.stderr[-500:]}")
            self.up = False
