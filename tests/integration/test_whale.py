"""backend = whale against a real ctfd-whale (frankli0324/ctfd-whale) installed
in a real CTFd 3.8.7 (tests/whale/lab.py: CTFd under gunicorn on MariaDB and
Redis, ctfd-whale's swarm on a private dockerd in a network namespace, a
stand-in for frpc's admin API), with this project's plugin answering nginx's
auth subrequest, real nginx with the shipped nginx/ctfd-containers.conf plus
nginx/whale-forward.conf, and real CTFd access tokens.

Skipped unless CTFD_PATH (a CTFd 3.8.7 checkout of your own: its plugins
folder is written to) and WHALE_PATH (ctfd-whale's source) are set; see
tests/whale/lab.py for the Python packages CTFD_PYTHON needs."""
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "whale"))
from harness import (MYSQL_SOCKET, SRCDIR, App, Client, Database, Nginx, Skip, case, check, eq,  # noqa
                     require_engine_and_images, run, sh, wait_for)

CTFD_PATH = os.environ.get("CTFD_PATH")
WHALE_PATH = os.environ.get("WHALE_PATH")


class LabDb(Database):
    """The lab CTFd's own database (CTFd made it; the plugin added docker_challenge)."""

    def __init__(self, name):
        self.name = name
        self.socket = MYSQL_SOCKET


class Lab:
    pass


def setup():
    if not CTFD_PATH or not WHALE_PATH:
        # Optional everywhere (CI too, like tests/ctfd/run-e2e without CTFD_PATH): a plain
        # skip, not a failure under CC_TEST_REQUIRE=1.
        print("1..0 # SKIP CTFD_PATH and WHALE_PATH are not set (a CTFd 3.8.7 of your own and "
              "ctfd-whale's source: see tests/whale/lab.py)")
        sys.exit(0)
    if os.geteuid() != 0:
        raise Skip("needs root (network namespace, private dockerd, nginx)")
    require_engine_and_images()
    import lab as labmod
    t = Lab()
    t.labmod = labmod
    t.app = t.nginx = None
    t.workdir = tempfile.mkdtemp(prefix="cc-whale-")
    t.lab = labmod.up()
    try:
        build_site(t)
    except BaseException:
        teardown(t)
        raise
    return t


def build_site(t):
    lab = t.lab
    t.db = LabDb(lab["database"])
    t.players = [lab["users"]["player1"], lab["users"]["player2"]]
    t.admin = lab["users"]["admin"]
    t.ch = lab["challenges"]
    for cid in t.ch:  # the app's view of ctfd-whale's challenges: served by backend whale
        t.db.sql(f"INSERT INTO docker_challenge (id, image, ports, flag_template, backend) "
                 f"VALUES ({cid}, '{lab['image']}', '8080/tcp', 'unused{{<hex:32>}}', 'whale')")
    token_file = os.path.join(t.workdir, "whale-admin.token")
    with open(token_file, "w") as fh:
        fh.write(lab["tokens"]["admin"] + "\n")
    os.chmod(token_file, 0o600)
    t.app = App(t.workdir, t.db, whale_enabled="true", whale_url=lab["whale_url"],
                whale_admin_token_file=token_file, whale_ready_check=0,
                flag_key_file=lab["flag_key"], port_range="38000-38999",
                reconcile_interval_seconds=1, max_containers_per_account=2, site="cct-whale")
    t.app.start()
    os.makedirs(os.path.join(t.workdir, "nginx"), exist_ok=True)
    with open(os.path.join(SRCDIR, "nginx", "whale-forward.conf")) as src, \
            open(os.path.join(t.workdir, "nginx", "ctfd-containers-forward.conf"), "w") as dst:
        dst.write(src.read())
    t.nginx = Nginx(t.workdir, t.app.socket, lab["ctfd_port"])
    t.client = Client(t.nginx.port)


def teardown(t):
    if t.nginx:
        t.nginx.stop()
    if t.app:
        t.app.stop()
    t.labmod.down()
    shutil.rmtree(t.workdir, ignore_errors=True)


# ---------------------------------------------------------------- helpers
def call(t, method, path, who, body=None):
    tok = t.lab["tokens"][who]
    return t.client.call(method, path, headers={"Authorization": f"Token {tok}"}, body=body)


def start(t, who, cid):
    return call(t, "POST", "/api/v1/container", who, {"challenge_id": cid})


def whale_row(t, uid):
    rows = t.db.rows(f"SELECT uuid, challenge_id, port, flag, renew_count, "
                     f"FLOOR(UNIX_TIMESTAMP(start_time)) FROM whale_container WHERE user_id = {uid}")
    return rows[0] if rows else None


def ours(t, rid):
    r = t.db.rows(f"SELECT state, backend, engine_id, live FROM container_instances "
                  f"WHERE id = {rid}")
    return r[0] if r else None


def pdocker(t, *args, check=True):
    return sh("docker", "-H", t.lab["docker"], *args, check=check)


def service_running(t, uid, uuid):
    r = pdocker(t, "service", "ps", "--format", "{{.CurrentState}}", f"{uid}-{uuid}",
                check=False)
    return r.returncode == 0 and r.stdout.startswith("Running")


def service_gone(t, uid, uuid):
    return pdocker(t, "service", "inspect", f"{uid}-{uuid}", check=False).returncode != 0


def whale_player(t, who, method, cid):
    req = urllib.request.Request(
        f"{t.lab['whale_url']}/api/v1/plugins/ctfd-whale/container?challenge_id={cid}",
        method=method, data=b"{}", headers={"Authorization": f"Token {t.lab['tokens'][who]}",
                                            "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def whale_admin(t, method, uid):
    req = urllib.request.Request(
        f"{t.lab['whale_url']}/api/v1/plugins/ctfd-whale/admin/container?user_id={uid}",
        method=method, headers={"Authorization": f"Token {t.lab['tokens']['admin']}",
                                "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


# ---------------------------------------------------------------- cases
@case
def start_runs_a_whale_container(t):
    """start through nginx and the app runs ctfd-whale's container; the row records whale,
    ctfd-whale's uuid and its access (nc host port)"""
    p1 = t.players[0]
    t0 = time.monotonic()
    r = start(t, "player1", t.ch[0])
    took_app = time.monotonic() - t0
    eq(r.status, 200, f"start {r}")
    w = whale_row(t, p1)
    check(w is not None, "ctfd-whale keeps a row for the player")
    uuid, cid, port = w[0], int(w[1]), int(w[2])
    eq(cid, t.ch[0], "for this challenge")
    state, backend, engine_id, _ = ours(t, r.data["id"])
    eq((state, backend, engine_id), ("running", "whale", uuid), "our row")
    conn = r.data["ports"][0]
    eq((conn["host"], conn["host_port"], conn["protocol"]), ("127.0.0.1", port, "tcp"),
       "the access ctfd-whale gives")
    eq(conn["connection"], f"nc 127.0.0.1 {port}", "as a command")
    eq(t.db.value(f"SELECT COUNT(*) FROM container_ports WHERE instance_id = {r.data['id']}"),
       "0", "no host port reserved: ctfd-whale chooses its own")
    wait_for(lambda: service_running(t, p1, uuid), timeout=60, what="ctfd-whale's service")
    t.first = (r.data["id"], uuid)
    # for the record (no assertion on time): ctfd-whale's own POST, same run, other player
    t0 = time.monotonic()
    direct = whale_player(t, "player2", "POST", t.ch[0])
    took_whale = time.monotonic() - t0
    eq(direct["success"], True, f"ctfd-whale's own start {direct}")
    whale_admin(t, "DELETE", t.players[1])
    print(f"# start through nginx + the app: {took_app * 1000:.0f} ms "
          f"(ctfd-whale's own POST, same run: {took_whale * 1000:.0f} ms; neither waits for "
          f"the service to run)")
    st = call(t, "GET", f"/api/v1/container?challenge_id={t.ch[0]}", "player1")
    eq(st.status, 200, f"status {st}")
    eq((st.data["id"], st.data["state"], st.data["ports"][0]["connection"]),
       (r.data["id"], "running", f"nc 127.0.0.1 {port}"), "the player's status")


@case
def the_flag_is_whales(t):
    """the flag is ctfd-whale's own (kept encrypted in our row too): the admin reveal shows
    it, the container serves it, CTFd accepts it, and no log line carries it"""
    rid, uuid = t.first
    flag = whale_row(t, t.players[0])[3]
    r = call(t, "GET", f"/api/v1/admin/containers/{rid}/flag", "admin")
    eq(r.status, 200, f"reveal {r}")
    eq(r.data["flag"], flag, "the revealed flag is ctfd-whale's")
    ct = pdocker(t, "ps", "-q", "--filter", f"label=com.docker.swarm.service.name="
                 f"{t.players[0]}-{uuid}").stdout.split()
    check(ct, "the service's container")
    got = pdocker(t, "exec", ct[0], "sh", "-c",
                  "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080").stdout
    check(flag in got, f"the container serves the flag: {got[-200:]!r}")
    req = urllib.request.Request(
        f"{t.lab['whale_url']}/api/v1/challenges/attempt", method="POST",
        data=json.dumps({"challenge_id": t.ch[0], "submission": flag}).encode(),
        headers={"Authorization": f"Token {t.lab['tokens']['player1']}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        eq(json.loads(resp.read())["data"]["status"], "correct", "CTFd (ctfd-whale) accepts it")
    check(flag not in t.app.log(), "no log line carries the flag")


@case
def extend_renews_whales_timer(t):
    """extend moves our deadline and renews ctfd-whale's own timer (admin API)"""
    p1 = t.players[0]
    t.db.sql(f"UPDATE whale_container SET start_time = start_time - INTERVAL 600 SECOND "
             f"WHERE user_id = {p1}")
    before = int(whale_row(t, p1)[5])
    r = call(t, "PATCH", f"/api/v1/container?challenge_id={t.ch[0]}", "player1")
    eq(r.status, 200, f"extend {r}")
    eq(r.data["renewals_used"], 1, "our renewal count")
    w = whale_row(t, p1)
    eq(int(w[4]), 1, "ctfd-whale's renew count")
    check(int(w[5]) >= before + 590, f"ctfd-whale's timer restarted ({before} -> {w[5]})")


@case
def one_whale_instance_per_player(t):
    """ctfd-whale runs one container per player: a second challenge is refused
    (CONTAINER_LIMIT_REACHED) instead of silently replacing the first"""
    uuid = whale_row(t, t.players[0])[0]
    r = start(t, "player1", t.ch[1])
    eq((r.status, r.code), (409, "CONTAINER_LIMIT_REACHED"), f"second challenge {r}")
    eq(whale_row(t, t.players[0])[0], uuid, "the first container is untouched")
    eq(ours(t, t.first[0])[0], "running", "and our row")


@case
def revert_replaces_it(t):
    """a start for the same challenge (revert) removes the old ctfd-whale container and
    makes a new one with a new flag"""
    p1 = t.players[0]
    old_uuid, old_flag = whale_row(t, p1)[0], whale_row(t, p1)[3]
    r = start(t, "player1", t.ch[0])
    eq(r.status, 200, f"revert {r}")
    w = whale_row(t, p1)
    check(w[0] != old_uuid and w[3] != old_flag, "a new container and flag")
    eq(ours(t, t.first[0])[0], "reverted", "the old row")
    wait_for(lambda: service_gone(t, p1, old_uuid), timeout=30, what="the old service's removal")
    t.first = (r.data["id"], w[0])


@case
def stop_and_stop_again(t):
    """stop removes it through ctfd-whale's admin API; a second stop is CONTAINER_NOT_FOUND"""
    p1 = t.players[0]
    rid, uuid = t.first
    r = call(t, "DELETE", f"/api/v1/container?challenge_id={t.ch[0]}", "player1")
    eq(r.status, 200, f"stop {r}")
    eq(whale_row(t, p1), None, "ctfd-whale's row is gone")
    eq(ours(t, rid)[0], "stopped", "our row")
    wait_for(lambda: service_gone(t, p1, uuid), timeout=30, what="the service's removal")
    r = call(t, "DELETE", f"/api/v1/container?challenge_id={t.ch[0]}", "player1")
    eq((r.status, r.code), (404, "CONTAINER_NOT_FOUND"), f"second stop {r}")


@case
def expiry_through_whale(t):
    """expiry: the reaper ends it at our deadline through ctfd-whale's admin API"""
    r = start(t, "player2", t.ch[0])
    eq(r.status, 200, f"start {r}")
    t.db.sql(f"UPDATE container_instances SET deadline = UNIX_TIMESTAMP() - 1 "
             f"WHERE id = {r.data['id']}")
    wait_for(lambda: ours(t, r.data["id"])[0] == "expired", timeout=20, what="the expiry")
    eq(whale_row(t, t.players[1]), None, "ctfd-whale's row is gone")


@case
def lost_and_orphan(t):
    """reconcile: a container removed behind our back is lost; one whose row ended is an
    orphan and removed from ctfd-whale"""
    r = start(t, "player2", t.ch[0])
    eq(r.status, 200, f"start {r}")
    time.sleep(6)  # reconcile leaves rows started in the last 5 s alone
    eq(whale_admin(t, "DELETE", t.players[1])["success"], True, "removed via ctfd-whale")
    wait_for(lambda: ours(t, r.data["id"])[0] == "lost", timeout=20, what="lost")
    r = start(t, "player1", t.ch[1])
    eq(r.status, 200, f"start {r}")
    t.db.sql(f"UPDATE container_instances SET live = NULL, state = 'stopped' "
             f"WHERE id = {r.data['id']}")
    wait_for(lambda: whale_row(t, t.players[0]) is None, timeout=20, what="the orphan removed")


@case
def whales_refusals_in_our_codes(t):
    """ctfd-whale's own refusal ("Max container count exceed.", set through CTFd's config
    API) reaches the player as 503 CAPACITY_FULL, and nothing is left behind"""
    r = start(t, "player2", t.ch[0])
    eq(r.status, 200, f"start {r}")
    cfg = call_ctfd(t, "PATCH", "/api/v1/configs", {"whale:docker_max_container_count": "0"})
    eq(cfg["success"], True, "ctfd-whale's limit set to 0 (one container runs)")
    try:
        before = t.db.live_count()
        r2 = start(t, "player1", t.ch[1])
        eq((r2.status, r2.code), (503, "CAPACITY_FULL"), f"refused by ctfd-whale {r2}")
        eq(t.db.live_count(), before, "no live row left")
        eq(whale_row(t, t.players[0]), None, "and no ctfd-whale container")
    finally:
        call_ctfd(t, "PATCH", "/api/v1/configs", {"whale:docker_max_container_count": "100"})
    eq(call(t, "DELETE", f"/api/v1/container?challenge_id={t.ch[0]}", "player2").status, 200,
       "stop")


def call_ctfd(t, method, path, body):
    req = urllib.request.Request(
        f"{t.lab['whale_url']}{path}", method=method, data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {t.lab['tokens']['admin']}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@case
def admin_stop(t):
    """admin stop through the app ends a whale container"""
    r = start(t, "player2", t.ch[1])
    eq(r.status, 200, f"start {r}")
    a = call(t, "DELETE", f"/api/v1/admin/containers/{r.data['id']}", "admin")
    eq(a.status, 200, f"admin stop {a}")
    eq(whale_row(t, t.players[1]), None, "ctfd-whale's row is gone")
    st = call(t, "GET", "/api/v1/admin/containers/status", "admin")
    eq(st.data["backend"], "whale", "status names the backend")
    check("killed by signal" not in t.app.log(), "no process of the app crashed")


def browser_login(t, name):
    """Log in to the lab's CTFd like a browser: its session cookie and CSRF nonce."""
    import http.cookiejar
    import re
    jar = http.cookiejar.CookieJar()
    web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = t.lab["whale_url"]
    page = web.open(f"{base}/login", timeout=10).read().decode()
    nonce = re.search(r'name="nonce"[^>]*value="([0-9a-f]+)"', page) or \
        re.search(r'value="([0-9a-f]+)"[^>]*name="nonce"', page)
    form = urllib.parse.urlencode({"name": name, "password": "lab-password-1",
                                   "nonce": nonce.group(1)}).encode()
    web.open(urllib.request.Request(f"{base}/login", data=form, method="POST"), timeout=10)
    page = web.open(f"{base}/challenges", timeout=10).read().decode()
    csrf = re.search(r"csrfNonce': \"([0-9a-f]+)\"", page).group(1)
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return cookie, csrf


@case
def browser_session_and_whales_rate_limit(t):
    """a browser session (cookie + CSRF nonce) is forwarded to ctfd-whale for the start;
    ctfd-whale's per-session rate limit then reaches the player as 429 COOLDOWN"""
    cookie, csrf = browser_login(t, "player2")
    h = {"Cookie": cookie, "CSRF-Token": csrf}
    r = t.client.call("POST", "/api/v1/container", headers=h, body={"challenge_id": t.ch[0]})
    eq(r.status, 200, f"start with the browser session {r}")
    check(whale_row(t, t.players[1]) is not None, "ctfd-whale started it for player2")
    r = t.client.call("DELETE", f"/api/v1/container?challenge_id={t.ch[0]}", headers=h)
    eq(r.status, 200, f"stop right after (admin API: no rate limit) {r}")
    before = t.db.live_count()
    r = t.client.call("POST", "/api/v1/container", headers=h, body={"challenge_id": t.ch[0]})
    eq((r.status, r.code), (429, "COOLDOWN"), f"ctfd-whale's 60 s session limit {r}")
    eq(r.headers.get("Retry-After"), "60", "Retry-After")
    eq(t.db.live_count(), before, "no live row left")
    eq(whale_row(t, t.players[1]), None, "no ctfd-whale container")


@case
def nothing_crashed(t):
    """no process of the app crashed and no sanitizer reported anything"""
    log = t.app.log()
    for mark in ("killed by signal", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                 "runtime error:"):
        check(mark not in log, f"the app's log has {mark!r}: "
              f"{log[max(0, log.find(mark) - 300):log.find(mark) + 1500]}")


if __name__ == "__main__":
    run(setup, teardown)
