"""A private Docker engine and a private MariaDB for tests that must stop,
kill or restart them (test_chaos.py). The host's dockerd and system MariaDB
are shared: never stop those.

PrivateEngine: dockerd in its own network namespace (a veth pair on a private
/24), with --live-restore (containers keep running while the engine is down,
as an operator would run it), the demo images copied in from the host engine
(docker save | docker load). Containers publish their ports on the
namespace's address, which the host reaches through the veth.

PrivateMariaDB: mariadbd with its datadir and socket in a temporary
directory (mariadb-install-db), no TCP.
"""
import os
import pwd
import shutil
import signal
import subprocess
import time

from harness import TCP_IMAGE, WEB_IMAGE, Skip, sh, wait_for


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _wait_gone(pid, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not _pid_alive(pid):
            return True
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return not _pid_alive(pid)


class PrivateEngine:
    def __init__(self, tag, octet_base=16, bip="172.31.254.1/24"):
        """tag: a short prefix of every name (netns, veth, directories);
        octet_base: the third octet of the veth /24 is octet_base + pid % 100, so
        two files (different bases) running at once never share a subnet;
        bip: the engine's bridge inside the namespace (its size caps how many
        containers run at once)."""
        if os.geteuid() != 0:
            raise Skip("a private dockerd needs root")
        for tool in ("dockerd", "ip", "nsenter", "docker"):
            if shutil.which(tool) is None:
                raise Skip(f"{tool} is not installed")
        if sh("docker", "info", check=False).returncode != 0:
            raise Skip("no host Docker engine to copy the demo images from")
        for image in (WEB_IMAGE, TCP_IMAGE):
            if sh("docker", "image", "inspect", image, check=False).returncode != 0:
                raise Skip(f"image {image} missing (run scripts/build-images)")
        pid = os.getpid()
        self.ns = f"{tag}{pid}"[:15]
        self.veth_host, self.veth_ns = f"{tag}h{pid}"[:15], f"{tag}n{pid}"[:15]
        octet = octet_base + pid % 100
        self.bip = bip
        self.host_ip, self.ip = f"172.30.{octet}.1", f"172.30.{octet}.2"
        self.dir = f"/var/lib/{tag}-{pid}"
        self.run_dir = f"/run/{tag}-{pid}"
        self.socket = os.path.join(self.run_dir, "docker.sock")
        self.endpoint = f"unix://{self.socket}"
        self.log_path = os.path.join(self.run_dir, "dockerd.log")
        self.proc = None
        self.made_ns = False
        try:
            self._network()
            os.makedirs(self.dir, exist_ok=True)
            os.makedirs(self.run_dir, exist_ok=True)
            with open(os.path.join(self.run_dir, "daemon.json"), "w") as fh:
                fh.write("{}\n")  # not the host's /etc/docker/daemon.json
            self.start()
            sh("sh", "-c", f"docker save {WEB_IMAGE} {TCP_IMAGE} | "
                           f"docker -H {self.endpoint} load -q", timeout=120)
        except BaseException:
            self.close()
            raise

    def _network(self):
        sh("ip", "netns", "add", self.ns)
        self.made_ns = True
        sh("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns)
        sh("ip", "link", "set", self.veth_ns, "netns", self.ns)
        sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.veth_host)
        sh("ip", "link", "set", self.veth_host, "up")
        sh("ip", "-n", self.ns, "addr", "add", f"{self.ip}/24", "dev", self.veth_ns)
        sh("ip", "-n", self.ns, "link", "set", self.veth_ns, "up")
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.ns, "route", "add", "default", "via", self.host_ip)

    def docker(self, *args, check=True, timeout=60):
        return sh("docker", "-H", self.endpoint, *args, check=check, timeout=timeout)

    def up(self):
        return self.docker("info", check=False, timeout=10).returncode == 0

    def start(self):
        """Start dockerd (again) and wait until it answers."""
        # nsenter --net, not `ip netns exec` (that remounts /sys; see the engine notes).
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/var/run/netns/{self.ns}", "dockerd",
             "--config-file", os.path.join(self.run_dir, "daemon.json"),
             "--data-root", self.dir, "--exec-root", os.path.join(self.run_dir, "exec"),
             "--pidfile", os.path.join(self.run_dir, "docker.pid"),
             "--host", self.endpoint, "--live-restore",
             "--containerd-namespace", self.ns, "--containerd-plugins-namespace", self.ns + "p",
             "--bip", self.bip],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self.up, timeout=60, step=0.2, what="the private dockerd")

    def stop(self):
        """Stop dockerd (SIGTERM; its containers keep running: live restore)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def containers(self, site):
        """{name: (state, [host ports])} of the containers labelled with site."""
        out = self.docker("ps", "-a", "--filter", f"label=ctfd-containers.site={site}",
                          "--format", "{{.Names}}\t{{.State}}\t{{.Ports}}").stdout
        res = {}
        for line in out.splitlines():
            if not line.strip():
                continue
            name, state, ports = (line.split("\t") + ["", ""])[:3]
            hp = sorted({int(p.split("->")[0].rsplit(":", 1)[1])
                         for p in ports.split(", ") if "->" in p})
            res[name] = (state, hp)
        return res

    def close(self):
        try:
            if self.proc and self.proc.poll() is not None:
                # Stopped by a case that failed: with live restore its containers
                # still run, and only the engine can remove them.
                try:
                    self.start()
                except Exception:
                    pass
            if self.proc and self.proc.poll() is None:
                ids = self.docker("ps", "-aq", check=False).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=120)
            self.stop()
        finally:
            if self.made_ns:
                sh("ip", "link", "del", self.veth_host, check=False)
                sh("ip", "netns", "del", self.ns, check=False)
            # The engine is gone: its overlay mounts too (best effort).
            mounts = sh("sh", "-c", f"grep -o ' {self.dir}[^ ]*' /proc/mounts || true",
                        check=False).stdout.split()
            for m in sorted(mounts, reverse=True):
                sh("umount", "-l", m, check=False)
            shutil.rmtree(self.dir, ignore_errors=True)
            shutil.rmtree(self.run_dir, ignore_errors=True)


class PrivateMariaDB:
    def __init__(self, workdir):
        for tool in ("mariadbd", "mariadb-install-db"):
            if shutil.which(tool) is None:
                raise Skip(f"{tool} is not installed")
        try:
            pwd.getpwnam("mysql")
        except KeyError:
            raise Skip("no mysql user to run a private mariadbd as")
        self.dir = os.path.join(workdir, "mariadb")
        os.makedirs(self.dir)
        sh("chown", "mysql:mysql", self.dir)
        self.socket = os.path.join(self.dir, "sock")
        self.log_path = os.path.join(self.dir, "error.log")
        self.proc = None
        sh("mariadb-install-db", "--no-defaults", f"--datadir={self.dir}/data", "--user=mysql",
           "--auth-root-authentication-method=normal", "--skip-test-db", timeout=120)
        self.start()

    def up(self):
        return sh("mariadb", f"--socket={self.socket}", "-uroot", "-e", "SELECT 1",
                  check=False, timeout=10).returncode == 0

    def start(self):
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.dir}/data", f"--socket={self.socket}",
             f"--pid-file={self.dir}/pid", "--skip-networking", "--user=mysql",
             f"--log-error={self.log_path}", "--innodb-buffer-pool-size=32M",
             "--max-connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.up, timeout=60, step=0.2, what="the private mariadbd")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        self.stop()
