"""The engine over TCP with TLS client certificates (docker_endpoint =
tcp://host:port, docker_tls_ca/cert/key), against the real engine.

setup makes a throwaway CA, a server certificate for 127.0.0.1, a client
certificate (and a second, unrelated CA) with the openssl CLI, and starts, in
a thread of this process, a TLS-terminating proxy on 127.0.0.1 that requires
a client certificate signed by the CA and relays bytes to
/var/run/docker.sock. Then: the backend check (backend_check) runs
over it; a client without a certificate and a client that does not trust the
server's CA are refused (ENGINE_UNAVAILABLE, nothing left behind); and the
whole app (nginx, MariaDB) starts and stops a container through it."""
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILDDIR, LABEL, Site, Skip, case, check, connection_of, eq,  # noqa
                     http_get, port_range, require_engine_and_images, run, sh, wait_for)

ENGINE_SOCKET = "/var/run/docker.sock"
CHECK = os.path.join(BUILDDIR, "tests", "integration", "backend_check")
ALICE, WEB = 2, 1
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


# ---------------------------------------------------------------- certificates
OPENSSL_CNF = """
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""


class Pki:
    """Two CAs (the proxy's and an unrelated one), a server and a client certificate."""

    def __init__(self, d):
        if shutil.which("openssl") is None:
            raise Skip("the openssl command is not installed")
        self.dir = d
        self.cnf = self.path("openssl.cnf")
        with open(self.cnf, "w") as fh:
            fh.write(OPENSSL_CNF)
        self.serial = 1000
        self.ca, self.ca_key = self.make_ca("ca", "cc-test CA")
        self.rogue_ca, _ = self.make_ca("rogue-ca", "cc-test unrelated CA")
        self.server, self.server_key = self.make_leaf("server", "127.0.0.1", "server")
        self.client, self.client_key = self.make_leaf("client", "cc-test client", "client")
        for f in os.listdir(d):
            if f.endswith(".key"):
                os.chmod(self.path(f), 0o600)

    def path(self, name):
        return os.path.join(self.dir, name)

    def key(self, name):
        sh("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-out", self.path(name + ".key"))
        return self.path(name + ".key")

    def make_ca(self, name, cn):
        key = self.key(name)
        sh("openssl", "req", "-config", self.cnf, "-new", "-x509", "-key", key, "-days", "2",
           "-subj", f"/CN={cn}", "-extensions", "ca", "-out", self.path(name + ".pem"))
        return self.path(name + ".pem"), key

    def make_leaf(self, name, cn, ext):
        key = self.key(name)
        csr = self.path(name + ".csr")
        sh("openssl", "req", "-config", self.cnf, "-new", "-key", key, "-subj", f"/CN={cn}",
           "-out", csr)
        self.serial += 1
        sh("openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
           "-set_serial", str(self.serial), "-days", "2", "-extfile", self.cnf,
           "-extensions", ext, "-out", self.path(name + ".pem"))
        return self.path(name + ".pem"), key


# ---------------------------------------------------------------- the proxy
class TlsProxy:
    """TLS on 127.0.0.1:<port> (client certificate required, signed by `ca`),
    plain bytes to the engine's unix socket; one thread per connection."""

    def __init__(self, cert, key, ca, upstream=ENGINE_SOCKET):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(cafile=ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx = ctx
        self.upstream = upstream
        self.lock = threading.Lock()
        self.accepted = []   # peer certificate CNs of completed handshakes
        self.refused = []    # handshake errors, as text
        self.relayed = 0     # bytes relayed, both ways
        self.closing = False
        self.threads = []
        self.open_socks = set()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._accept_loop, name="tls-proxy", daemon=True)
        self.thread.start()

    def stats(self):
        with self.lock:
            return len(self.accepted), list(self.refused), self.relayed

    def _accept_loop(self):
        while not self.closing:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            t = threading.Thread(target=self._serve, args=(conn,), name="tls-proxy-conn",
                                 daemon=True)
            with self.lock:
                self.threads = [x for x in self.threads if x.is_alive()] + [t]
            t.start()

    def _serve(self, conn):
        conn.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.refused.append(f"{type(e).__name__}: {e}")
            conn.close()
            return
        peer = dict(x[0] for x in tls.getpeercert().get("subject", ()))
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with self.lock:
            self.accepted.append(peer.get("commonName", "?"))
            self.open_socks.update((tls, up))
        try:
            tls.settimeout(None)
            up.connect(self.upstream)
            self._relay(tls, up)
        except (OSError, ValueError):
            pass  # a peer reset, or teardown closed the sockets
        finally:
            with self.lock:
                self.open_socks.discard(tls)
                self.open_socks.discard(up)
            for s in (tls, up):
                try:
                    s.close()
                except OSError:
                    pass

    def _relay(self, tls, up):
        while not self.closing:
            # Bytes OpenSSL already decrypted do not show in select.
            ready = [tls] if tls.pending() else select.select([tls, up], [], [], 0.2)[0]
            if tls in ready:
                data = tls.recv(65536)
                if not data:
                    return
                up.sendall(data)
                with self.lock:
                    self.relayed += len(data)
            if up in ready:
                data = up.recv(65536)
                if not data:
                    return
                tls.sendall(data)
                with self.lock:
                    self.relayed += len(data)

    def close(self):
        self.closing = True
        self.thread.join(5)
        self.listener.close()
        with self.lock:
            threads = list(self.threads)
            socks = list(self.open_socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(5)
        return [t for t in threads if t.is_alive()]


# ---------------------------------------------------------------- helpers
class Ctx:
    pass


def setup():
    require_engine_and_images()
    if not os.access(CHECK, os.X_OK):
        raise RuntimeError(f"{CHECK} is not built (make tests/integration/backend_check)")
    ctx = Ctx()
    ctx.dir = tempfile.mkdtemp(prefix="cc-tls-pki-")
    ctx.proxy = None
    ctx.sites = []
    try:
        ctx.pki = Pki(ctx.dir)
        ctx.proxy = TlsProxy(ctx.pki.server, ctx.pki.server_key, ctx.pki.ca)
    except BaseException:
        teardown(ctx)
        raise
    print(f"# TLS proxy on {ctx.proxy.endpoint} -> {ENGINE_SOCKET}")
    return ctx


def teardown(ctx):
    for site in ctx.sites:
        close_site(ctx, site)
    if ctx.proxy is not None:
        stuck = ctx.proxy.close()
        if stuck:
            print(f"# {len(stuck)} proxy connection thread(s) did not end")
    shutil.rmtree(ctx.dir, ignore_errors=True)


def open_site(ctx, tag, **tls):
    """A whole site whose engine is the TLS proxy, with one user and one web challenge."""
    site = Site(tag, docker_endpoint=ctx.proxy.endpoint, **tls)
    ctx.sites.append(site)
    site.db.config("user_mode", "users")
    site.db.user(ALICE, "alice")
    site.db.challenge(WEB, "web")
    return site


def close_site(ctx, site):
    if site in ctx.sites:
        ctx.sites.remove(site)
        log = ""
        if site.app:
            site.app.stop()  # first, so a sanitizer's report at exit is in the log
            log = site.app.log()
        site.close()
        no_sanitizer_report(log, "the app's log")


def no_sanitizer_report(text, what):
    for mark in SANITIZER_MARKS:
        if mark in text:
            at = text.index(mark)
            raise AssertionError(f"{what}: sanitizer report: {text[max(0, at - 200):at + 1500]}")


def site_containers(site):
    """Every engine container labelled for this site (asked on the socket, not the proxy)."""
    label = f"label=ctfd-containers.site={site.app.options['site']}"
    out = sh("docker", "ps", "-a", "--filter", label, "--filter", f"label={LABEL}", "--format",
             "{{.Names}}").stdout
    return out.split()


def refused_start(ctx, site, expect_refusal):
    """A start through nginx is 503 ENGINE_UNAVAILABLE and leaves nothing live."""
    _, refused_before, _ = ctx.proxy.stats()
    r = site.client.start(ALICE, WEB)
    eq((r.status, r.code), (503, "ENGINE_UNAVAILABLE"), f"start {r}")
    check(r.json.get("success") is False, f"envelope {r}")
    eq(site.db.live_count(), 0, "live rows")
    eq(site.db.value("SELECT COUNT(*) FROM container_ports"), "0", "host ports held")
    eq(site.db.rows("SELECT state, end_reason FROM container_instances"),
       [["failed", "ENGINE_UNAVAILABLE"]], "the start's row (ended as failed)")
    eq(site.db.value("SELECT COUNT(*) FROM container_flags WHERE retired_at IS NULL"), "0",
       "unretired flags")
    eq(site_containers(site), [], "engine containers of this site")
    check(site.app.proc.poll() is None, "the app is still running")
    _, refused_after, _ = ctx.proxy.stats()
    new = refused_after[len(refused_before):]
    check(any(expect_refusal in e for e in new),
          f"the proxy saw a handshake fail with {expect_refusal}: {new}")
    line = [x for x in site.app.log().splitlines() if "start failed" in x]
    check(line, "the app logs the failed start")
    print(f"# app: {line[-1].split('] ', 1)[-1][:200]}")
    print(f"# proxy: {new[-1][:200]}")
    # Second start: the same, and still nothing live (the refusal is not sticky or racy).
    r = site.client.start(ALICE, WEB)
    eq((r.status, r.code), (503, "ENGINE_UNAVAILABLE"), f"second start {r}")
    eq(site.db.live_count(), 0, "live rows after a second start")
    return line[-1]


def reconcile_once_fails(site):
    r = site.app.run("--reconcile-once", check=False)
    check(r.returncode != 0, f"--reconcile-once exits non-zero: {r.returncode} {r.stdout!r}")
    check("failures 1" in r.stdout, f"its report counts the failed listing: {r.stdout!r}")
    no_sanitizer_report(r.stderr, "--reconcile-once")
    print(f"# --reconcile-once: exit {r.returncode}, {r.stdout.strip()[:120]}; "
          f"{r.stderr.strip().splitlines()[-1][:200] if r.stderr.strip() else ''}")
    return r


def run_check(ctx, **tls):
    """backend_check against the proxy with these TLS files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_TEST_DOCKER_")}
    env["CC_TEST_DOCKER_ENDPOINT"] = ctx.proxy.endpoint
    # Its three host ports at the top of this file's block, below the ephemeral
    # range: the TLS connections to the proxy take ephemeral client ports, and
    # one in TIME_WAIT on the default ports (39000-39899) makes publishing fail.
    env["CC_TEST_PORT_BASE"] = str(int(port_range(f"cc_test_tls_{os.getpid()}").split("-")[1]) - 9)
    env.update({f"CC_TEST_DOCKER_TLS_{k.upper()}": v for k, v in tls.items()})
    return subprocess.run([CHECK], capture_output=True, text=True, timeout=300, env=env)


# The messages curlx gives a transport failure, all with ERR_ENGINE_UNAVAILABLE.
ENGINE_UNAVAILABLE_MESSAGES = ("engine unreachable: ", "engine did not answer within ",
                               "engine TLS failed: ", "engine connection failed: ")


def ping_fails(ctx, **tls):
    """backend_check's start-up probe is the backend's ping: when it fails the
    program skips, naming the endpoint and the ping's error message."""
    r = run_check(ctx, **tls)
    no_sanitizer_report(r.stdout + r.stderr, "backend_check")
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    prefix = f"1..0 # SKIP no docker engine at {ctx.proxy.endpoint} ("
    check(r.returncode == 0 and last.startswith(prefix), f"the backend's ping fails: {r.stdout!r}")
    reason = last[len(prefix):].removesuffix(")")
    check(reason.startswith(ENGINE_UNAVAILABLE_MESSAGES),
          f"with one of curlx's ENGINE_UNAVAILABLE messages: {reason!r}")
    print(f"# ping: {reason[:200]}")
    return reason


# ---------------------------------------------------------------- cases
@case
def proxy_requires_client_cert(ctx):
    """the proxy relays /_ping for a client certificate and refuses a client without one"""
    def ping(with_cert):
        c = ssl.create_default_context(cafile=ctx.pki.ca)
        if with_cert:
            c.load_cert_chain(ctx.pki.client, ctx.pki.client_key)
        with socket.create_connection(("127.0.0.1", ctx.proxy.port), timeout=10) as raw:
            with c.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        return data
                    data += chunk
    reply = ping(True)
    check(reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"OK"), f"ping reply {reply!r}")
    try:
        reply = ping(False)
        raise AssertionError(f"a client without a certificate got {reply!r}")
    except (ssl.SSLError, ConnectionError):
        pass


@case
def backend_check_over_tls(ctx):
    """backend_check over tcp:// with the CA, client certificate and key: every case passes"""
    accepted0, _, relayed0 = ctx.proxy.stats()
    r = run_check(ctx, ca=ctx.pki.ca, cert=ctx.pki.client, key=ctx.pki.client_key)
    no_sanitizer_report(r.stdout + r.stderr, "backend_check")
    lines = r.stdout.splitlines()
    plan = [x for x in lines if x.startswith("1..")]
    oks = [x for x in lines if x.startswith("ok ")]
    bad = [x for x in lines if x.startswith("not ok")]
    for x in bad:
        print(f"# {x}")
    check(r.returncode == 0, f"exit {r.returncode}: {r.stderr[-1000:]}")
    check(len(plan) == 1 and "SKIP" not in plan[0], f"plan {plan} (stdout {r.stdout[-500:]!r})")
    planned = int(plan[0][3:].split()[0])
    check(planned > 0 and not bad and len(oks) == planned,
          f"{len(oks)} ok, {len(bad)} not ok of {planned}")
    accepted1, _, relayed1 = ctx.proxy.stats()
    check(accepted1 > accepted0 and relayed1 > relayed0, "the requests went through the proxy")
    print(f"# backend_check over TLS: {len(oks)}/{planned} ok "
          f"({accepted1 - accepted0} TLS connections, {relayed1 - relayed0} bytes relayed)")


@case
def no_client_certificate(ctx):
    """no client certificate (CA only): the app starts (the backend connects lazily); a start is 503 ENGINE_UNAVAILABLE and nothing stays; ping and --reconcile-once fail"""
    ping_fails(ctx, ca=ctx.pki.ca)
    site = open_site(ctx, "tlsnocert", docker_tls_ca=ctx.pki.ca)
    try:
        refused_start(ctx, site, "PEER_DID_NOT_RETURN_A_CERTIFICATE")
        reconcile_once_fails(site)
    finally:
        close_site(ctx, site)


@case
def untrusted_server_ca(ctx):
    """the client trusts another CA (valid client certificate): the app refuses the proxy's certificate, 503 ENGINE_UNAVAILABLE"""
    reason = ping_fails(ctx, ca=ctx.pki.rogue_ca, cert=ctx.pki.client, key=ctx.pki.client_key)
    check(reason.startswith("engine TLS failed: "), f"the ping names a TLS failure: {reason!r}")
    site = open_site(ctx, "tlsbadca", docker_tls_ca=ctx.pki.rogue_ca,
                     docker_tls_cert=ctx.pki.client, docker_tls_key=ctx.pki.client_key)
    try:
        line = refused_start(ctx, site, "UNKNOWN_CA")
        check("engine TLS failed" in line, f"the app names a TLS failure: {line}")
        reconcile_once_fails(site)
    finally:
        close_site(ctx, site)


@case
def whole_app_over_tls(ctx):
    """the whole app over TLS: a start through nginx serves the flag, stop removes the container"""
    accepted0, _, _ = ctx.proxy.stats()
    site = open_site(ctx, "tls", docker_tls_ca=ctx.pki.ca, docker_tls_cert=ctx.pki.client,
                     docker_tls_key=ctx.pki.client_key)
    try:
        r = site.client.start(ALICE, WEB)
        eq(r.status, 200, f"start {r}")
        eq(r.data["state"], "running", "state")
        name = f"{site.app.options['site']}-{r.data['id']}"
        eq(site_containers(site), [name], "the engine runs the container")
        flag = http_get(connection_of(r)["connection"])
        check(flag.startswith("CTF{") and len(flag) == 37, f"flag shape {flag!r}")
        check(ctx.proxy.stats()[0] > accepted0, "the app's requests went through the proxy")
        r = site.client.stop(ALICE, WEB)
        eq((r.status, r.json), (200, {"success": True, "data": {}}), "stop")
        eq(site_containers(site), [], "the container is removed")
        eq(site.db.live_count(), 0, "live rows")
        r = site.app.run("--reconcile-once", check=False)
        eq(r.returncode, 0, f"--reconcile-once over TLS {r.stdout!r} {r.stderr[-500:]!r}")
        check(flag not in site.app.log(), "the flag is not in the log")
    finally:
        close_site(ctx, site)


@case
def nothing_left(ctx):
    """at the end: no container of these sites on the engine, the proxy holds no connection"""
    tags = [f"cct-{t}-{os.getpid()}" for t in ("tls", "tlsnocert", "tlsbadca")]
    out = sh("docker", "ps", "-a", "--filter", f"label={LABEL}", "--format",
             "{{.Names}}").stdout.split()
    eq([n for n in out if any(n.startswith(t + "-") for t in tags)], [], "containers")
    wait_for(lambda: not ctx.proxy.open_socks, timeout=10, what="proxy connections to close")
    accepted, refused, relayed = ctx.proxy.stats()
    print(f"# proxy: {accepted} TLS connections accepted, {len(refused)} refused, "
          f"{relayed} bytes relayed")


if __name__ == "__main__":
    run(setup, teardown)
