"""Reaching containers by name, and what they cannot reach (docs/exposure.md).

Real nginx with the shipped nginx/ctfd-containers-routes.conf (HTTP by
subdomain, the app as the router) and nginx/ctfd-containers-stream.conf (TCP
in TLS on one port, routed by SNI), real MariaDB, the real engine, and the
host firewall of scripts/isolation-firewall. Two accounts' containers are
reached by name over HTTP, TCP and TLS; from inside a container every attempt
to reach the other account, the host, MariaDB, the engine or the metadata
address fails while a control attempt to something allowed succeeds; a
stopped name answers 404; hardening is read back from the engine API.
Timings are printed as diagnostics, never asserted.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exposure_site import (DOMAIN, WS_IMAGE, ExposureSite, addresses, direct_get, exec_in,  # noqa
                           pct, timed_get)
from harness import SRCDIR, TCP_IMAGE, WEB_IMAGE, case, check, eq, run, sh, tcp_read, wait_for  # noqa

ADMIN, ALICE, BOB, CAROL = 1, 2, 3, 4
CROWD = list(range(10, 18))  # eight more accounts, all at once
WEB, TCP, OWNER, RO, BADCAP, WS, NET, PWN = 1, 2, 3, 4, 5, 6, 7, 8
S = {}  # what the cases hand each other


def setup():
    site = ExposureSite("expose", max_containers_per_account=10)
    db = site.db
    db.user(ADMIN, "admin", admin=True)
    site.auth.admins.add(ADMIN)
    for uid, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol")):
        db.user(uid, name)
    for uid in CROWD:
        db.user(uid, f"player{uid}")
    db.challenge(WEB, "web")
    db.challenge(TCP, "tcp", image=TCP_IMAGE, ports="9000/tcp")
    db.challenge(OWNER, "owner only")
    db.challenge(RO, "read-only", image=TCP_IMAGE, ports="9000/tcp")
    db.challenge(BADCAP, "bad cap", image=TCP_IMAGE, ports="9000/tcp")
    db.challenge(WS, "ws", image=WS_IMAGE, ports="8080/http,8081/http")
    db.challenge(NET, "internet", image=TCP_IMAGE, ports="9000/tcp")
    db.challenge(PWN, "pwn", image=TCP_IMAGE, ports="9000/tcp")
    db.sql(f"UPDATE docker_challenge SET `connect` = 'openssl' WHERE id = {TCP};"
           f"UPDATE docker_challenge SET route_owner_only = 1 WHERE id = {OWNER};"
           f"UPDATE docker_challenge SET read_only = 1, cap_add = 'NET_BIND_SERVICE' WHERE id = {RO};"
           f"UPDATE docker_challenge SET cap_add = 'CHOWN,SYS_ADMIN' WHERE id = {BADCAP};"
           f"UPDATE docker_challenge SET allow_internet = 1 WHERE id = {NET};"
           f"UPDATE docker_challenge SET `connect` = 'pwntools' WHERE id = {PWN}")
    return site


def teardown(site):
    site.close()


def started(site, user, cid):
    r = site.client.start(user, cid)
    eq(r.status, 200, f"start of {cid} for {user}: {r}")
    return r.data


def flag_of(site, container_id):
    r = site.client.call("GET", f"/api/v1/admin/containers/{container_id}/flag", ADMIN)
    eq(r.status, 200, "flag reveal")
    return r.data["flag"]


@case
def http_by_name(site):
    """Two accounts' web containers answer their own flags at their own random names"""
    a, b = started(site, ALICE, WEB), started(site, BOB, WEB)
    for c in (a, b):
        route = c["route"]
        check(len(route) == 20 and route.isalnum() and route.islower(), f"route {route!r}")
        eq(c["ports"][0]["url"], f"http://{route}.{DOMAIN}:{site.routes_port}/", "url")
        eq(c["ports"][0]["connection"], c["ports"][0]["url"], "connection is the url")
    check(a["route"] != b["route"], "two containers, two names")
    for c in (a, b):
        status, body, _ = site.by_name(f"{c['route']}.{DOMAIN}")
        eq(status, 200, "by name")
        eq(body.strip(), flag_of(site, c["id"]), "the container's own flag")
        eq(direct_get(c["ports"][0]["host_port"])[1].strip(), body.strip(), "same as direct")
    S["alice_web"], S["bob_web"] = a, b


@case
def unknown_names_404(site):
    """Unknown, malformed and foreign names answer a clear 404 page"""
    route = S["alice_web"]["route"]
    for host in ("abcdefghijklmnopqrst." + DOMAIN, route[:12] + "." + DOMAIN,
                 route + "-9999." + DOMAIN, route + "-8080x." + DOMAIN, "x." + route + "." + DOMAIN,
                 route + ".other.test", route + "_." + DOMAIN):
        status, body, _ = site.by_name(host)
        eq(status, 404, host)
        check("ROUTE_NOT_FOUND" in body, f"page says why: {body!r}")
    # DNS names are caseless: nginx's $host is lowercased, so is the name.
    eq(site.by_name(route.upper() + "." + DOMAIN.upper())[0], 200, "upper case")


@case
def tcp_by_port_and_tls_by_sni(site):
    """TCP containers: nc on the host port, and TLS on one shared port routed by SNI"""
    a, b = started(site, ALICE, TCP), started(site, BOB, TCP)
    for c in (a, b):
        p = c["ports"][0]
        sni = f"{c['route']}.{DOMAIN}"
        eq(p["nc"], f"nc 127.0.0.1 {p['host_port']}", "nc line")
        eq(p["sni"], sni, "sni")
        eq(p["connect"], "openssl", "the challenge's connect style")
        eq(p["connection"], f"openssl s_client -quiet -connect {sni}:{site.tls_port} "
                            f"-servername {sni}", "connection line")
        flag = flag_of(site, c["id"])
        eq(tcp_read("127.0.0.1", p["host_port"]), flag, "nc")
        t0 = time.monotonic()
        got = wait_for(lambda: site.tls(sni) == flag, timeout=15, what=f"TLS route {sni}")
        print(f"# TLS route usable {time.monotonic() - t0:.2f} s after the start answered")
        check(got)
        eq(site.tls(f"{c['route']}-9000.{DOMAIN}"), flag, "NAME-PORT names the port")
    eq(site.tls(f"abcdefghijklmnopqrst.{DOMAIN}"), "", "unknown SNI reads nothing")
    S["alice_tcp"], S["bob_tcp"] = a, b


@case
def pwntools_line(site):
    """connect = pwntools gives a pwntools line for the TLS route"""
    c = started(site, CAROL, PWN)
    sni = f"{c['route']}.{DOMAIN}"
    eq(c["ports"][0]["connection"], f'remote("{sni}", {site.tls_port}, ssl=True, sni="{sni}")',
       "pwntools line")
    eq(site.client.stop(CAROL, PWN).status, 200, "stop")


@case
def firewall_in_place(site):
    """scripts/isolation-firewall check finds every rule"""
    r = sh(os.path.join(SRCDIR, "scripts", "isolation-firewall"), "check", check=False)
    eq(r.returncode, 0, r.stdout + r.stderr)


def attempt(name, host, port, send=""):
    """From inside container `name`: connect with busybox nc (2 s timeout); (ok, output)."""
    rc, out = exec_in(name, f"printf '{send}' | nc -w 2 {host} {port}")
    return rc == 0 and out != "", out


@case
def container_cannot_reach_the_other_account(site):
    """From A's container, B's container fails (by address and by published port); A itself answers"""
    a, b = site.container_of(ALICE, WEB), site.container_of(BOB, WEB)
    a_ip, a_gw = addresses(a)
    b_ip, _ = addresses(b)
    ok, out = attempt(a, a_ip, 8080, r"GET / HTTP/1.0\r\n\r\n")
    check(ok and "200" in out, f"control: A reaches itself: {out!r}")
    ok, out = attempt(a, b_ip, 8080, r"GET / HTTP/1.0\r\n\r\n")
    check(not ok, f"A reached B's container: {out!r}")
    b_port = S["bob_web"]["ports"][0]["host_port"]
    ok, out = attempt(a, a_gw, b_port, r"GET / HTTP/1.0\r\n\r\n")
    check(not ok, f"A reached B through the host: {out!r}")
    tcp_b = site.container_of(BOB, TCP)
    ok, out = attempt(a, addresses(tcp_b)[0], 9000)
    check(not ok, f"A reached B's tcp container: {out!r}")


class HostListener:
    """A TCP service on every host address (standing in for CTFd, MariaDB, the engine)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.sendall(b"host-service\n")
            c.close()

    def close(self):
        self.sock.close()


def control_network():
    """A plain bridge network (bridge name br-..., no firewall rule of ours), with an
    explicit small subnet: the engine's default pools may be full on a shared engine."""
    name = f"cc-control-{os.getpid()}"
    for i in range(20):
        subnet = f"10.214.{(os.getpid() + i * 37) % 256}.0/28"
        r = sh("docker", "network", "create", "--label", "ctfd-containers.test=exposure",
               "--subnet", subnet, name, check=False)
        if r.returncode == 0:
            return name
    raise AssertionError(f"cannot create a control network: {r.stderr}")


@case
def container_cannot_reach_the_host(site):
    """From A's container: the host, MariaDB, the engine, the metadata address fail; a control on a plain bridge reaches the host"""
    a = site.container_of(ALICE, WEB)
    a_ip, gw = addresses(a)
    listener = HostListener()
    ctl_net = None
    try:
        # Control: the same attempt from a throwaway container on a plain bridge
        # network of the test's own (not one of ours, so no firewall rule
        # applies) reaches the host service, so the attempt below can fail for
        # the right reason only.
        ctl_net = control_network()
        ctl = sh("docker", "run", "--rm", "--network", ctl_net, "--label",
                 "ctfd-containers.test=exposure", "--entrypoint", "/bin/sh", WEB_IMAGE, "-c",
                 "gw=$(ip route | awk '/^default/ {print $3}'); echo gw=$gw; "
                 f"nc -w 2 $gw {listener.port} </dev/null", check=False)
        check("host-service" in ctl.stdout, f"control from a plain bridge: {ctl.stdout!r} {ctl.stderr!r}")
        bridge_gw = ctl.stdout.split("gw=")[1].split()[0]
        for host in (gw, bridge_gw):  # the host on its own gateway, and on another bridge's
            ok, out = attempt(a, host, listener.port)
            check(not ok, f"A reached the host service at {host}: {out!r}")
    finally:
        listener.close()
        if ctl_net:
            sh("docker", "network", "rm", ctl_net, check=False)
    for port, what in ((3306, "MariaDB"), (2375, "engine (tcp)"), (2376, "engine (tls)"),
                       (22, "sshd")):
        ok, out = attempt(a, gw, port)
        check(not ok, f"A reached the host's {what}: {out!r}")
    rc, out = exec_in(a, "test -e /var/run/docker.sock || test -e /run/docker.sock")
    check(rc != 0, "the engine's socket is not inside the container")
    ok, out = attempt(a, "169.254.169.254", 80, r"GET / HTTP/1.0\r\n\r\n")
    check(not ok, f"metadata address answered: {out!r}")
    ok, out = attempt(a, "1.1.1.1", 53)
    check(not ok, "no outbound traffic without allow_internet")


@case
def internet_allowed_network_is_still_isolated(site):
    """allow_internet: a cci- bridge with NAT, and still no way to the host or other accounts"""
    c = started(site, CAROL, NET)
    name = site.container_of(CAROL, NET)
    net = json.loads(sh("docker", "network", "inspect", name).stdout)[0]
    check(net["Options"]["com.docker.network.bridge.name"].startswith("cci-"), "cci- bridge")
    eq(net["Options"]["com.docker.network.bridge.enable_ip_masquerade"], "true", "NAT on")
    _, gw = addresses(name)
    ok, out = attempt(name, addresses(site.container_of(ALICE, WEB))[0], 8080)
    check(not ok, f"reached another account: {out!r}")
    ok, out = attempt(name, gw, 3306)
    check(not ok, f"reached the host: {out!r}")
    ok, out = attempt(name, "169.254.169.254", 80)
    check(not ok, f"reached the metadata address: {out!r}")
    eq(site.client.stop(CAROL, NET).status, 200, "stop")
    del c


@case
def hardening_read_back_from_the_engine(site):
    """The engine reports: capabilities dropped, no-new-privileges, limits, own network, not privileged"""
    name = site.container_of(ALICE, WEB)
    hc = json.loads(sh("docker", "inspect", name).stdout)[0]["HostConfig"]
    eq(hc["CapDrop"], ["ALL"], "CapDrop")
    eq(sorted(hc["CapAdd"]), sorted(["CHOWN", "SETUID", "SETGID", "NET_BIND_SERVICE"]), "CapAdd")
    check("no-new-privileges:true" in hc["SecurityOpt"], f"SecurityOpt {hc['SecurityOpt']}")
    eq(hc["Privileged"], False, "Privileged")
    eq(hc["PidsLimit"], 256, "PidsLimit")
    eq(hc["Memory"], 256 * 1024 * 1024, "Memory")
    eq(hc["NanoCpus"], 500000000, "NanoCpus")
    eq(hc["NetworkMode"], name, "its own network")
    net = json.loads(sh("docker", "network", "inspect", name).stdout)[0]
    opts = net["Options"]
    eq(opts["com.docker.network.bridge.enable_icc"], "false", "icc")
    eq(opts["com.docker.network.bridge.enable_ip_masquerade"], "false", "no NAT")
    check(opts["com.docker.network.bridge.name"].startswith("ccp-"), "ccp- bridge")
    eq(net["Labels"].get("ctfd-containers.site"), site.app.options["site"], "network label")
    eq(list(net["Containers"].values())[0]["Name"], name, "only its container on it")
    eq(len(net["Containers"]), 1, "one container per network")


@case
def read_only_root_and_listed_caps(site):
    """read_only: the root is read-only (a write fails, /tmp works); cap_add: exactly the listed caps"""
    started(site, ALICE, RO)
    name = site.container_of(ALICE, RO)
    hc = json.loads(sh("docker", "inspect", name).stdout)[0]["HostConfig"]
    eq(hc["ReadonlyRootfs"], True, "ReadonlyRootfs")
    eq(hc["CapAdd"], ["NET_BIND_SERVICE"], "CapAdd")
    rc, out = exec_in(name, "echo x > /written")
    check(rc != 0, f"write to / succeeded: {out!r}")
    rc, out = exec_in(name, "echo x > /tmp/written && cat /tmp/written")
    eq((rc, out), (0, "x"), "control: /tmp is writable")
    eq(site.client.stop(ALICE, RO).status, 200, "stop")


@case
def forbidden_capability_refused(site):
    """A challenge asking for SYS_ADMIN is refused (CAPABILITY_FORBIDDEN) and nothing changes"""
    before, engine = site.db.snapshot(), sh("docker", "ps", "-aq").stdout.split()
    r = site.client.start(ALICE, BADCAP)
    eq((r.status, r.code), (500, "CAPABILITY_FORBIDDEN"), f"refusal: {r}")
    eq(site.db.snapshot(), before, "tables")
    check(site.container_of(ALICE, BADCAP) is None, "no container")
    del engine


@case
def owner_only(site):
    """route_owner_only: the owner (and admins) open it; another player gets 403, no session 401"""
    c = started(site, ALICE, OWNER)
    host = f"{c['route']}.{DOMAIN}"
    flag = flag_of(site, c["id"])
    status, body, _ = site.by_name(host, headers={"Cookie": f"session=s{ALICE}"})
    eq((status, body.strip()), (200, flag), "the owner")
    status, body, _ = site.by_name(host, headers={"Cookie": f"session=s{ADMIN}"})
    eq((status, body.strip()), (200, flag), "an admin")
    status, body, _ = site.by_name(host, headers={"Cookie": f"session=s{BOB}"})
    eq(status, 403, f"another player: {body!r}")
    check(flag not in body, "no flag to another player")
    status, body, _ = site.by_name(host)
    eq(status, 401, f"no session: {body!r}")
    check(flag not in body, "no flag without a session")
    # The public web container of another account needs no session at all.
    status, _, _ = site.by_name(f"{S['bob_web']['route']}.{DOMAIN}")
    eq(status, 200, "a public route")


@case
def uploads_websockets_and_cookies(site):
    """A 20 MiB upload, websocket headers and a 101 upgrade pass through; CTFd's cookie does not"""
    c = started(site, ALICE, WS)
    route = c["route"]
    eq(c["ports"][1]["url"], f"http://{route}-8081.{DOMAIN}:{site.routes_port}/", "second port")
    body = b"x" * (20 * 1024 * 1024)
    status, text, _ = site.by_name(f"{route}.{DOMAIN}", "/cgi-bin/size", "POST", body,
                                   {"Content-Type": "application/octet-stream",
                                    "Cookie": "session=s2; theme=dark",
                                    "Upgrade": "websocket", "Connection": "Upgrade"}, timeout=60)
    eq(status, 200, text)
    check(f"length={len(body)} received={len(body)}" in text, f"upload: {text!r}")
    check("upgrade=websocket" in text and "connection=Upgrade" in text, f"headers: {text!r}")
    check("session=" not in text and "theme=dark" in text, f"cookies: {text!r}")
    with socket.create_connection(("127.0.0.1", site.routes_port), timeout=10) as s:
        s.sendall((f"GET /chat HTTP/1.1\r\nHost: {route}-8081.{DOMAIN}\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        check(got.startswith(b"HTTP/1.1 101"), f"upgrade answer: {got[:80]!r}")
        s.sendall(b"ping-frame-1234")
        end = time.monotonic() + 10
        while b"ping-frame-1234" not in got and time.monotonic() < end:
            got += s.recv(4096)
        check(b"ping-frame-1234" in got, "bytes echo through the upgraded connection")
    eq(site.client.stop(ALICE, WS).status, 200, "stop")


@case
def many_at_once(site):
    """Eight more accounts' containers, all reached by name at the same time"""
    conts = {uid: started(site, uid, WEB) for uid in CROWD}
    results = {}

    def fetch(uid):
        results[uid] = site.by_name(f"{conts[uid]['route']}.{DOMAIN}")

    threads = [threading.Thread(target=fetch, args=(u,)) for u in CROWD]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for uid in CROWD:
        eq(results[uid][0], 200, f"account {uid}")
        eq(results[uid][1].strip(), flag_of(site, conts[uid]["id"]), f"account {uid}'s flag")
    for uid in CROWD:
        site.client.stop(uid, WEB)


@case
def latency_by_name_and_direct(site):
    """Proxied by name next to a direct request to the host port (same run; printed, not asserted)"""
    c = S["bob_web"]
    host, port = f"{c['route']}.{DOMAIN}", c["ports"][0]["host_port"]
    site.by_name(host), direct_get(port)  # warm both paths
    n = 200
    proxied = timed_get(lambda: site.by_name(host), n)
    direct = timed_get(lambda: direct_get(port), n)
    print(f"# by name (nginx + lookup): p50 {pct(proxied, 50):.2f} ms, p99 {pct(proxied, 99):.2f} ms "
          f"({n} requests)")
    print(f"# direct host port:         p50 {pct(direct, 50):.2f} ms, p99 {pct(direct, 99):.2f} ms")


@case
def stopped_name_answers_404(site):
    """A stopped container's name answers 404 (time from the stop request printed), its network is gone"""
    c = S["alice_web"]
    host = f"{c['route']}.{DOMAIN}"
    name = site.container_of(ALICE, WEB)
    eq(site.by_name(host)[0], 200, "answers before")
    t0 = time.monotonic()
    stopper = threading.Thread(target=lambda: S.__setitem__("stop", site.client.stop(ALICE, WEB)))
    stopper.start()
    wait_for(lambda: site.by_name(host)[0] == 404, timeout=5, step=0.01, what="404 after stop")
    took = time.monotonic() - t0
    stopper.join()
    print(f"# stop request sent -> name answers 404: {took * 1000:.0f} ms "
          f"(the stop request itself took longer: it waits for the engine)")
    eq(S["stop"].status, 200, "stop")
    r = sh("docker", "network", "inspect", name, check=False)
    check(r.returncode != 0, "the container's network is removed with it")
    # TLS: a stopped TCP container's SNI name leaves the map.
    t = S["alice_tcp"]
    eq(site.client.stop(ALICE, TCP).status, 200, "stop tcp")
    sni = f"{t['route']}.{DOMAIN}"
    wait_for(lambda: sni not in open(site.mapfile).read(), timeout=10, what="map update")
    eq(site.tls(sni), "", "stopped SNI name reads nothing")


@case
def orphan_networks_reconciled(site):
    """A network with our labels and no live row is removed by the reaper"""
    name = f"{site.app.options['site']}-999999"
    sh("docker", "network", "create", "--label", "ctfd-containers.instance=999999",
       "--label", f"ctfd-containers.site={site.app.options['site']}", name)
    try:
        wait_for(lambda: sh("docker", "network", "inspect", name, check=False).returncode != 0,
                 timeout=15, what="orphan network removed")
    finally:
        sh("docker", "network", "rm", name, check=False)


@case
def nothing_left(site):
    """After every stop, no container or network of this site remains"""
    r = site.client.call("DELETE", "/api/v1/admin/containers?confirm=all", ADMIN)
    eq((r.status, r.data["failed"]), (200, 0), f"stop all: {r}")
    check(r.data["stopped"] >= 3, f"stopped what was left: {r}")
    label = f"ctfd-containers.site={site.app.options['site']}"
    wait_for(lambda: sh("docker", "network", "ls", "-q", "--filter", f"label={label}").stdout.strip() == ""
             and sh("docker", "ps", "-aq", "--filter", f"label={label}").stdout.strip() == "",
             timeout=15, what="no objects left")


if __name__ == "__main__":
    run(setup, teardown)
