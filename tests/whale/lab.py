#!/usr/bin/env python3
"""A real ctfd-whale on a real CTFd 3.8.7, for the whale backend's tests.

    CTFD_PATH=/work/ctfd-whale-site WHALE_PATH=/work/whale-src \
        python3 tests/whale/lab.py up      # prints the lab as JSON, keeps running
    python3 tests/whale/lab.py down        # removes everything `up` made (the private
                                           # engine's data root only with CC_WHALE_LAB_PURGE=1)

What `up` builds (and `down` removes), all on this machine:
- a private dockerd in its own network namespace (`ccwh`, veth 10.231.77.1/.2),
  swarm-initialised with a node labelled name=linux-1 and an attachable
  overlay network: the host's shared engine is never swarm-initialised;
  the demo web image is copied onto it (docker save | load);
- a private redis-server on a loopback port (ctfd-whale needs Redis);
- a stand-in for frpc's admin API (frp is on no registry reachable here):
  tests/whale/frpc_stub.py answers /api/status, /api/config, /api/reload;
- a scratch MariaDB database and CTFd (gunicorn, one worker) from CTFD_PATH
  with ctfd-whale (WHALE_PATH) linked into its plugins folder, configured
  through CTFd's config table (whale:* keys) with an admin, two players,
  their access tokens and two `dynamic_docker` challenges; this project's
  plugin (plugin/docker_challenges) is linked in too, so nginx's auth
  subrequest goes to the real endpoint and real CTFd tokens are used.
CTFD_PATH must be a CTFd 3.8.7 checkout of your own (its plugins folder is
written to); CTFD_PYTHON (default CTFD_PATH/.venv/bin/python) must have
CTFd's requirements plus docker==7.1.0, Flask-APScheduler==1.11.0 and
flask-redis==0.4.0 (ctfd-whale's own pins break on 3.8.7: see
docs/whale-guide.md). Only loopback and the namespace's own addresses are
contacted.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.path.join(HERE, "..", ".."))
STATE = os.environ.get("CC_WHALE_LAB_DIR", "/tmp/cc-whale-lab")
NETNS = "ccwh"
HOST_IP, NS_IP = "10.231.77.1", "10.231.77.2"
VETH_HOST, VETH_NS = "ccwh0", "ccwh1"
DOCKER_SOCK = "/run/cc-whale-docker.sock"
DOCKER_DATA = "/var/lib/cc-whale-docker"
DOCKER_EXEC = "/run/cc-whale-docker"
OVERLAY = "cc-whale-net"
IMAGE = "ctfd-containers/demo-web:latest"
MYSQL_SOCKET = os.environ.get("CC_TEST_MYSQL_SOCKET", "/run/mysqld/mysqld.sock")


def sh(*args, check=True, input=None, timeout=120, env=None, cwd=None):
    r = subprocess.run(args, capture_output=True, text=True, input=input, timeout=timeout,
                       env=env, cwd=cwd)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}... failed: {r.stderr.strip()[:400]}")
    return r


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"lab: timed out waiting for {what}")


def pdocker(*args, check=True, input=None, timeout=120):
    return sh("docker", "-H", f"unix://{DOCKER_SOCK}", *args, check=check, input=input,
              timeout=timeout)


def spawn(name, args, env=None, cwd=None):
    log = open(os.path.join(STATE, f"{name}.log"), "a")
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                         start_new_session=True)
    with open(os.path.join(STATE, f"{name}.pid"), "w") as fh:
        fh.write(str(p.pid))
    return p


# ------------------------------------------------------------ the private engine
def engine_up():
    if not os.path.exists(f"/var/run/netns/{NETNS}"):
        sh("ip", "netns", "add", NETNS)
        sh("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
        sh("ip", "link", "set", VETH_NS, "netns", NETNS)
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", VETH_HOST)
        sh("ip", "link", "set", VETH_HOST, "up")
        ns = ["ip", "netns", "exec", NETNS]  # only for ip(8) itself: it needs no /sys
        sh(*ns, "ip", "addr", "add", f"{NS_IP}/24", "dev", VETH_NS)
        sh(*ns, "ip", "link", "set", VETH_NS, "up")
        sh(*ns, "ip", "link", "set", "lo", "up")
        sh(*ns, "ip", "route", "add", "default", "via", HOST_IP)
    env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
    # nsenter, not `ip netns exec`: the latter remounts /sys and dockerd then
    # fails ("Devices cgroup isn't mounted").
    spawn("dockerd", ["nsenter", f"--net=/var/run/netns/{NETNS}", "dockerd",
                      "--data-root", DOCKER_DATA, "--exec-root", DOCKER_EXEC,
                      "--pidfile", os.path.join(STATE, "dockerd.pidfile"),
                      "--host", f"unix://{DOCKER_SOCK}"], env=env)
    wait(lambda: pdocker("info", check=False).returncode == 0, 60, "the private dockerd")
    info = pdocker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    if info != "active":
        pdocker("swarm", "init", "--advertise-addr", NS_IP)
    node = pdocker("node", "ls", "--format", "{{.ID}}").stdout.split()[0]
    pdocker("node", "update", "--label-add", "name=linux-1", node)
    if pdocker("network", "inspect", OVERLAY, check=False).returncode != 0:
        pdocker("network", "create", "--driver", "overlay", "--attachable", OVERLAY)
    if pdocker("image", "inspect", IMAGE, check=False).returncode != 0:
        save = subprocess.Popen(["docker", "save", IMAGE], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", f"unix://{DOCKER_SOCK}", "load"], stdin=save.stdout,
                       capture_output=True, check=True, timeout=120)
        save.wait()


def engine_down():
    if os.path.exists(DOCKER_SOCK):
        for svc in pdocker("service", "ls", "-q", check=False).stdout.split():
            pdocker("service", "rm", svc, check=False)
    kill_pidfile(os.path.join(STATE, "dockerd.pidfile"))
    kill_pidfile(os.path.join(STATE, "dockerd.pid"))
    sh("ip", "link", "del", VETH_HOST, check=False)
    sh("ip", "netns", "del", NETNS, check=False)
    shutil.rmtree(DOCKER_EXEC, ignore_errors=True)
    if os.environ.get("CC_WHALE_LAB_PURGE") == "1":
        shutil.rmtree(DOCKER_DATA, ignore_errors=True)  # else kept: the next up is faster


def kill_pidfile(path, sig=signal.SIGTERM):
    try:
        pid = int(open(path).read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, sig)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.unlink(path)
    except OSError:
        pass


# ------------------------------------------------------------ CTFd + ctfd-whale
BOOTSTRAP = r'''
import json, sys
from CTFd import create_app
from CTFd.models import db, Users
from CTFd.utils import set_config
from CTFd.utils.security.auth import generate_user_token
app = create_app()
cfg = json.loads(sys.argv[1])
with app.app_context():
    from importlib import import_module
    whale = import_module("CTFd.plugins.ctfd-whale.models")
    for k, v in {"setup": True, "ctf_name": "whale lab", "user_mode": "users",
                 "challenge_visibility": "private"}.items():
        set_config(k, v)
    for k, v in cfg["whale"].items():
        set_config("whale:" + k, v)
    out = {"users": {}, "tokens": {}, "challenges": []}
    for name, kind in (("admin", "admin"), ("player1", "user"), ("player2", "user")):
        u = Users(name=name, email=name + "@lab", password="lab-password-1", type=kind,
                  verified=True)
        db.session.add(u)
        db.session.commit()
        out["users"][name] = u.id
        out["tokens"][name] = generate_user_token(u, expiration=None).value
    for n in (1, 2):
        c = whale.DynamicDockerChallenge(
            name=f"whale web {n}", category="lab", description="d", value=100,
            initial=100, minimum=50, decay=10, state="visible", type="dynamic_docker",
            docker_image=cfg["image"], redirect_type="direct", redirect_port=8080,
            memory_limit="64m", cpu_limit=0.2)
        db.session.add(c)
        db.session.commit()
        out["challenges"].append(c.id)
    print(json.dumps(out))
'''


def ctfd_up(lab):
    ctfd = os.environ["CTFD_PATH"]
    whale_src = os.environ["WHALE_PATH"]
    python = os.environ.get("CTFD_PYTHON") or os.path.join(ctfd, ".venv", "bin", "python")
    for name, src in (("ctfd-whale", whale_src),
                      ("docker_challenges", os.path.join(SRCDIR, "plugin", "docker_challenges"))):
        link = os.path.join(ctfd, "CTFd", "plugins", name)
        if not os.path.islink(link) and not os.path.exists(link):
            os.symlink(os.path.abspath(src), link)
    db = lab["database"]
    sh("mariadb", "--socket", MYSQL_SOCKET, "-uroot",
       input=f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    env = {**os.environ,
           "DATABASE_URL": f"mysql+pymysql://root@localhost/{db}?unix_socket={MYSQL_SOCKET}",
           "REDIS_URL": f"redis://127.0.0.1:{lab['redis_port']}/0",
           "SECRET_KEY": "whale-lab-secret-key-0123456789abcdef",
           "CTFD_CONTAINERS_FLAG_KEY_FILE": lab["flag_key"],
           "PYTHONDONTWRITEBYTECODE": "1"}
    whale_cfg = {
        "docker_api_url": f"unix://{DOCKER_SOCK}", "docker_swarm_nodes": "linux-1",
        "docker_auto_connect_network": OVERLAY, "docker_dns": "",
        "docker_max_container_count": "100", "docker_max_renew_count": "5",
        "docker_timeout": "3600", "router_type": "frp",
        "frp_api_url": f"http://127.0.0.1:{lab['frpc_port']}",
        "frp_direct_ip_address": "127.0.0.1", "frp_direct_port_minimum": "41000",
        "frp_direct_port_maximum": "41099", "frp_http_domain_suffix": "lab.invalid",
        "frp_http_port": "8080"}
    r = sh(python, "-c", BOOTSTRAP, json.dumps({"whale": whale_cfg, "image": IMAGE}), env=env,
           timeout=300, check=False, cwd=ctfd)
    if r.returncode != 0:
        raise RuntimeError(f"CTFd bootstrap failed: {r.stderr[-3000:]}")
    lab.update(json.loads(r.stdout.strip().splitlines()[-1]))
    gunicorn = os.path.join(os.path.dirname(python), "gunicorn")
    args = ([gunicorn] if os.path.exists(gunicorn) else [python, "-m", "gunicorn"]) + [
        "CTFd:create_app()", "--bind", f"127.0.0.1:{lab['ctfd_port']}", "--workers", "1",
        "--worker-class", "gevent", "--timeout", "120"]
    spawn("ctfd", args, env=env, cwd=ctfd)
    url = f"http://127.0.0.1:{lab['ctfd_port']}/healthcheck"
    wait(lambda: urllib.request.urlopen(url, timeout=2).status == 200, 120, "CTFd")


def up():
    for var in ("CTFD_PATH", "WHALE_PATH"):
        if not os.environ.get(var):
            raise SystemExit(f"lab: {var} is not set")
    os.makedirs(STATE, exist_ok=True)
    lab = {"state": STATE, "docker": f"unix://{DOCKER_SOCK}", "overlay": OVERLAY,
           "database": f"cc_whale_lab_{os.getpid()}", "redis_port": free_port(),
           "frpc_port": free_port(), "ctfd_port": free_port(), "image": IMAGE,
           "flag_key": os.path.join(STATE, "flag.key")}
    with open(os.path.join(STATE, "lab.json"), "w") as fh:
        json.dump(lab, fh)  # down() can clean up even if up() fails half way
    # the flags' master key the app and the plugin share (the app's format)
    fd = os.open(lab["flag_key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, (os.urandom(32).hex() + "\n").encode())
    os.close(fd)
    engine_up()
    spawn("redis", ["redis-server", "--port", str(lab["redis_port"]), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no"])
    spawn("frpc", [sys.executable, os.path.join(HERE, "frpc_stub.py"), str(lab["frpc_port"])])
    ctfd_up(lab)
    lab["whale_url"] = f"http://127.0.0.1:{lab['ctfd_port']}"
    with open(os.path.join(STATE, "lab.json"), "w") as fh:
        json.dump(lab, fh)
    return lab


def down():
    try:
        lab = json.load(open(os.path.join(STATE, "lab.json")))
    except (OSError, ValueError):
        lab = {}
    for name in ("ctfd", "frpc", "redis"):
        kill_pidfile(os.path.join(STATE, f"{name}.pid"))
    engine_down()
    if lab.get("database"):
        sh("mariadb", "--socket", MYSQL_SOCKET, "-uroot",
           input=f"DROP DATABASE IF EXISTS `{lab['database']}`", check=False)
    ctfd = os.environ.get("CTFD_PATH")
    for name in ("ctfd-whale", "docker_challenges"):
        link = os.path.join(ctfd or "/nonexistent", "CTFd", "plugins", name)
        if os.path.islink(link):
            os.unlink(link)
    shutil.rmtree(STATE, ignore_errors=True)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "up":
        try:
            print(json.dumps(up(), indent=1))
        except BaseException:
            down()
            raise
    elif what == "down":
        down()
    else:
        raise SystemExit("usage: lab.py up|down")
