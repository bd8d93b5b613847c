"""Nothing lost, nothing leaked (issue 19): reconciliation, crashes, outages,
hostile input and secrets, through real nginx, against a PRIVATE dockerd (in
its own network namespace, with live restore) and a PRIVATE mariadbd, so
that both can be stopped and restarted without touching the shared ones.

  1-2  reconcile: an orphan survives its grace period, then goes; a container
       removed behind our back is marked lost with a reason and its slot and
       ports are freed; each pass logs and stores its counts and ids
  3-6  crashes: kill -9 of a worker in the middle of N starts, of the reaper
       during expiries, of the master (its workers exit by themselves; a
       restart recovers); a worker that faults (test build) loses only its
       request
  7-9  outages: dockerd down while players start, extend and stop (a clear
       503 ENGINE_UNAVAILABLE, nothing marked lost, recovery by itself);
       mariadbd restarted under traffic; nginx reloaded under traffic
  10   hostile input through nginx: only 4xx, no worker dies, no table changes
  11   secrets: with log_level = debug, no flag, key, cookie, nonce or token
       in any log line (app, nginx error and access logs)
After every phase the same audit: no orphan (engine object without a live
row), no live row without its running container, ports and limits exact,
every flag served by a container found by its HMAC for that container.

CC_CHAOS_FULL=1 (make chaos) runs it at full size: 50 starts, a 20 s engine
outage, longer traffic; make check runs a short version.
"""
import base64
import hashlib
import hmac
import itertools
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (App, Client, Database, Nginx, Reply, Skip, case, check, eq,  # noqa
                     run, sh, wait_for)
from chaos_env import PrivateEngine, PrivateMariaDB  # noqa: E402

FULL = os.environ.get("CC_CHAOS_FULL") == "1"
STARTS = 50 if FULL else 12           # concurrent starts when a worker is killed
ENGINE_DOWN = 20 if FULL else 4       # seconds the engine is stopped
DB_DOWN = 5 if FULL else 2            # seconds MariaDB is stopped
TRAFFIC = 12 if FULL else 3           # seconds of traffic around a reload
ADMIN = 1
WEB, SHORT = 1, 2
TOKEN_USER = 987654                   # a distinctive id, so its token can be grepped
COOKIE_MARK = "remember_" + os.urandom(12).hex()  # a cookie value nobody may log


# The test build's crash route goes straight to the app (the shipped nginx
# conf routes only the real API paths); the worker faults before routing.
CRASH_LOCATION = """
        location = /api/v1/container/test-crash {
            include /etc/nginx/fastcgi_params;
            fastcgi_param DOCUMENT_URI $document_uri;
            fastcgi_pass ctfd_containers;
        }
"""


class ProbeClient(Client):
    """Client whose session requests also carry a marker cookie (see case 11)."""

    def call(self, method, path, user=None, body=None, token=False, csrf=True, headers=None,
             raw=None, content_type="application/json", timeout=60):
        h = dict(headers or {})
        if user is not None and not token:
            h["Cookie"] = f"session=s{user}; remember_token={COOKIE_MARK}"
            if csrf:
                h["CSRF-Token"] = f"n{user}"
            user_for_base = None
        else:
            user_for_base = user
        if user is not None and token:
            h["Authorization"] = f"Token t{user}"
            user_for_base = None
        return super().call(method, path, user_for_base, body=body, token=False, csrf=False,
                            headers=h, raw=raw, content_type=content_type, timeout=timeout)


class Ctx:
    pass


def users(first, n):
    return list(range(first, first + n))


def setup():
    ctx = Ctx()
    ctx.workdir = tempfile.mkdtemp(prefix="cc-chaos-")
    os.chmod(ctx.workdir, 0o755)
    ctx.engine = ctx.mdb = ctx.db = ctx.auth = ctx.app = ctx.nginx = None
    try:
        ctx.engine = PrivateEngine("ccx", octet_base=16)
        ctx.mdb = PrivateMariaDB(ctx.workdir)
        from fake_ctfd_auth import Auth
        ctx.db = Database(f"cc_test_chaos_{os.getpid()}", socket=ctx.mdb.socket)
        db = ctx.db
        db.config("user_mode", "users")
        db.user(ADMIN, "admin", admin=True)
        db.user(TOKEN_USER, "token user")
        db.sql("INSERT INTO users (id, name, email, type, hidden, banned, verified) VALUES " +
               ", ".join(f"({u}, 'player{u}', 'u{u}@x', 'user', 0, 0, 1)"
                         for u in users(100, 1900)))
        db.challenge(WEB, "web")
        db.challenge(SHORT, "short", lifetime=3)
        ctx.auth = Auth()
        ctx.auth.admins.add(ADMIN)
        ctx.site = "ccx-" + str(os.getpid())
        ctx.app = App(ctx.workdir, db, docker_endpoint=ctx.engine.endpoint,
                      public_host=ctx.engine.ip, bind_address=ctx.engine.ip, site=ctx.site,
                      log_level="debug", workers=4, orphan_grace_seconds=4,
                      reconcile_interval_seconds=1, starting_grace_seconds=10,
                      stopping_grace_seconds=5, ready_timeout_seconds=4,
                      docker_timeout_seconds=5, max_renewals=1000, extend_seconds=60)
        ctx.app.start()
        # nginx at info, its most verbose level short of `debug`, which (in a
        # --with-debug build) dumps every request header, cookies included, by
        # design: never run nginx at debug in production (docs/operations.md).
        ctx.nginx = Nginx(ctx.workdir, ctx.app.socket, ctx.auth.port, error_level="info",
                          extra=CRASH_LOCATION)
        ctx.client = ProbeClient(ctx.nginx.port)
        ctx.flags = set()        # every flag a container served (case 11 greps for them)
        ctx.figures = {"failed": 0, "requests": 0}
    except BaseException:
        teardown(ctx)
        raise
    return ctx


def teardown(ctx):
    keep = os.environ.get("CC_KEEP_LOGS")
    if keep and os.path.isdir(ctx.workdir):
        dest = os.path.join(keep, f"chaos-{os.getpid()}")
        shutil.copytree(ctx.workdir, dest, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.sock", "flag.key", "mariadb"))
    for part in ("nginx", "app"):
        obj = getattr(ctx, part, None)
        if obj is not None:
            try:
                obj.stop()
            except Exception:
                pass
    if ctx.auth:
        ctx.auth.close()
    if ctx.db:
        try:
            ctx.db.drop()
        except Exception:
            pass
    if ctx.mdb:
        ctx.mdb.close()
    if ctx.engine:
        ctx.engine.close()
    shutil.rmtree(ctx.workdir, ignore_errors=True)


# ---------------------------------------------------------------- helpers
def mac_key(ctx):
    with open(ctx.app.options["flag_key_file"]) as fh:
        master = bytes.fromhex(fh.read().strip())
    return hmac.new(master, b"ctfd-containers/v1/mac", hashlib.sha256).digest()


def fetch_flag(ctx, port):
    with urllib.request.urlopen(f"http://{ctx.engine.ip}:{port}/", timeout=5) as r:
        return r.read().decode().strip()


def safe(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except Exception as e:  # a transport error is a result too
        return e


def status_of(r):
    return getattr(r, "status", None)


def app_log(ctx):
    """The app's log; it must be valid UTF-8 (the app cleans what it logs)."""
    with open(ctx.app.log_path, "rb") as fh:
        data = fh.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AssertionError(f"app.log is not valid UTF-8: {data[e.start - 100:e.end + 40]!r}")


def log_offset(ctx):
    return len(app_log(ctx))


def log_since(ctx, offset):
    return app_log(ctx)[offset:]


def live_rows(ctx):
    """{name: (id, account, challenge, state, [host ports])} of the live rows."""
    out = {}
    for iid, name, acct, chal, state, ports in ctx.db.rows(
            "SELECT id, name, account_id, challenge_id, state, ports FROM container_instances "
            "WHERE live = 1"):
        hp = sorted(int(p.rsplit(":", 1)[1]) for p in ports.split(",") if ":" in p)
        out[name] = (int(iid), int(acct), int(chal), state, hp)
    return out


def drift(ctx):
    """What disagrees between rows and engine right now (empty: nothing)."""
    rows, eng = live_rows(ctx), ctx.engine.containers(ctx.site)
    problems = []
    for name in sorted(set(eng) - set(rows)):
        problems.append(f"orphan {name} {eng[name]}")
    for name, (iid, acct, chal, state, hp) in sorted(rows.items()):
        if state != "running":
            problems.append(f"row {iid} {state}")
        elif name not in eng:
            problems.append(f"row {iid} without container")
        elif eng[name][0] != "running":
            problems.append(f"row {iid}: container {eng[name][0]}")
        elif eng[name][1] != hp:
            problems.append(f"row {iid}: ports {hp}, engine {eng[name][1]}")
    held = sorted((int(p), int(i)) for p, i in ctx.db.rows(
        "SELECT host_port, instance_id FROM container_ports"))
    want = sorted((p, r[0]) for r in rows.values() for p in r[4])
    if held != want:
        problems.append(f"container_ports {held[:6]}... vs live rows {want[:6]}...")
    return problems


def audit(ctx, what, settle=40):
    """Wait until rows and engine agree (the reaper finishes what crashes left),
    then check limits and every flag. Returns the number of live containers."""
    last = []

    def agreed():
        last[:] = drift(ctx)
        return not last
    try:
        wait_for(agreed, timeout=settle, step=0.25, what="rows and engine to agree")
    except AssertionError:
        raise AssertionError(f"{what}: rows and engine disagree after {settle} s: {last[:8]}")
    over = ctx.db.rows("SELECT account_id, challenge_id, COUNT(*) FROM container_instances "
                       "WHERE live = 1 GROUP BY account_id, challenge_id HAVING COUNT(*) > 1")
    eq(over, [], f"{what}: one live container per account and challenge")
    over = ctx.db.rows("SELECT account_id, COUNT(*) FROM container_instances WHERE live = 1 "
                       "GROUP BY account_id HAVING COUNT(*) > 1")
    eq(over, [], f"{what}: max_containers_per_account (1)")
    key = mac_key(ctx)
    rows = live_rows(ctx)
    for name, (iid, acct, chal, state, hp) in rows.items():
        flag = fetch_flag(ctx, hp[0])
        ctx.flags.add(flag)
        digest = hmac.new(key, flag.encode(), hashlib.sha256).hexdigest()
        found = ctx.db.rows(f"SELECT instance_id, account_id, retired_at IS NULL FROM "
                            f"container_flags WHERE digest = UNHEX('{digest}')")
        eq(found, [[str(iid), str(acct), "1"]], f"{what}: the flag container {name} serves")
    lost = int(ctx.db.value("SELECT COUNT(*) FROM container_instances WHERE state = 'lost'"))
    print(f"# {what}: {len(rows)} live, 0 orphans, 0 rows without containers, "
          f"{len(rows)} flags matched, {lost} lost in all")
    return len(rows)


def stop_all(ctx, accounts, cid=WEB):
    for uid in accounts:
        r = ctx.client.stop(uid, cid)
        check(r.status in (200, 404), f"stop {uid}: {r}")


def count(ctx, replies, ok):
    bad = [r for r in replies if not ok(r)]
    ctx.figures["requests"] += len(replies)
    ctx.figures["failed"] += len(bad)
    return bad


def traffic(fn_list, seconds, threads=4):
    """Call the functions round-robin from several threads for `seconds`;
    returns [(label, reply)]."""
    out, lock = [], threading.Lock()
    end = time.monotonic() + seconds

    def loop(k):
        i = k
        while time.monotonic() < end:
            label, fn = fn_list[i % len(fn_list)]
            r = safe(fn)
            with lock:
                out.append((label, r))
            i += threads

    ts = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 120)
    return out


ACCEPT_SYSCALLS = {43, 288}  # accept, accept4 (x86_64): only an idle worker waits there


def in_accept(pid):
    try:
        with open(f"/proc/{pid}/syscall") as fh:
            first = fh.read().split()[0]
    except (OSError, IndexError):
        return False
    return first.isdigit() and int(first) in ACCEPT_SYSCALLS


def workers_of(ctx):
    return ctx.app.children()


# ---------------------------------------------------------------- 1-2 reconcile
@case
def orphan_removed_after_grace(ctx):
    """an engine object with our labels and no live row stays for orphan_grace_seconds, then goes"""
    name = f"{ctx.site}-999999"
    offset = log_offset(ctx)
    ctx.engine.docker("run", "-d", "--name", name, "--label", "ctfd-containers.instance=999999",
                      "--label", f"ctfd-containers.site={ctx.site}", "-e", "FLAG=x",
                      "ctfd-containers/demo-web:latest")
    t0 = time.monotonic()
    time.sleep(1.5)  # within the 4 s grace (reconcile passes run every second)
    check(name in ctx.engine.containers(ctx.site), "kept within the grace period")
    wait_for(lambda: name not in ctx.engine.containers(ctx.site), timeout=15, step=0.2,
             what="the orphan's removal")
    print(f"# the orphan was removed {time.monotonic() - t0:.1f} s after it appeared "
          f"(grace 4 s, counted in whole seconds)")
    log = log_since(ctx, offset)
    check(re.search(r"reconcile pass: .*orphans removed 1 \[999999\]", log),
          f"the pass logs its counts and ids: {log[-800:]}")
    r = ctx.client.call("GET", "/api/v1/admin/containers/status", ADMIN)
    eq(r.status, 200, "status route")
    check("ids" in (r.data["last_reconcile"] or {}), f"the last pass's report: {r.data}")
    eq(r.data["last_action"]["report"]["ids"]["orphans"], [999999],
       "the last pass that acted, with the orphan's id")


@case
def lost_marked_with_reason_slot_freed(ctx):
    """a container removed behind our back: row lost with a reason, slot and ports freed"""
    uid = 150
    r = ctx.client.start(uid, WEB)
    eq(r.status, 200, f"start {r}")
    iid, port = r.data["id"], r.data["ports"][0]["host_port"]
    ctx.flags.add(fetch_flag(ctx, port))
    time.sleep(5.5)  # a container younger than 5 s is never declared lost (listing lag)
    offset = log_offset(ctx)
    ctx.engine.docker("rm", "-f", f"{ctx.site}-{iid}")
    wait_for(lambda: ctx.db.value(f"SELECT state FROM container_instances WHERE id = {iid}")
             == "lost", timeout=15, step=0.2, what="the row to be marked lost")
    row = ctx.db.rows(f"SELECT live IS NULL, end_reason FROM container_instances WHERE id = {iid}")
    eq(row, [["1", "its container disappeared"]], "slot freed, reason recorded")
    wait_for(lambda: ctx.db.value(f"SELECT COUNT(*) FROM container_ports WHERE instance_id = {iid}")
             == "0", timeout=10, step=0.2, what="its ports freed")
    eq(ctx.client.status(uid, WEB).data, {}, "the player sees no container")
    log = log_since(ctx, offset)
    check(f"container {iid} lost: its container disappeared" in log, "the log says why")
    check(re.search(rf"reconcile pass: .*lost 1 \[{iid}\]", log), "the pass logs count and id")
    st = ctx.client.call("GET", "/api/v1/admin/containers/status", ADMIN).data
    check(iid in st["last_action"]["report"]["ids"]["lost"],
          f"the admin API shows the last pass that acted, with the id: {st}")
    r = ctx.client.start(uid, WEB)
    eq(r.status, 200, f"the account starts again at once {r}")
    # --reconcile-once: nothing to do now, and it prints the report line.
    out = ctx.app.run("--reconcile-once").stdout
    check(re.fullmatch(r"expired \d+.*, orphans removed 0, lost 0, stale starts 0, stale stops 0,"
                       r" ports freed \d+, failures 0\n", out), f"--reconcile-once: {out!r}")
    stop_all(ctx, [uid])
    audit(ctx, "after the lost container")


# ---------------------------------------------------------------- 3-6 crashes
@case
def worker_killed_mid_starts(ctx):
    """kill -9 of a busy worker in the middle of N concurrent starts: only its request fails"""
    accts = users(200, STARTS)
    results = {}
    offset = log_offset(ctx)

    def start(uid):
        results[uid] = safe(ctx.client.start, uid, WEB, timeout=90)

    threads = [threading.Thread(target=start, args=(u,)) for u in accts]
    for t in threads:
        t.start()
    wait_for(lambda: int(ctx.db.value("SELECT COUNT(*) FROM container_instances WHERE state = "
                                      "'starting'")) >= 2 and len(results) >= STARTS // 4,
             timeout=60, step=0.01, what="starts in flight")
    # A busy worker: not in accept, and not the reaper (the newest child of
    # an undisturbed master is the reaper: it is forked after the workers).
    reaper = max(workers_of(ctx))
    busy = wait_for(lambda: [p for p in workers_of(ctx) if p != reaper and not in_accept(p)],
                    timeout=10, step=0.01, what="a busy worker")
    victim = busy[0]
    os.kill(victim, signal.SIGKILL)
    for t in threads:
        t.join(120)
    failed = {u: r for u, r in results.items() if status_of(r) != 200}
    eq(len(results), STARTS, "every start answered")
    check(len(failed) <= 2, f"at most the killed worker's requests fail: {failed}")
    for u, r in failed.items():
        check(status_of(r) == 502 or (status_of(r) == 503 and r.code == "APP_UNAVAILABLE"),
              f"a lost request is the app's 503, not a 500: {r}")
    check(re.search(rf"worker {victim} killed by signal 9", log_since(ctx, offset)),
          "the master logs the death")
    n = audit(ctx, f"after kill -9 of a worker during {STARTS} starts")
    check(n >= STARTS - len(failed), f"the other starts live ({n})")
    stop_all(ctx, accts)
    audit(ctx, "after stopping them")


@case
def reaper_killed_during_expiry(ctx):
    """kill -9 of the reaper while containers expire: respawned, every one expired, nothing leaks"""
    accts = users(300, 8)
    for u in accts:
        eq(ctx.client.start(u, SHORT).status, 200, "start (lifetime 3 s)")
    # With no request in flight, the one child not waiting in accept is the reaper.
    reaper = wait_for(lambda: (lambda o: o[0] if len(o) == 1 else None)(
        [p for p in workers_of(ctx) if not in_accept(p)]), timeout=10, step=0.05,
        what="the reaper")
    time.sleep(2.5)
    offset = log_offset(ctx)
    os.kill(reaper, signal.SIGKILL)
    wait_for(lambda: re.search(r"reaper respawned as \d+", log_since(ctx, offset)), timeout=15,
             what="the reaper's respawn")
    wait_for(lambda: ctx.db.value("SELECT COUNT(*) FROM container_instances WHERE live = 1 "
                                  f"AND challenge_id = {SHORT}") == "0", timeout=30,
             step=0.2, what="every short container expired")
    eq(ctx.db.value("SELECT COUNT(*) FROM container_instances WHERE challenge_id = "
                    f"{SHORT} AND state NOT IN ('expired')"), "0", "all ended as expired")
    audit(ctx, "after kill -9 of the reaper")


@case
def master_killed(ctx):
    """kill -9 of the master during starts: workers and reaper exit by themselves; a restart recovers"""
    accts = users(320, 10)
    kids = ctx.app.children()
    results = {}

    def start(uid):
        results[uid] = safe(ctx.client.start, uid, WEB, timeout=90)

    threads = [threading.Thread(target=start, args=(u,)) for u in accts]
    for t in threads:
        t.start()
    wait_for(lambda: int(ctx.db.value("SELECT COUNT(*) FROM container_instances WHERE state = "
                                      "'starting'")) >= 1, timeout=30, step=0.01,
             what="a start in flight")
    os.kill(ctx.app.proc.pid, signal.SIGKILL)
    ctx.app.proc.wait()
    t0 = time.monotonic()
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") and
                             open(f"/proc/{p}/stat").read().split()[2] != "Z" for p in kids),
             timeout=20, step=0.1, what="the master's children to exit by themselves")
    print(f"# the {len(kids)} children exited {time.monotonic() - t0:.1f} s after the master died")
    for t in threads:
        t.join(120)
    codes = sorted({status_of(r) for r in results.values()})
    check(set(codes) <= {200, 502, 503}, f"replies while the master died: {codes}")
    ctx.app.logf.close()
    ctx.app.start(migrate=False)
    n = audit(ctx, "after kill -9 of the master and a restart")
    ok = sum(1 for r in results.values() if status_of(r) == 200)
    check(n >= ok, f"every start answered 200 is live ({n} >= {ok})")
    stop_all(ctx, accts)
    audit(ctx, "after stopping them")


@case
def faulting_worker_loses_only_its_request(ctx):
    """a worker that faults (test build: /api/v1/container/test-crash) loses only its request"""
    if b"/api/v1/container/test-crash" not in open(ctx.app.proc.args[0], "rb").read():
        raise Skip("built without --enable-test-faults")
    offset = log_offset(ctx)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("out", traffic(
        [("status", lambda: ctx.client.status(101 + k % 3, WEB)) for k in range(3)], 4, 3)))
    t.start()
    crashes = []
    for _ in range(2):  # spaced: a worker that lived 2 s is respawned without backoff
        time.sleep(1.5)
        crashes.append(safe(ctx.client.call, "GET", "/api/v1/container/test-crash", 100))
    t.join()
    others = [r for _, r in result["out"]]
    for r in crashes:
        check(status_of(r) == 502, f"the faulting request: nginx's 502 {r}")
    bad = count(ctx, others, lambda r: status_of(r) == 200)
    eq(bad, [], "every other request answered 200")
    check(re.search(r"worker \d+ killed by signal (11|6)", log_since(ctx, offset)),
          "the master logs the fault")
    wait_for(lambda: len(ctx.app.children()) == 5, timeout=40, step=0.2,
             what="4 workers and the reaper again")
    eq(ctx.client.status(101, WEB).status, 200, "serving after the respawns")


# ---------------------------------------------------------------- 7-9 outages
def allowed(r, codes):
    """200, or a 4xx/503 in the envelope with one of our codes; never a 500."""
    if status_of(r) == 200:
        return True
    return isinstance(r, Reply) and r.json is not None and r.code in codes and r.status != 500


@case
def engine_outage(ctx):
    """dockerd stopped while players start, extend and stop: 503 ENGINE_UNAVAILABLE, nothing lost, recovery"""
    running = users(340, 6)
    for u in running:
        eq(ctx.client.start(u, WEB).status, 200, "start before the outage")
    time.sleep(5.5)  # older than the listing lag: eligible for 'lost' if the code were wrong
    newcomers = itertools.cycle(users(350, 40))  # a refused start leaves nothing behind
    stoppers = iter(running[3:])
    offset = log_offset(ctx)
    ctx.engine.stop()
    t_down = time.monotonic()
    ops = [("start", lambda: ctx.client.start(next(newcomers), WEB)),
           ("extend", lambda: ctx.client.extend(running[0], WEB)),
           ("status", lambda: ctx.client.status(running[1], WEB)),
           ("stop", lambda: ctx.client.stop(next(stoppers, running[2]), WEB)),
           ("extend", lambda: ctx.client.extend(running[1], WEB))]
    lost_seen = []

    def watch():
        while time.monotonic() - t_down < ENGINE_DOWN:
            lost_seen.append(ctx.db.value("SELECT COUNT(*) FROM container_instances WHERE "
                                          "state = 'lost' AND account_id BETWEEN 340 AND 399"))
            time.sleep(0.5)
    w = threading.Thread(target=watch)
    w.start()
    try:
        out = traffic(ops, ENGINE_DOWN - 1, threads=3)
        w.join()
        # live restore: the running containers still serve their flags
        for u in running[:3]:
            d = ctx.client.status(u, WEB).data
            ctx.flags.add(fetch_flag(ctx, d["ports"][0]["host_port"]))
    finally:
        if not ctx.engine.up():  # later cases need it, whatever failed here
            ctx.engine.start()
    codes = {"ENGINE_UNAVAILABLE", "CONTAINER_NOT_FOUND", "CONTAINER_BUSY",
             "RENEWAL_LIMIT_REACHED"}
    bad = count(ctx, [r for _, r in out], lambda r: allowed(r, codes))
    eq(bad, [], "only 200 or our own temporary codes while the engine is down")
    starts = [r for label, r in out if label == "start"]
    check(starts and all(status_of(r) == 503 and r.code == "ENGINE_UNAVAILABLE" for r in starts),
          f"starts: 503 ENGINE_UNAVAILABLE ({[repr(r) for r in starts[:3]]})")
    print(f"# engine down {time.monotonic() - t_down:.1f} s; {len(out)} requests, "
          f"{sum(1 for r in starts if status_of(r) == 503)} starts refused with 503")
    eq(sorted(set(lost_seen)), ["0"], "nothing marked lost during the outage")
    # Recovery by itself: a new start succeeds without anyone touching the app.
    u = 390
    r = wait_for(lambda: (lambda r: r if status_of(r) == 200 else None)(
        ctx.client.start(u, WEB)), timeout=30, step=0.5, what="a start after the outage")
    audit(ctx, "after the engine outage")
    eq(ctx.db.value("SELECT COUNT(*) FROM container_instances WHERE state = 'lost' AND "
                    "account_id BETWEEN 340 AND 399"), "0", "no container marked lost")
    check("killed by signal" not in log_since(ctx, offset), "no worker died")
    stop_all(ctx, running[:3] + [u])
    audit(ctx, "after stopping them")


@case
def database_restart(ctx):
    """mariadbd restarted under traffic: our 503s only, workers reconnect, no half-applied request"""
    steady = users(1000, 4)
    for u in steady:
        eq(ctx.client.start(u, WEB).status, 200, "start before the restart")
    cyclers = itertools.cycle(users(1010, 100))
    offset = log_offset(ctx)
    cycle_lock = threading.Lock()

    def cycle():
        with cycle_lock:
            u = next(cyclers)
        r = ctx.client.start(u, WEB)
        if status_of(r) == 200:
            r2 = ctx.client.stop(u, WEB)
            return r2
        return r

    ops = [("status", lambda: ctx.client.status(steady[0], WEB)),
           ("cycle", cycle),
           ("extend", lambda: ctx.client.extend(steady[1], WEB)),
           ("status", lambda: ctx.client.status(steady[2], WEB))]
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("out", traffic(ops, DB_DOWN + (6 if FULL else 3), 4)))
    t.start()
    try:
        time.sleep(2)
        ctx.mdb.stop()
        time.sleep(DB_DOWN)
    finally:
        ctx.mdb.start()
        t.join()
    out = result["out"]
    codes = {"DATABASE_UNAVAILABLE", "CONTAINER_NOT_FOUND", "CONTAINER_BUSY",
             "RENEWAL_LIMIT_REACHED"}
    bad = count(ctx, [r for _, r in out], lambda r: allowed(r, codes))
    eq(bad, [], "only 200 or our own temporary codes while MariaDB restarts")
    n503 = sum(1 for _, r in out if status_of(r) == 503)
    print(f"# {len(out)} requests across the restart, {n503} answered 503 DATABASE_UNAVAILABLE")
    for u in steady:  # every worker reconnected
        for _ in range(4):
            eq(ctx.client.status(u, WEB).status, 200, "after the restart")
    log = log_since(ctx, offset)
    check("killed by signal" not in log, "no worker died")
    audit(ctx, "after the MariaDB restart")
    check("removed orphan" not in log_since(ctx, offset),
          "no container was ever without its row (the reaper removed no orphan)")
    stop_all(ctx, steady)
    stop_all(ctx, users(1010, 100))
    audit(ctx, "after stopping them")


@case
def nginx_reload_under_traffic(ctx):
    """nginx reloaded (SIGHUP) three times under traffic: no failed request"""
    accts = users(1200, 3)
    cyc = itertools.cycle(users(1210, 100))
    lock = threading.Lock()

    def cycle():
        with lock:
            u = next(cyc)
        r = ctx.client.start(u, WEB)
        return ctx.client.stop(u, WEB) if status_of(r) == 200 else r

    ops = [("status", lambda: ctx.client.status(accts[0], WEB)),
           ("status", lambda: ctx.client.status(accts[1], WEB)),
           ("cycle", cycle),
           ("admin", lambda: ctx.client.call("GET", "/api/v1/admin/containers", ADMIN))]
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("out", traffic(ops, TRAFFIC + 3, 4)))
    t.start()
    for _ in range(3):
        time.sleep(TRAFFIC / 3)
        ctx.nginx.proc.send_signal(signal.SIGHUP)
    t.join()
    out = result["out"]
    bad = count(ctx, [r for _, r in out], lambda r: status_of(r) == 200)
    print(f"# {len(out)} requests across 3 nginx reloads, {len(bad)} failed")
    eq(bad, [], "failed requests")
    audit(ctx, "after the nginx reloads")


# ---------------------------------------------------------------- 10 hostile input
def hostile_requests():
    """(method, path, content type, body) tuples; each must get a 4xx."""
    ids = ["9" * 40, "-1", "-9223372036854775809", "9223372036854775808", "0", "1e3", "0x10",
           "%201", "1%20", "+1", "1.0", "%D9%A1", "%00", "1%00", "%ff%fe", "%C3%28",
           "%ED%A0%80", "1'%20OR%20'1'='1", "1;DROP%20TABLE%20container_instances",
           "%3Cscript%3Ealert(1)%3C/script%3E", "%22%3E%3Cimg%20src=x%3E", "a" * 9000,
           "1%0aFORGED%20LOG%20LINE", "%e2%80%ae1"]
    out = []
    for i in ids:
        for m in ("GET", "PATCH", "DELETE"):
            out.append((m, f"/api/v1/container?challenge_id={i}", None, None))
        out.append(("GET", f"/api/v1/admin/containers/{i}/flag", None, None))
        out.append(("PATCH", f"/api/v1/admin/containers/{i}", None, None))
        out.append(("GET", f"/api/v1/admin/containers?page={i}", None, None))
        out.append(("GET", f"/api/v1/admin/containers?account_id={i}", None, None))
        out.append(("GET", f"/admin/containers?page={i}", None, None))
        out.append(("GET", f"/admin/containers/events?page={i}", None, None))
    for q in ("challenge_id=1&challenge_id=1", "challenge_id=1&challenge_id=2",
              "challenge_id=1&" + "x" * 5000 + "=1", "challenge_id=1&a=%zz",
              "challenge_id=1&" + "&".join(f"p{k}=1" for k in range(300)),
              "challenge_id=1&stopcontainer=True", "=1", "&&&", "challenge_id"):
        out.append(("GET", f"/api/v1/container?{q}", None, None))
    bodies = [b'{"challenge_id": 99999999999999999999999}', b'{"challenge_id": -1}',
              b'{"challenge_id": "1\' OR 1=1 --"}', b'{"challenge_id": "<script>"}',
              b'{"challenge_id": 1, "challenge_id": 1}', b'{"challenge_id": 1',
              b'{"challenge_id": "\xff\xfe"}', b'\xc3\x28', b'{"challenge_id": "\xed\xa0\x80"}',
              b'{"challenge_id": [1]}', b'{"challenge_id": {"$gt": 0}}', b'null', b'"1"', b'',
              b'{"challenge_id": 1e400}', b'{"challenge_id": 1}' + b"\x00",
              b'[' * 3000 + b']' * 3000, b'{"challenge_id": 1, "x": "' + b"y" * 17000 + b'"}']
    for b in bodies:
        out.append(("POST", "/api/v1/container", "application/json", b))
        out.append(("POST", "/api/v1/container/extend", "application/json", b))
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
               "application/xml", "", "application/jsonx", "json"):
        out.append(("POST", "/api/v1/container", ct or None, b'{"challenge_id": 1}'))
    for m in ("PUT", "TRACE", "OPTIONS", "PROPFIND"):
        out.append((m, "/api/v1/container?challenge_id=1", None, None))
    for p in ("/api/v1/container%0aFORGED LOG LINE", "/api/v1/container/%ff%fe",
              "/api/v1/admin/containers/1%0d%0aFORGED", "/api/v1/admin/containers/%c0%af"):
        out.append(("GET", p.replace(" ", "%20"), None, None))
    out.append(("DELETE", "/api/v1/admin/containers?confirm=al", None, None))
    out.append(("DELETE", "/api/v1/admin/containers?confirm=all&confirm=all", None, None))
    return out


RAW = [  # requests nginx parses itself: absurd lengths, truncation, smuggling attempts
    b"POST /api/v1/container HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 99999999999999999999999\r\n\r\n{}",
    b"POST /api/v1/container HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: -1\r\n\r\n{}",
    b"POST /api/v1/container HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\nContent-Length: 20\r\n\r\n{}",
    b"POST /api/v1/container HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000000000\r\n\r\n{\"challenge_id\": 1}",
    b"POST /api/v1/container HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nzz\r\n",
    b"GET /api/v1/container?challenge_id=1 HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 40000
    + b"\r\n\r\n",
    b"GET /api/v1/container?challenge_id=1\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/v1/container HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{\"challenge_id\": 1",
]


def raw_request(ctx, data, cookie):
    head, sep, rest = data.partition(b"\r\n")
    data = head + sep + cookie + rest
    with socket.create_connection(("127.0.0.1", ctx.nginx.port), timeout=90) as s:
        s.sendall(data)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        reply = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            reply += chunk
    line = reply.split(b"\r\n", 1)[0].decode("latin-1")
    return int(line.split(" ")[1]) if line.startswith("HTTP/") else None, line


@case
def hostile_input_only_4xx(ctx):
    """a scripted pass of malformed requests through nginx: only 4xx, no worker dies, no table changes"""
    holder = 1990
    eq(ctx.client.start(holder, WEB).status, 200, "a live container the requests must not touch")
    before = ctx.db.snapshot()
    engine_before = ctx.engine.containers(ctx.site)
    kids = set(ctx.app.children())
    offset = log_offset(ctx)
    reqs = hostile_requests()
    wrong = []
    for k, (method, path, ct, body) in enumerate(reqs):
        user = ADMIN if "/admin/" in path else holder
        r = safe(ctx.client.call, method, path, user, raw=body, content_type=ct)
        if not (isinstance(r, Reply) and 400 <= r.status < 500):
            wrong.append((method, path[:80], ct, (body or b"")[:40], r))
    cookie = f"Cookie: session=s{holder}\r\nCSRF-Token: n{holder}\r\n".encode()
    for data in RAW:
        code, line = raw_request(ctx, data, cookie)
        if code is not None and not 400 <= code < 500:
            wrong.append(("raw", data[:60], line))
    n = len(reqs) + len(RAW)
    ctx.figures["requests"] += n
    ctx.figures["failed"] += len(wrong)
    print(f"# {n} malformed requests, {len(wrong)} answered other than 4xx")
    eq(wrong, [], "answers other than 4xx")
    eq(ctx.db.snapshot(), before, "tables unchanged")
    eq(ctx.engine.containers(ctx.site), engine_before, "engine unchanged")
    eq(set(ctx.app.children()), kids, "no worker died")
    log = log_since(ctx, offset)
    check("killed by signal" not in log, "no crash in the log")
    forged = [line for line in log.splitlines() if not re.match(r"\d{4}-\d\d-\d\dT", line)]
    eq(forged, [], "every log line is the app's own (no line forged by a request)")
    stop_all(ctx, [holder])


# ---------------------------------------------------------------- 11 secrets
@case
def no_secret_in_any_log(ctx):
    """log_level = debug, a full flow (start, flag, reveal, extend, revert, stop, token): no secret logged"""
    u = 1995
    c = ctx.client
    r = c.start(u, WEB)
    eq(r.status, 200, f"start {r}")
    flag = fetch_flag(ctx, r.data["ports"][0]["host_port"])
    ctx.flags.add(flag)
    rv = c.call("GET", f"/api/v1/admin/containers/{r.data['id']}/flag", ADMIN)
    eq(rv.data["flag"], flag, "the admin's reveal")
    eq(c.extend(u, WEB).status, 200, "extend")
    r2 = c.start(u, WEB)
    eq(r2.status, 200, "revert")
    ctx.flags.add(fetch_flag(ctx, r2.data["ports"][0]["host_port"]))
    eq(c.status(TOKEN_USER, WEB, token=True).status, 200, "a token request")
    eq(c.call("GET", "/admin/containers", ADMIN).status, 200, "the admin page")
    eq(c.stop(u, WEB).status, 200, "stop")
    with open(ctx.app.options["flag_key_file"]) as fh:
        key_hex = fh.read().strip()
    key = bytes.fromhex(key_hex)
    mac = mac_key(ctx)
    secrets = {"key (hex)": key_hex.lower(), "key (HEX)": key_hex.upper(),
               "key (base64)": base64.b64encode(key).decode(),
               "key (base64url)": base64.urlsafe_b64encode(key).decode().rstrip("="),
               "MAC key (hex)": mac.hex(), "MAC key (base64)": base64.b64encode(mac).decode(),
               "cookie": COOKIE_MARK, "session cookie": f"session=s{u}",
               "token": f"Token t{TOKEN_USER}", "token value": f"t{TOKEN_USER}",
               "CSRF nonce": f"n{u}"}
    for i, f in enumerate(sorted(ctx.flags)):
        secrets[f"flag {i}"] = f
        inner = f[f.index("{") + 1:-1] if "{" in f else f
        secrets[f"flag {i} (inner)"] = inner
    check(len(ctx.flags) >= 10, f"the run saw flags ({len(ctx.flags)})")
    logs = {"app.log": ctx.app.log_path,
            "nginx error log": os.path.join(ctx.nginx.dir, "nginx-error.log"),
            "nginx access log": os.path.join(ctx.nginx.dir, "nginx-access.log")}
    found = []
    sizes = {}
    for what, path in logs.items():
        with open(path, errors="replace") as fh:
            text = fh.read()
        sizes[what] = len(text.splitlines())
        for name, value in secrets.items():
            if value and value in text:
                at = text.index(value)
                found.append(f"{name} in {what}: ...{text[max(0, at - 80):at + 40]!r}")
    print(f"# grepped {sum(sizes.values())} log lines ({sizes}) for {len(secrets)} secrets "
          f"({len(ctx.flags)} flags)")
    eq(found, [], "secrets in logs")
    eq(ctx.app.options["log_level"], "debug", "the app ran at debug level")


@case
def socket_and_key_file_modes(ctx):
    """the modes the docs promise: socket srw-rw---- group listen_group, key file 0600, wider refused"""
    import grp
    import stat
    st = os.stat(ctx.app.socket)
    eq(stat.filemode(st.st_mode), "srw-rw----", "the FastCGI socket (listen_mode 0660)")
    eq(st.st_gid, grp.getgrnam("www-data").gr_gid, "its group (listen_group)")
    key = ctx.app.options["flag_key_file"]
    eq(oct(stat.S_IMODE(os.stat(key).st_mode)), oct(0o600), "the flag key file")
    wide = os.path.join(ctx.workdir, "wide.key")
    shutil.copy(key, wide)
    # Refused: others may read, or the group may write. The group may read
    # (0640): CTFd's user can share the key through its group.
    for mode in (0o604, 0o660, 0o644):
        os.chmod(wide, mode)
        r = ctx.app.run("--reconcile-once", check=False,
                        env={"CTFD_CONTAINERS_FLAG_KEY_FILE": wide})
        eq(r.returncode, 2, f"a key file of mode {mode:04o} is refused: {r.stderr!r}")
        check(f"{mode:04o}" in r.stderr, f"naming the mode: {r.stderr!r}")
        check(open(wide).read().strip() not in r.stderr + r.stdout, "without printing the key")
    os.unlink(wide)


@case
def figures(ctx):
    """the closing figures: orphans, lost, failed requests"""
    log = app_log(ctx)
    orphans = len(re.findall(r"reconcile: removed orphan", log))
    lost = ctx.db.value("SELECT COUNT(*) FROM container_instances WHERE state = 'lost'")
    print(f"# figures: orphans removed {orphans} (1 planted), lost {lost} (1 planted), "
          f"failed requests {ctx.figures['failed']} of {ctx.figures['requests']} counted")
    # Under --enable-sanitizers every process reports here; the test build's
    # deliberate fault shows as ASan's SEGV report, and only that is expected.
    reports = [line for line in log.splitlines()
               if ("ERROR: AddressSanitizer" in line or "ERROR: LeakSanitizer" in line
                   or "runtime error:" in line) and "AddressSanitizer: SEGV" not in line]
    print(f"# sanitizer reports in app.log (the deliberate faults aside): {len(reports)}")
    eq(reports[:5], [], "sanitizer reports")
    eq(orphans, 1, "orphans removed: only the planted one")
    eq(lost, "1", "lost: only the planted one")
    eq(ctx.figures["failed"], 0, "failed requests")
    eq(ctx.engine.containers(ctx.site), {}, "no container left on the engine")
    eq(ctx.db.live_count(), 0, "no live row")


if __name__ == "__main__":
    run(setup, teardown)
