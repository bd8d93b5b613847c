"""The app under valgrind (memcheck): --migrate, then the master with one worker
and the reaper (valgrind follows the forks; each process writes its own
vg.PID.log) serving 1,000 requests through real nginx: status reads, starts,
stops, extends, reverts, bad input of every kind, admin lists and reveals;
then a SIGHUP reload (a new worker and reaper) and a few more requests.
After SIGTERM every process must report no definitely lost bytes and
"ERROR SUMMARY: 0 errors". Skipped when valgrind is not installed.
"""
import glob
import inspect
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BINARY, App, Client, Database, Nginx, Skip, case, check, connection_of,  # noqa
                     eq, http_get, require_engine_and_images, run, sh, wait_for)

VALGRIND = os.environ.get("VALGRIND") or shutil.which("valgrind")
ADMIN = 1
WEB, TCP = 1, 2
TEAMS = range(10, 16)
TOTAL = 1000


class ValgrindApp(App):
    """App, with every run of the binary under valgrind and one worker."""

    def __init__(self, workdir, db, **overrides):
        super().__init__(workdir, db, workers=1, **overrides)
        self.vgdir = os.path.join(workdir, "vg")
        os.makedirs(self.vgdir, exist_ok=True)

    def valgrind(self):
        return [VALGRIND, "--trace-children=yes", "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--num-callers=30",
                f"--log-file={self.vgdir}/vg.%p.log"]

    def run(self, *args, check=True, env=None):
        return subprocess.run([*self.valgrind(), BINARY, "-c", self.conf_path, *args],
                              capture_output=True, text=True, timeout=180, check=check,
                              env={**os.environ, **(env or {})})

    def start(self, migrate=True):
        self.write_conf()
        if migrate:
            self.run("--migrate")
        self.logf = open(self.log_path, "a")
        self.proc = subprocess.Popen([*self.valgrind(), BINARY, "-c", self.conf_path],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        wait_for(lambda: self._answers(), timeout=90, step=0.2, what="the FastCGI socket")
        wait_for(lambda: len(self.children()) >= 2, timeout=60, step=0.2,
                 what="the worker and the reaper")
        return self

    def stop(self, timeout=120):
        return super().stop(timeout=timeout)


class Ctx:
    pass


def sanitized(path):
    """Built with ASan/UBSan? (valgrind cannot run those; the plain build is checked)"""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"libasan.so" in data or b"__ubsan_handle" in data


def setup():
    if VALGRIND is None:
        raise Skip("valgrind is not installed")
    require_engine_and_images()
    from fake_ctfd_auth import Auth
    ctx = Ctx()
    ctx.workdir = tempfile.mkdtemp(prefix="cc-valgrind-")
    ctx.nginx = ctx.app = ctx.auth = None
    ctx.db = Database(f"cc_test_valgrind_{os.getpid()}")
    try:
        db = ctx.db
        db.config("user_mode", "teams")
        db.user(ADMIN, "admin", admin=True)
        for t in TEAMS:
            db.team(t, f"team {t}")
            db.user(t * 10, f"user {t}", team=t)
        db.user(99, "no team")
        db.user(98, "banned", team=TEAMS[0], banned=1)
        db.challenge(WEB, "web")
        db.challenge(TCP, "tcp", image="ctfd-containers/demo-tcp:latest", ports="9000/tcp")
        db.challenge(3, "locked", state="locked")
        db.challenge(4, "prereq", requirements={"prerequisites": [WEB]})
        db.challenge(5, "noimage", image="ctfd-containers/no-such-image:latest")
        ctx.auth = Auth()
        ctx.app = ValgrindApp(ctx.workdir, db, max_renewals=3, extend_seconds=600)
        t0 = time.monotonic()
        ctx.app.start()
        print(f"# the app answers under valgrind after {time.monotonic() - t0:.1f} s")
        ctx.roles = roles_of(ctx.app.children())
        ctx.nginx = Nginx(ctx.workdir, ctx.app.socket, ctx.auth.port)
        ctx.client = Client(ctx.nginx.port)
        ctx.stopped = False
    except BaseException:
        teardown(ctx)
        raise
    return ctx


def roles_of(children):
    """The master forks its workers, then the reaper: the newest child is the reaper."""
    kids = sorted(children)
    return {pid: ("reaper" if pid == kids[-1] else "worker") for pid in kids}


def teardown(ctx):
    if ctx.nginx:
        ctx.nginx.stop()
    if ctx.app and ctx.app.proc and ctx.app.proc.poll() is None:
        ctx.app.stop()
    if ctx.auth:
        ctx.auth.close()
    for row in ctx.db.rows("SELECT name FROM container_instances") if ctx.db else []:
        sh("docker", "rm", "-f", row[0], check=False)
    keep = os.environ.get("CC_KEEP_LOGS")
    if keep and os.path.isdir(ctx.workdir):
        dest = os.path.join(keep, f"valgrind-{os.getpid()}")
        shutil.copytree(ctx.workdir, dest, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.sock", "flag.key"))
        print(f"# logs kept in {dest}")
    ctx.db.drop()
    shutil.rmtree(ctx.workdir, ignore_errors=True)


# ---------------------------------------------------------------- the traffic
def bad_inputs(c):
    """(call, expected status) pairs a player or admin can send wrongly."""
    u = TEAMS[0] * 10
    return [
        (lambda: c.call("GET", "/api/v1/container", u), 400),
        (lambda: c.call("GET", "/api/v1/container?challenge_id=abc", u), 400),
        (lambda: c.call("GET", "/api/v1/container?challenge_id=1&x=2", u), 400),
        (lambda: c.call("GET", "/api/v1/container?challenge_id=99999999999999999999", u), 400),
        (lambda: c.call("GET", "/api/v1/container?challenge_id=-1", u), 400),
        (lambda: c.call("GET", "/api/v1/container?challenge_id=%zz", u), 400),
        (lambda: c.call("GET", "/api/v1/container?challenge_id=1&stopcontainer=True", u), 405),
        (lambda: c.call("POST", "/api/v1/container", u, raw="{not json"), 400),
        (lambda: c.call("POST", "/api/v1/container", u, raw="[1,2,3]"), 400),
        (lambda: c.call("POST", "/api/v1/container", u, body={"challenge_id": "1x"}), 400),
        (lambda: c.call("POST", "/api/v1/container", u, body={"challenge_id": 1.5}), 400),
        (lambda: c.call("POST", "/api/v1/container", u, body={"challenge_id": None}), 400),
        (lambda: c.call("POST", "/api/v1/container", u, body={"nope": 1}), 400),
        (lambda: c.call("POST", "/api/v1/container", u, body={"challenge_id": {"y": [1, {"z": "é"}]}}), 400),
        (lambda: c.call("POST", "/api/v1/container", u, raw='{"challenge_id": 1', ), 400),
        (lambda: c.call("POST", "/api/v1/container", u, raw="\xff\xfe garbage"), 400),
        (lambda: c.call("POST", "/api/v1/container", u, raw="challenge_id=1",
                        content_type="application/x-www-form-urlencoded"), 415),
        (lambda: c.call("POST", "/api/v1/container", u, raw="x" * 20000), 413),
        (lambda: c.call("POST", "/api/v1/container?challenge_id=1", u, body={"challenge_id": 1}), 400),
        (lambda: c.start(u, 424242), 404),
        (lambda: c.start(u, 3), 403),
        (lambda: c.start(u, 4), 403),
        (lambda: c.start(99, WEB), 403),
        (lambda: c.start(98, WEB), 403),
        (lambda: c.start(u, WEB, csrf=False), 403),
        (lambda: c.call("GET", "/api/v1/container?challenge_id=1"), 401),
        (lambda: c.call("PUT", "/api/v1/container", u, body={}), 405),
        (lambda: c.call("PATCH", "/api/v1/container?challenge_id=2", u), 404),
        (lambda: c.call("DELETE", "/api/v1/container?challenge_id=2", u), 404),
        (lambda: c.call("GET", "/api/v1/admin/containers", u), 403),
        (lambda: c.call("GET", "/api/v1/admin/containers?page=0", ADMIN), 400),
        (lambda: c.call("GET", "/api/v1/admin/containers?per_page=100000", ADMIN), 400),
        (lambda: c.call("GET", "/api/v1/admin/containers?state=%3Cscript%3E", ADMIN), 400),
        (lambda: c.call("GET", "/api/v1/admin/containers?bogus=1", ADMIN), 400),
        (lambda: c.call("GET", "/api/v1/admin/containers/abc", ADMIN), 404),
        (lambda: c.call("GET", "/api/v1/admin/containers/99999/flag", ADMIN), 404),
        (lambda: c.call("PATCH", "/api/v1/admin/containers/99999", ADMIN), 404),
        (lambda: c.call("DELETE", "/api/v1/admin/containers/99999999999", ADMIN), 404),
        (lambda: c.call("DELETE", "/api/v1/admin/containers", ADMIN), 400),
        (lambda: c.call("GET", "/api/v1/container/extend", u), 405),
        (lambda: c.call("GET", "/admin/containers", u), 403),
        (lambda: c.call("GET", "/admin/containers?page=-1", ADMIN), 400),
        (lambda: c.call("GET", "/admin/containers?state=%3Cx%3E", ADMIN), 400),
        (lambda: c.call("GET", "/admin/containers/events?kind=%3Cscript%3E", ADMIN), 400),
        (lambda: c.call("GET", "/admin/containers/nope", ADMIN), 404),
        (lambda: page_post(c, "/admin/containers/stop", {"id": "1"}, nonce=False), 403),
        (lambda: page_post(c, "/admin/containers/extend", {"id": "abc"}), 303),
    ]


def page_post(c, path, fields, nonce=True):
    """The admin page's form post: urlencoded, the nonce in the action's query."""
    if nonce:
        path += ("&" if "?" in path else "?") + f"nonce=n{ADMIN}"
    return c.call("POST", path, ADMIN, raw=urllib.parse.urlencode(fields), csrf=False,
                  content_type="application/x-www-form-urlencoded")


def good_reads(c):
    u = [t * 10 for t in TEAMS]
    return [
        (lambda: c.status(random.choice(u), WEB), 200),
        (lambda: c.status(random.choice(u), TCP), 200),
        (lambda: c.status(random.choice(u), WEB, token=True), 200),
        (lambda: c.call("GET", "/api/v1/admin/containers", ADMIN), 200),
        (lambda: c.call("GET", "/api/v1/admin/containers?state=expired&per_page=5&page=2", ADMIN), 200),
        (lambda: c.call("GET", f"/api/v1/admin/containers?challenge_id={WEB}&account_id={TEAMS[1]}", ADMIN), 200),
        (lambda: c.call("GET", "/api/v1/admin/containers/status", ADMIN), 200),
        (lambda: c.call("GET", "/admin/containers", ADMIN), 200),
        (lambda: c.call("GET", f"/admin/containers?challenge_id={WEB}&per_page=5&page=1", ADMIN), 200),
        (lambda: c.call("GET", "/admin/containers/events", ADMIN), 200),
        (lambda: c.call("GET", "/admin/containers/stop-all", ADMIN), 200),
    ]


def labelled(entries):
    """(the lambda's source line, call, expected status)"""
    out = []
    for fn, status in entries:
        try:
            src = inspect.getsource(fn).strip()
        except (OSError, TypeError):
            src = repr(fn)
        out.append((src[:120], fn, status))
    return out


@case
def traffic(ctx):
    """1,000 requests through nginx to one worker under valgrind: reads, lifecycle, bad input, admin"""
    c = ctx.client
    rng = random.Random(int(os.environ.get("CC_VG_SEED") or 7))
    random.seed(rng.random())
    done = {"n": 0, "lifecycle": 0, "bad": 0, "reads": 0}
    wrong = []

    def expect(fn, status, kind):
        r = fn()
        done["n"] += 1
        done[kind] += 1
        if r.status not in (status if isinstance(status, tuple) else (status,)):
            wrong.append((kind, status, r))
        return r

    t0 = time.monotonic()
    # The lifecycle: starts (web and tcp), reads of the served flag, extends,
    # reverts, admin reveal / extend / stop, player stops, stop-all.
    for i, t in enumerate(TEAMS):
        u = t * 10
        cid = WEB if i % 2 == 0 else TCP
        r = expect(lambda: c.start(u, cid), 200, "lifecycle")
        if r.status == 200 and cid == WEB:
            flag = http_get(connection_of(r)["connection"])
            fr = expect(lambda: c.call("GET", f"/api/v1/admin/containers/{r.data['id']}/flag",
                                       ADMIN), 200, "lifecycle")
            eq(fr.data["flag"] if fr.status == 200 else None, flag, "revealed flag")
        expect(lambda: c.extend(u, cid), 200, "lifecycle")
        expect(lambda: c.call("POST", "/api/v1/container/extend", u, body={"challenge_id": cid}),
               200, "lifecycle")
        if i % 3 == 0:
            expect(lambda: c.start(u, cid), 200, "lifecycle")  # revert
        if i % 3 == 1:
            iid = c.status(u, cid).data["id"]
            done["n"] += 1
            expect(lambda: c.call("PATCH", f"/api/v1/admin/containers/{iid}", ADMIN), 200,
                   "lifecycle")
            expect(lambda: c.call("DELETE", f"/api/v1/admin/containers/{iid}", ADMIN), 200,
                   "lifecycle")
        if i % 3 == 1:  # no container left: the missing image is the answer
            expect(lambda: c.start(u, 5), 500, "lifecycle")
        else:           # one live container is the limit
            expect(lambda: c.start(u, 5), 409, "lifecycle")
    for i, t in enumerate(TEAMS[:3]):
        cid = WEB if i % 2 == 0 else TCP
        expect(lambda: c.stop(t * 10, cid), 200 if i % 3 != 1 else 404, "lifecycle")
        expect(lambda: c.stop(t * 10, cid), 404, "lifecycle")
    # The admin page's actions on a live container: reveal, extend, and the pages.
    iid = c.status(TEAMS[5] * 10, TCP).data["id"]
    expect(lambda: page_post(c, "/admin/containers/flag", {"id": iid}), 200, "lifecycle")
    expect(lambda: page_post(c, "/admin/containers/extend", {"id": iid}), 303, "lifecycle")
    expect(lambda: c.call("GET", "/admin/containers/events", ADMIN), 200, "lifecycle")
    expect(lambda: c.call("GET", f"/admin/containers?account_id={TEAMS[5]}", ADMIN), 200,
           "lifecycle")
    # Extends up to the renewal limit (3; its revert reset the count), then 409.
    u = TEAMS[3] * 10
    for status in (200, 200, 200, 409, 409):
        expect(lambda: c.extend(u, TCP), status, "lifecycle")
    lifecycle_took = time.monotonic() - t0

    # The rest: reads and bad input, interleaved, from two client threads.
    bad, reads = labelled(bad_inputs(c)), labelled(good_reads(c))
    plan = []
    while done["n"] + len(plan) < TOTAL - 1:
        plan.append(rng.choice(bad) if rng.random() < 0.4 else rng.choice(reads))
    lock = threading.Lock()

    def drain():
        while True:
            with lock:
                if not plan:
                    return
                label, fn, status = plan.pop()
            ok = status if isinstance(status, tuple) else (status,)
            kind = "bad" if min(ok) >= 400 else "reads"
            r = fn()
            with lock:
                done["n"] += 1
                done[kind] += 1
                if r.status not in ok:
                    wrong.append((label, status, r))

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    r = expect(lambda: c.call("DELETE", "/api/v1/admin/containers?confirm=all", ADMIN), 200,
               "lifecycle")
    took = time.monotonic() - t0
    print(f"# {done['n']} requests in {took:.1f} s ({lifecycle_took:.1f} s of lifecycle): "
          f"{done['lifecycle']} lifecycle, {done['reads']} reads, {done['bad']} bad input")
    check(done["n"] >= TOTAL, f"only {done['n']} requests")
    served = len(re.findall(r"\[worker \d+\] [A-Z]+ /", ctx.app.log()))
    print(f"# the worker logged {served} requests (nginx itself answers those without a "
          f"session or nonce)")
    check(served >= TOTAL * 0.9, f"the worker served only {served} requests")
    check(not wrong, f"{len(wrong)} unexpected replies, e.g. {wrong[:3]}")
    wait_for(lambda: ctx.db.live_count() == 0, 30, what="every container stopped")


@case
def reload(ctx):
    """SIGHUP: a new worker and reaper replace the old ones, which exit by themselves"""
    old = set(ctx.roles)
    os.kill(ctx.app.proc.pid, signal.SIGHUP)
    new = wait_for(lambda: (lambda k: k if len(k) == 2 and not k & old else None)(
        set(ctx.app.children())), 60, step=0.2, what="a new worker and reaper")
    ctx.roles.update(roles_of(new))
    c, u = ctx.client, TEAMS[-1] * 10
    for i in range(40):
        eq(c.status(u, WEB).status, 200, "status after the reload")
    eq(c.start(u, WEB).status, 200, "start after the reload")
    eq(c.stop(u, WEB).status, 200, "stop after the reload")
    eq(c.call("GET", "/api/v1/container?challenge_id=x", u).status, 400, "bad input")


@case
def clean_exit(ctx):
    """SIGTERM: master, worker and reaper all exit by themselves (no SIGKILL)"""
    t0 = time.monotonic()
    rc = ctx.app.stop(timeout=120)
    ctx.stopped = True
    print(f"# the master exited {rc} after {time.monotonic() - t0:.1f} s")
    eq(rc, 0, "master's exit status")
    log = ctx.app.log()
    check("did not stop in time" not in log, "a child was killed after the grace period")
    check(" killed by signal" not in log, "a child died of a signal")


LEAK_RE = re.compile(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks")
ERR_RE = re.compile(r"ERROR SUMMARY: ([\d,]+) errors from ([\d,]+) contexts")
CMD_RE = re.compile(r"^==\d+== Command: (.*)$", re.M)
PARENT_RE = re.compile(r"^==\d+== Parent PID: (\d+)", re.M)


def summarize(path):
    """(pid, command, definitely lost bytes or None, errors or None, summary lines)"""
    with open(path, errors="replace") as fh:
        text = fh.read()
    pid = int(re.search(r"vg\.(\d+)\.log$", path).group(1))
    cmd = (CMD_RE.search(text).group(1) if CMD_RE.search(text) else "?").split(" -c ")[-1]
    lost = None
    m = LEAK_RE.search(text)
    if m:
        lost = int(m.group(1).replace(",", ""))
    elif "All heap blocks were freed -- no leaks are possible" in text:
        lost = 0
    m = ERR_RE.search(text)
    errors = int(m.group(1).replace(",", "")) if m else None
    lines = [line.split("== ", 1)[-1] for line in text.splitlines()
             if re.search(r"(in use at exit|definitely lost|indirectly lost|possibly lost|"
                          r"still reachable|ERROR SUMMARY|All heap blocks)", line)]
    return pid, cmd, lost, errors, lines, text


@case
def no_leaks_no_errors(ctx):
    """every process (migrate, master, 2 workers, 2 reapers): 0 bytes definitely lost, 0 errors"""
    check(ctx.stopped, "the app did not stop")
    logs = sorted(glob.glob(os.path.join(ctx.app.vgdir, "vg.*.log")))
    master = ctx.app.proc.pid
    kinds = []
    failures = []
    for path in logs:
        pid, cmd, lost, errors, lines, text = summarize(path)
        parent = PARENT_RE.search(text)
        if "--migrate" in cmd:
            kind = "migrate"
        elif pid == master:
            kind = "master"
        elif parent and int(parent.group(1)) == master:
            kind = ctx.roles.get(pid, "unknown child")
        else:
            kind = "unknown"
        kinds.append(kind)
        print(f"# {kind} {pid}:")
        for line in lines:
            print(f"#     {line}")
        if lost is None or errors is None:
            failures.append(f"{kind} {pid}: no leak or error summary (did it exit?)")
        elif lost != 0 or errors != 0:
            failures.append(f"{kind} {pid}: {lost} bytes definitely lost, {errors} errors")
            # The first error or leak record, to show where.
            first = re.search(r"(==\d+== (?:Invalid|Conditional|Use of|Syscall|Mismatched|"
                              r"Source and|Argument|[\d,]+ bytes in [\d,]+ blocks are definitely)"
                              r".*?)(?:\n==\d+== \n)", text, re.S)
            if first:
                for line in first.group(1).splitlines()[:25]:
                    print(f"#       {line.split('== ', 1)[-1]}")
    eq(sorted(kinds), sorted(["migrate", "master", "worker", "reaper", "worker", "reaper"]),
       "one valgrind log per process (two generations of children: before and after SIGHUP)")
    check(not failures, "; ".join(failures))


if __name__ == "__main__":
    if sanitized(BINARY):
        # Not a missing dependency (CC_TEST_REQUIRE does not apply): this build is
        # checked by ASan/UBSan instead, and valgrind cannot run it.
        print("1..0 # SKIP the binary is built with sanitizers; valgrind checks the plain build")
        sys.exit(0)
    run(setup, teardown)
