"""Integration test harness: real MariaDB, real dockerd, real nginx with the
shipped nginx/ctfd-containers.conf (and ctfd-containers-http.conf, its cache
directory moved to a tmpfs of the test's own), and the built ctfd-containers.

Each test file builds a Site (database + app + nginx + stand-in auth), runs
its cases in order and prints TAP. Needs root (nginx's workers run as
www-data, the socket's group). A missing engine or database skips the file,
unless CC_TEST_REQUIRE=1 (CI), where it fails.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("CC_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILDDIR = os.environ.get("CC_BUILDDIR") or SRCDIR
BINARY = os.path.join(BUILDDIR, "src", "ctfd-containers")
NGINX = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
MYSQL_SOCKET = os.environ.get("CC_TEST_MYSQL_SOCKET", "/run/mysqld/mysqld.sock")
WEB_IMAGE = "ctfd-containers/demo-web:latest"
TCP_IMAGE = "ctfd-containers/demo-tcp:latest"
LABEL = "ctfd-containers.instance"


# ---------------------------------------------------------------- TAP runner
class Skip(Exception):
    pass


_cases = []


def case(fn):
    _cases.append(fn)
    return fn


def skip_all(reason):
    if os.environ.get("CC_TEST_REQUIRE") == "1":
        print(f"Bail out! {reason} (CC_TEST_REQUIRE=1)")
        sys.exit(1)
    print(f"1..0 # SKIP {reason}")
    sys.exit(0)


def run(setup=None, teardown=None):
    """Run the registered cases in order; print TAP; exit 0 (failures are in TAP)."""
    sys.stdout.reconfigure(line_buffering=True)
    ctx = None
    try:
        ctx = setup() if setup else None
    except Skip as e:
        skip_all(str(e))
    except Exception:
        print("Bail out! setup failed")
        traceback.print_exc(file=sys.stdout)
        if teardown and ctx:
            teardown(ctx)
        sys.exit(1)
    n = 0
    try:
        for fn in _cases:
            n += 1
            name = (fn.__doc__ or fn.__name__).strip().splitlines()[0]
            t0 = time.monotonic()
            try:
                fn(ctx) if ctx is not None else fn()
                print(f"ok {n} - {name}")
            except Skip as e:
                print(f"ok {n} - {name} # SKIP {e}")
            except Exception as e:
                print(f"not ok {n} - {name}")
                for line in traceback.format_exc().splitlines():
                    print(f"# {line}")
                del e
            took = time.monotonic() - t0
            if took > 5:
                print(f"# ({took:.1f} s)")
    finally:
        if teardown and ctx is not None:
            teardown(ctx)
    print(f"1..{n}")


# ---------------------------------------------------------------- helpers
def sh(*args, input=None, check=True, timeout=60):
    r = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stderr.strip()[:500]}")
    return r


def wait_for(pred, timeout=10.0, step=0.05, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def engine_ok():
    return os.path.exists("/var/run/docker.sock") and sh("docker", "info", check=False).returncode == 0


def require_engine_and_images():
    if not engine_ok():
        raise Skip("no Docker engine (run scripts/docker-up)")
    for image in (WEB_IMAGE, TCP_IMAGE):
        if sh("docker", "image", "inspect", image, check=False).returncode != 0:
            raise Skip(f"image {image} missing (run scripts/build-images)")


def our_containers(db=None):
    """Names of engine containers labelled by us (optionally for one test database)."""
    args = ["docker", "ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}} {{.Labels}}"]
    out = sh(*args).stdout.split("\n")
    names = []
    for line in out:
        if not line.strip():
            continue
        name, _, labels = line.partition(" ")
        if db is None or f"ctfd-containers.site={db}" in labels or db in name:
            names.append(name)
    return names


# ---------------------------------------------------------------- database
class Database:
    """A fresh database holding CTFd 3.8.7's real DDL and the plugin's table."""

    def __init__(self, name, socket=None):
        self.name = name
        self.socket = socket or MYSQL_SOCKET  # a test's own mariadbd may serve it
        if not os.path.exists(self.socket):
            raise Skip(f"no MariaDB socket at {self.socket}")
        self.sql(f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`", db=None)
        for f in ("ctfd-3.8.7-schema.sql", "docker_challenge.sql"):
            with open(os.path.join(SRCDIR, "tests", "fixtures", f)) as fh:
                self.sql(fh.read())

    def sql(self, text, db=""):
        args = ["mariadb", "--socket", self.socket, "-uroot", "--batch", "--skip-column-names",
                "--default-character-set=utf8mb4"]
        if db is not None:
            args.append(db or self.name)
        return sh(*args, input=text).stdout

    def rows(self, text):
        out = self.sql(text)
        return [line.split("\t") for line in out.splitlines() if line]

    def value(self, text):
        rows = self.rows(text)
        return rows[0][0] if rows else None

    def drop(self):
        self.sql(f"DROP DATABASE IF EXISTS `{self.name}`", db=None)

    # CTFd rows, written the way CTFd writes them.
    def config(self, key, value):
        self.sql(f"DELETE FROM config WHERE `key` = '{key}';"
                 f"INSERT INTO config (`key`, value) VALUES ('{key}', {sqlq(value)})")

    def team(self, tid, name, hidden=0, banned=0):
        self.sql(f"INSERT INTO teams (id, name, email, hidden, banned) "
                 f"VALUES ({tid}, {sqlq(name)}, 't{tid}@x', {hidden}, {banned})")

    def user(self, uid, name, team=None, admin=False, hidden=0, banned=0, verified=1):
        self.sql(f"INSERT INTO users (id, name, email, type, hidden, banned, verified, team_id) "
                 f"VALUES ({uid}, {sqlq(name)}, 'u{uid}@x', '{'admin' if admin else 'user'}', "
                 f"{hidden}, {banned}, {verified}, {team if team else 'NULL'})")

    def challenge(self, cid, name, image=WEB_IMAGE, ports="8080/http", template="CTF{<hex:32>}",
                  state="visible", requirements=None, lifetime=None, max_renewals=None):
        req = sqlq(json.dumps(requirements)) if requirements is not None else "NULL"
        self.sql(f"INSERT INTO challenges (id, name, description, value, category, type, state, "
                 f"logic, requirements) VALUES ({cid}, {sqlq(name)}, 'd', 100, 'c', 'docker', "
                 f"'{state}', 'any', {req});"
                 f"INSERT INTO docker_challenge (id, image, ports, flag_template, lifetime_seconds, "
                 f"max_renewals) VALUES ({cid}, {sqlq(image)}, {sqlq(ports)}, {sqlq(template)}, "
                 f"{lifetime if lifetime else 'NULL'}, "
                 f"{max_renewals if max_renewals is not None else 'NULL'})")

    def live_count(self):
        return int(self.value("SELECT COUNT(*) FROM container_instances WHERE live = 1"))

    def snapshot(self):
        """Everything a refused request must leave unchanged."""
        return (self.rows("SELECT * FROM container_instances ORDER BY id"),
                self.rows("SELECT * FROM container_ports ORDER BY host_port"),
                self.rows("SELECT id, instance_id, retired_at FROM container_flags ORDER BY id"),
                self.rows("SELECT * FROM container_accounts ORDER BY account_kind, account_id"))


def sqlq(v):
    if v is None:
        return "NULL"
    return "'" + str(v).replace("\\", "\\\\").replace("'", "''") + "'"


# ---------------------------------------------------------------- the app
# Each test file gets its own block of host ports, so files running in
# parallel on one engine never ask for the same port. The blocks lie below
# Linux's ephemeral range (32768-60999): a client socket in TIME_WAIT on a
# port there makes a later listen on it fail.
PORT_BLOCKS = {"api": 0, "proc": 1, "races": 2, "racecap": 3, "valgrind": 4, "bench": 5,
               # issue 19: crashes and outages, and the load test
               "chaos": 8, "load": 9,
               "expose": 6, "exposescale": 7}  # expose*: test_exposure*.py
PORT_BLOCKS["pool"] = 11  # warm pools (test_warm_pool.py, benchmarks/bench_warm_pool)
# switch, canary, fallback (test_switch.py) and the whale backend (test_whale.py)
PORT_BLOCKS.update({"switch": 17, "whale": 18})
PORT_BLOCKS["contract"] = 10  # test_contract.py (the swarm tests publish inside namespaces)


def port_range(db_name):
    tag = db_name.split("_")[2] if db_name.count("_") >= 3 else db_name
    block = PORT_BLOCKS.get(tag, 6 + sum(map(ord, tag)) % 6)
    low = 20000 + block * 1000
    return f"{low}-{low + 999}"


class App:
    """ctfd-containers as a child process (master + workers + reaper)."""

    def __init__(self, workdir, db, **overrides):
        self.workdir = workdir
        self.db = db
        self.socket = os.path.join(workdir, "fcgi.sock")
        self.log_path = os.path.join(workdir, "app.log")
        self.conf_path = os.path.join(workdir, "app.conf")
        self.options = {
            "database_socket": db.socket,
            "database_user": "root",
            "database_name": db.name,
            "listen": self.socket,
            "listen_group": "www-data",
            "workers": 4,
            "flag_key_file": os.path.join(workdir, "flag.key"),
            "port_range": port_range(db.name),
            "cooldown_seconds": 0,
            "reaper_interval_ms": 200,
            "orphan_grace_seconds": 0,
            "public_host": "127.0.0.1",
            "site": "cct-" + db.name.replace("_", "-")[8:],
            "bind_address": "127.0.0.1",
        }
        self.options.update(overrides)
        self.proc = None

    def write_conf(self, **overrides):
        self.options.update(overrides)
        with open(self.conf_path, "w") as fh:
            for k, v in self.options.items():
                fh.write(f"{k} = {v}\n")

    def run(self, *args, check=True, env=None):
        return subprocess.run([BINARY, "-c", self.conf_path, *args], capture_output=True,
                              text=True, timeout=60, check=check,
                              env={**os.environ, **(env or {})})

    def start(self, migrate=True):
        self.write_conf()
        if migrate:
            self.run("--migrate")
        self.logf = open(self.log_path, "a")
        self.proc = subprocess.Popen([BINARY, "-c", self.conf_path], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: self._answers(), timeout=15, what="the FastCGI socket")
        wait_for(lambda: len(self.children()) >= int(self.options["workers"]) + 1, timeout=10,
                 what="workers and reaper")
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"ctfd-containers exited {self.proc.returncode}: {self.log()[-2000:]}")
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def children(self):
        out = sh("ps", "-o", "pid=", "--ppid", str(self.proc.pid), check=False).stdout
        return [int(p) for p in out.split()]

    def log(self):
        with open(self.log_path) as fh:
            return fh.read()

    def stop(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "logf", None):
            self.logf.close()
        return self.proc.returncode if self.proc else None


# ---------------------------------------------------------------- nginx
# The http-level file (the auth-answer cache) names a path under /run; each
# test nginx gets a copy naming a directory of its own on a tmpfs instead.
HTTP_CONF = os.path.join(SRCDIR, "nginx", "ctfd-containers-http.conf")
SHIPPED_CACHE_PATH = "/run/ctfd-containers-auth-cache"
TMPFS = "/dev/shm"


def http_conf(cache_dir):
    """nginx/ctfd-containers-http.conf with its cache directory replaced (exactly once)."""
    with open(HTTP_CONF) as fh:
        text = fh.read()
    old = f"proxy_cache_path {SHIPPED_CACHE_PATH} "
    if text.count(old) != 1:
        raise RuntimeError(f"{HTTP_CONF} does not hold {old!r} exactly once")
    return text.replace(old, f"proxy_cache_path {cache_dir} ")


def fstype(path):
    return sh("stat", "-f", "-c", "%T", path).stdout.strip()


def auth_cache_parent(prefix="cc-auth-cache-"):
    """A fresh directory on a tmpfs for nginx to create its cache directory in.

    mkdtemp's random name cannot be squatted in the world-writable /dev/shm;
    0755 lets nginx's workers through to the cache directory, which nginx's
    master creates itself (0700, nginx's user), as it does under /run."""
    if not os.path.isdir(TMPFS) or fstype(TMPFS) != "tmpfs":
        raise Skip(f"{TMPFS} is not a tmpfs (the auth cache must not be on a disk)")
    parent = tempfile.mkdtemp(prefix=prefix, dir=TMPFS)
    os.chmod(parent, 0o755)
    return parent


NGINX_CONF = """
user www-data;
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log {error_level};
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log {dir}/nginx-access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/ctfd-containers-http.conf;
    upstream ctfd {{ server 127.0.0.1:{auth_port}; }}
    upstream ctfd_containers {{ server unix:{socket}; }}
    server {{
        listen 127.0.0.1:{port};
        include {srcdir}/nginx/ctfd-containers.conf;
        {extra}
        location / {{ return 404 'CTFd stand-in'; }}
    }}
}}
"""


class Nginx:
    def __init__(self, workdir, app_socket, auth_port, extra="", error_level="warn"):
        if not os.path.exists(NGINX):
            raise Skip("nginx is not installed")
        try:
            pwd.getpwnam("www-data")
        except KeyError:
            raise Skip("no www-data user for nginx's workers")
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(workdir, 0o755)
        self.port = free_port()
        self.cache_parent = auth_cache_parent()
        self.cache_dir = os.path.join(self.cache_parent, "auth-cache")
        with open(os.path.join(self.dir, "ctfd-containers-http.conf"), "w") as fh:
            fh.write(http_conf(self.cache_dir))
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as fh:
            fh.write(NGINX_CONF.format(dir=self.dir, auth_port=auth_port, socket=app_socket,
                                       port=self.port, srcdir=SRCDIR, extra=extra,
                                       error_level=error_level))
        self.conf = conf
        self.proc = None
        try:
            sh(NGINX, "-t", "-q", "-p", self.dir, "-c", conf)
            self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-c", conf],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(self._up, timeout=10, what="nginx")
        except BaseException:
            self.stop()
            raise

    def _up(self):
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", self.port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.cache_parent, ignore_errors=True)


# ---------------------------------------------------------------- client
class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.raw = status, headers, body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def code(self):
        return (self.json or {}).get("code")

    @property
    def data(self):
        return (self.json or {}).get("data")

    def __repr__(self):
        return f"<{self.status} {self.raw[:300]!r}>"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 303 is an answer to check (the admin page's post/redirect/get), not to follow."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Client:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.opener = urllib.request.build_opener(_NoRedirect)

    def call(self, method, path, user=None, body=None, token=False, csrf=True, headers=None,
             raw=None, content_type="application/json", timeout=60):
        h = dict(headers or {})
        if user is not None:
            if token:
                h["Authorization"] = f"Token t{user}"
            else:
                h["Cookie"] = f"session=s{user}"
                if csrf:
                    h["CSRF-Token"] = f"n{user}"
        data = None
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
        elif body is not None:
            data = json.dumps(body).encode()
        if data is not None and content_type:
            h["Content-Type"] = content_type
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with self.opener.open(req, timeout=timeout) as r:
                return Reply(r.status, dict(r.headers), r.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as e:
            return Reply(e.code, dict(e.headers), e.read().decode("utf-8", "replace"))

    # the routes
    def status(self, user, cid, **kw):
        return self.call("GET", f"/api/v1/container?challenge_id={cid}", user, **kw)

    def start(self, user, cid, **kw):
        return self.call("POST", "/api/v1/container", user, body={"challenge_id": cid}, **kw)

    def extend(self, user, cid, **kw):
        return self.call("PATCH", f"/api/v1/container?challenge_id={cid}", user, **kw)

    def stop(self, user, cid, **kw):
        return self.call("DELETE", f"/api/v1/container?challenge_id={cid}", user, **kw)


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode().strip()


def tcp_read(host, port, timeout=5):
    with socket.create_connection((host, port), timeout=timeout) as s:
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode().strip()


def connection_of(reply):
    return reply.data["ports"][0]


# ---------------------------------------------------------------- a whole site
class Site:
    """Database + app + stand-in auth + nginx, torn down together."""

    def __init__(self, tag, nginx_extra="", **app_options):
        require_engine_and_images()
        from fake_ctfd_auth import Auth
        self.workdir = tempfile.mkdtemp(prefix=f"cc-{tag}-")
        self.db = self.auth = self.app = self.nginx = None
        try:
            self.db = Database(f"cc_test_{tag}_{os.getpid()}")
            self.auth = Auth()
            self.app = App(self.workdir, self.db, **app_options)
            self.app.start()
            self.nginx = Nginx(self.workdir, self.app.socket, self.auth.port, nginx_extra)
        except BaseException:
            self.close()  # a failed setup leaves no database, process or directory behind
            raise
        self.client = Client(self.nginx.port)

    def close(self):
        if self.nginx:
            self.nginx.stop()
        if self.app:
            self.app.stop()
        if self.auth:
            self.auth.close()
        if self.db:
            # Remove whatever containers this site left (the tests check there are none first).
            try:
                for row in self.db.rows("SELECT name FROM container_instances"):
                    sh("docker", "rm", "-f", row[0], check=False)
                    sh("docker", "network", "rm", row[0], check=False)  # its own network
            except RuntimeError:
                pass  # no tables yet
            self.db.drop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def engine_names(self):
        """Names of our engine containers that belong to this site's rows."""
        names = {r[0] for r in self.db.rows("SELECT name FROM container_instances")}
        live = set(sh("docker", "ps", "-a", "--filter", f"label={LABEL}", "--format",
                      "{{.Names}}").stdout.split())
        return names & live


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, what=""):
    if a != b:
        raise AssertionError(f"{what}: expected {b!r}, got {a!r}")
