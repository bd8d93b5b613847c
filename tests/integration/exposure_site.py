"""A whole site for the exposure tests: MariaDB, the app, the stand-in auth,
and real nginx with three servers built from the shipped files:
  - the CTFd site (nginx/ctfd-containers.conf), for the player API;
  - the wildcard route server (nginx/ctfd-containers-routes.conf) for
    NAME.containers.test;
  - the stream server (nginx/ctfd-containers-stream.conf, its listen port,
    certificate and map path substituted) for TLS by SNI,
with a self-signed wildcard certificate made by the openssl CLI, and the
host firewall (scripts/isolation-firewall) applied.
"""
import http.client
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import (NGINX, SRCDIR, App, Client, Database, Skip, auth_cache_parent, free_port,
                     http_conf, require_engine_and_images,
                     sh, wait_for)

DOMAIN = "containers.test"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
WS_IMAGE = "ctfd-containers/demo-ws:latest"

NGINX_CONF = """
user www-data;
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
load_module {stream_module};
events {{ worker_connections 2048; }}
http {{
    include /etc/nginx/mime.types;
    include {dir}/ctfd-containers-http.conf;
    access_log {dir}/nginx-access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream ctfd {{ server 127.0.0.1:{auth_port}; }}
    upstream ctfd_containers {{ server unix:{socket}; }}
    server {{
        listen 127.0.0.1:{site_port};
        include {srcdir}/nginx/ctfd-containers.conf;
        location / {{ return 404 'CTFd stand-in'; }}
    }}
    server {{
        listen 127.0.0.1:{routes_port};
        server_name ~^[a-z0-9-]+\\.containers\\.test$;
        include {srcdir}/nginx/ctfd-containers-routes.conf;
    }}
}}
stream {{
    include {dir}/stream.conf;
}}
"""


def stream_conf(dir, port, cert, key, mapfile):
    with open(os.path.join(SRCDIR, "nginx", "ctfd-containers-stream.conf")) as fh:
        text = fh.read()
    for old, new in (("listen 8443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
                     ("/etc/ssl/ctfd-containers/wildcard.crt", cert),
                     ("/etc/ssl/ctfd-containers/wildcard.key", key),
                     ("/var/lib/ctfd-containers/tls-routes.map", mapfile)):
        if old not in text:
            raise RuntimeError(f"nginx/ctfd-containers-stream.conf no longer has {old!r}")
        text = text.replace(old, new)
    with open(os.path.join(dir, "stream.conf"), "w") as fh:
        fh.write(text)


def firewall():
    if shutil.which("iptables") is None:
        raise Skip("iptables is not installed (apt-get install iptables)")
    sh(os.path.join(SRCDIR, "scripts", "isolation-firewall"), "apply")


class ExposureSite:
    def __init__(self, tag, **app_options):
        require_engine_and_images()
        if not os.path.exists(NGINX):
            raise Skip("nginx is not installed")
        if not os.path.exists(STREAM_MODULE):
            raise Skip("nginx's stream module is missing (apt-get install libnginx-mod-stream)")
        if shutil.which("openssl") is None:
            raise Skip("the openssl command is missing")
        if sh("docker", "image", "inspect", WS_IMAGE, check=False).returncode != 0:
            raise Skip(f"image {WS_IMAGE} missing (run scripts/build-images)")
        try:
            pwd.getpwnam("www-data")
        except KeyError:
            raise Skip("no www-data user for nginx's workers")
        firewall()
        from fake_ctfd_auth import Auth
        self.workdir = tempfile.mkdtemp(prefix=f"cc-{tag}-")
        os.chmod(self.workdir, 0o755)
        self.db = self.auth = self.app = self.nginx = None
        self.dir = os.path.join(self.workdir, "nginx")
        os.makedirs(self.dir)
        self.site_port, self.routes_port, self.tls_port = free_port(), free_port(), free_port()
        self.mapfile = os.path.join(self.dir, "tls-routes.map")
        with open(self.mapfile, "w") as fh:
            fh.write("# empty until the reaper writes it\n")
        try:
            self.cert, self.key = self._certificate()
            self.db = Database(f"cc_test_{tag}_{os.getpid()}")
            self.auth = Auth()
            self.app = App(self.workdir, self.db, route_domain=DOMAIN, route_scheme="http",
                           route_public_port=self.routes_port, route_upstream_host="127.0.0.1",
                           tls_port=self.tls_port, tls_routes_file=self.mapfile,
                           tls_reload_pid_file=os.path.join(self.dir, "nginx.pid"),
                           tls_reload_min_interval_ms=300, reconcile_interval_seconds=1,
                           **app_options)
            self.db.config("user_mode", "users")
            self.app.start()
            self._nginx()
        except BaseException:
            self.close()
            raise
        self.client = Client(self.site_port)

    def _certificate(self):
        cert, key = os.path.join(self.dir, "wildcard.crt"), os.path.join(self.dir, "wildcard.key")
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
           "-subj", f"/CN=*.{DOMAIN}", "-addext", f"subjectAltName=DNS:*.{DOMAIN}",
           "-keyout", key, "-out", cert)
        return cert, key

    def _nginx(self):
        stream_conf(self.dir, self.tls_port, self.cert, self.key, self.mapfile)
        # The shipped auth location caches CTFd's answers (decision 0014): its
        # http-level zone, with the cache on a tmpfs of this site's own.
        self.cache_parent = auth_cache_parent()
        with open(os.path.join(self.dir, "ctfd-containers-http.conf"), "w") as fh:
            fh.write(http_conf(os.path.join(self.cache_parent, "auth-cache")))
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as fh:
            fh.write(NGINX_CONF.format(dir=self.dir, stream_module=STREAM_MODULE,
                                       auth_port=self.auth.port, socket=self.app.socket,
                                       site_port=self.site_port, routes_port=self.routes_port,
                                       srcdir=SRCDIR))
        sh(NGINX, "-t", "-q", "-p", self.dir, "-c", conf)
        self.nginx = subprocess.Popen([NGINX, "-p", self.dir, "-c", conf],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self._listening(self.routes_port) and self._listening(self.tls_port),
                 timeout=10, what="nginx")

    @staticmethod
    def _listening(port):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def close(self):
        if self.nginx:
            self.nginx.send_signal(signal.SIGQUIT)
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
        if self.app:
            self.app.stop()
        if self.auth:
            self.auth.close()
        if self.db:
            try:
                for (name,) in self.db.rows("SELECT name FROM container_instances"):
                    sh("docker", "rm", "-f", name, check=False)
                    sh("docker", "network", "rm", name, check=False)
            except RuntimeError:
                pass
            self.db.drop()
        if getattr(self, "cache_parent", None):
            shutil.rmtree(self.cache_parent, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- reaching containers
    def by_name(self, host, path="/", method="GET", body=None, headers=None, timeout=10):
        """A request to the route server with Host: host. (status, body text, headers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.routes_port, timeout=timeout)
        try:
            h = {"Host": host}
            h.update(headers or {})
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace"), dict(r.getheaders())
        finally:
            conn.close()

    def tls(self, sni, timeout=10):
        """What a TLS connection to the shared port with this SNI name reads (openssl CLI)."""
        r = subprocess.run(["openssl", "s_client", "-quiet", "-connect",
                            f"127.0.0.1:{self.tls_port}", "-servername", sni],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        return r.stdout.strip()

    def container_of(self, user, cid):
        return self.db.value(f"SELECT name FROM container_instances WHERE account_id = {user} "
                             f"AND challenge_id = {cid} AND live = 1")

    def nginx_reloads(self):
        return self.app.log().count("tls routes:")


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def timed_get(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def direct_get(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def exec_in(name, script, timeout=20):
    """Run a shell line inside a container (busybox sh); (exit code, output)."""
    r = subprocess.run(["docker", "exec", name, "sh", "-c", script], capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).strip()


def addresses(name):
    """(container address, gateway) on the container's own network."""
    out = sh("docker", "inspect", "-f",
             "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Gateway}}{{end}}", name).stdout
    ip, gw = out.split()
    return ip, gw
