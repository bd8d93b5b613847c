"""Concurrency through real nginx, MariaDB and Docker: the limits hold when many
requests arrive at once on all workers, because they are decided in the
database (the account's row lock, the capacity row, the unique key on live
rows), not in any one process.

  1-3  20 simultaneous starts by one team (cooldown 300 s): 1 container, 19 refusals
  4    20 teams at once: 20 containers, 20 ports, 20 flags, each the admin's reveal
  5    max_containers = 5, 12 teams at once: 5 start, 7 CAPACITY_FULL, never > 5 live
  6    15 teams for ~12 s: start / stop / revert / extend racing each other and the
       reaper's expiry (lifetime 2 s); afterwards rows, ports and engine agree
"""
import collections
import os
import random
import re
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LABEL, Site, case, check, connection_of, eq, http_get, run, sh,  # noqa
                     wait_for)

ADMIN = 1
WEB, SHORT = 1, 2
BURST = 20

# Team ids per case (fresh teams: the cooldown of one case never reaches the next).
TEAM_SAME = (100, 200, 300)   # case a: one team per round, users TEAM*10 + k
TEAMS_MANY = range(400, 420)  # case b
TEAMS_CAP = range(500, 512)   # case c
TEAMS_CHAOS = range(600, 615)  # case d


def setup():
    site = Site("races", cooldown_seconds=300)
    db = site.db
    db.config("user_mode", "teams")
    db.user(ADMIN, "admin", admin=True)
    for tid in TEAM_SAME:
        db.team(tid, f"same-{tid}")
        for k in range(BURST):
            db.user(tid * 10 + k, f"u{tid}-{k}", team=tid)
    for group in (TEAMS_MANY, TEAMS_CAP, TEAMS_CHAOS):
        for tid in group:
            db.team(tid, f"team-{tid}")
            db.user(tid * 10, f"u{tid}", team=tid)
    db.challenge(WEB, "web")
    db.challenge(SHORT, "short", lifetime=2)
    return site


def teardown(site):
    keep = os.environ.get("CC_KEEP_LOGS")
    if keep:  # a directory to copy the app's and nginx's logs into
        os.makedirs(keep, exist_ok=True)
        for src in (site.app.log_path, os.path.join(site.nginx.dir, "nginx-error.log")):
            if os.path.exists(src):
                shutil.copy(src, os.path.join(keep, f"races-{os.getpid()}-{os.path.basename(src)}"))
    site.close()


# ---------------------------------------------------------------- helpers
def burst(fn, args_list):
    """Call fn(*args) from one thread per entry, released together by a barrier."""
    barrier = threading.Barrier(len(args_list))
    out = [None] * len(args_list)

    def one(i, args):
        barrier.wait()
        try:
            out[i] = fn(*args)
        except Exception as e:  # a transport error is a result too
            out[i] = e

    threads = [threading.Thread(target=one, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def restart(site, **options):
    """The same site (database, nginx, socket) with another app configuration."""
    site.app.stop()
    site.app.options.update(options)
    site.app.start(migrate=False)


def log_size(site):
    return os.path.getsize(site.app.log_path)


def workers_that_served(site, since, method, path):
    """Pids of the workers whose log shows `method path` after byte offset `since`."""
    with open(site.app.log_path, "rb") as fh:
        fh.seek(since)
        text = fh.read().decode("utf-8", "replace")
    pat = re.compile(r"\[worker (\d+)\] " + re.escape(method) + " " + re.escape(path) + " ")
    return collections.Counter(m.group(1) for m in pat.finditer(text))


def engine(site):
    """{instance id: (name, running)} of this site's engine containers."""
    out = sh("docker", "ps", "-a", "--filter", f"label=ctfd-containers.site={site.app.options['site']}",
             "--format", '{{.Names}}\t{{.Label "' + LABEL + '"}}\t{{.State}}').stdout
    objs = {}
    for line in out.splitlines():
        if line.strip():
            name, iid, state = line.split("\t")
            objs[int(iid)] = (name, state)
    return objs


def engine_for_account(site, account):
    out = sh("docker", "ps", "-a", "--filter", f"label=ctfd-containers.site={site.app.options['site']}",
             "--filter", f"label=ctfd-containers.account={account}", "--format", "{{.Names}}").stdout
    return out.split()


def live_rows(site, where="1=1"):
    rows = site.db.rows(f"SELECT id, account_id, state, ports FROM container_instances "
                        f"WHERE live = 1 AND {where} ORDER BY id")
    return [(int(r[0]), int(r[1]), r[2], r[3]) for r in rows]


def host_port_of(stored):
    """'8080/http:42017' -> 42017"""
    return int(stored.split(":")[1].split(",")[0])


def reveal(site, iid):
    r = site.client.call("GET", f"/api/v1/admin/containers/{iid}/flag", ADMIN)
    eq(r.status, 200, f"admin reveal of {iid}: {r}")
    return r.data["flag"]


def stop_all(site, accounts, cid):
    replies = burst(lambda a: site.client.stop(a * 10, cid), [(a,) for a in accounts])
    for a, r in zip(accounts, replies):
        check(not isinstance(r, Exception) and r.status in (200, 404), f"stop of team {a}: {r}")


def stop_everything(site):
    """After a failed case: leave nothing live for the next one."""
    if site.db.live_count():
        site.client.call("DELETE", "/api/v1/admin/containers?confirm=all", ADMIN)


def no_leftovers(site, what):
    wait_for(lambda: not engine(site) and site.db.live_count() == 0, 15,
             what=f"no live rows and no engine containers ({what})")
    eq(site.db.value("SELECT COUNT(*) FROM container_ports"), "0", f"ports held ({what})")


# ---------------------------------------------------------------- a. one account
def same_account_round(site, rnd):
    tid = TEAM_SAME[rnd]
    before = log_size(site)
    t0 = time.monotonic()
    replies = burst(site.client.start, [(tid * 10 + k, WEB) for k in range(BURST)])
    took = time.monotonic() - t0
    for r in replies:
        check(not isinstance(r, Exception), f"transport error: {r!r}")
    ok = [r for r in replies if r.status == 200]
    refused = [r for r in replies if r.status != 200]
    eq(len(ok), 1, f"replies 200 (statuses {sorted(r.status for r in replies)})")
    for r in refused:
        check(400 <= r.status < 500 and r.code in ("COOLDOWN", "CONTAINER_BUSY"),
              f"refusal must be a 4xx COOLDOWN or CONTAINER_BUSY: {r}")
        check(r.json.get("success") is False and (r.json.get("message") or "").strip(),
              f"refusal without a message: {r}")
    codes = collections.Counter(r.code for r in refused)
    served = workers_that_served(site, before, "POST", "/api/v1/container")
    print(f"# round {rnd + 1}: 1 x 200, refusals {dict(codes)}; {took:.2f} s; "
          f"requests per worker {sorted(served.values(), reverse=True)}")
    eq(sum(served.values()), BURST, "every start reached a worker")
    check(len(served) >= 2, f"the burst reached only {len(served)} worker(s)")
    eq(len(live_rows(site, f"account_id = {tid}")), 1, "live rows of the team")
    eq(site.db.value(f"SELECT COUNT(*) FROM container_instances WHERE account_id = {tid}"), "1",
       "rows of the team (no failed or reverted ones)")
    eq(len(engine_for_account(site, tid)), 1, "engine containers of the team")
    flag = http_get(connection_of(ok[0])["connection"])
    eq(flag, reveal(site, ok[0].data["id"]), "the one container serves its flag")
    # Stop is never rate-limited; the cooldown still refuses the next start.
    r = site.client.stop(tid * 10 + 3, WEB)
    eq(r.status, 200, f"stop {r}")
    r = site.client.start(tid * 10 + 4, WEB)
    eq((r.status, r.code), (429, "COOLDOWN"), "a start right after the stop")
    check(r.json.get("retry_after", 0) > 200, f"retry_after {r}")
    eq(len(live_rows(site, f"account_id = {tid}")), 0, "no live row after the stop")
    wait_for(lambda: not engine_for_account(site, tid), 10, what="the engine container removed")


@case
def same_account_1(site):
    """20 simultaneous starts by one team on 4 workers: exactly 1 container, 19 COOLDOWN/BUSY (round 1)"""
    try:
        same_account_round(site, 0)
    finally:
        stop_everything(site)


@case
def same_account_2(site):
    """the same burst again with a fresh team (round 2)"""
    try:
        same_account_round(site, 1)
    finally:
        stop_everything(site)


@case
def same_account_3(site):
    """the same burst again with a fresh team (round 3)"""
    try:
        same_account_round(site, 2)
    finally:
        stop_everything(site)


# ---------------------------------------------------------------- b. many accounts
@case
def many_accounts(site):
    """20 teams at once: 20 containers, 20 distinct host ports and flags, each equal to the admin reveal"""
    try:
        many_accounts_body(site)
    finally:
        stop_everything(site)


def many_accounts_body(site):
    teams = list(TEAMS_MANY)
    t0 = time.monotonic()
    replies = burst(site.client.start, [(t * 10, WEB) for t in teams])
    took = time.monotonic() - t0
    for t, r in zip(teams, replies):
        check(not isinstance(r, Exception) and r.status == 200, f"start of team {t}: {r}")
    print(f"# 20 starts in {took:.2f} s")
    ids = [r.data["id"] for r in replies]
    ports = [connection_of(r)["host_port"] for r in replies]
    eq(len(set(ids)), BURST, "distinct ids")
    eq(len(set(ports)), BURST, f"distinct host ports {sorted(ports)}")
    flags = [http_get(connection_of(r)["connection"]) for r in replies]
    eq(len(set(flags)), BURST, "distinct flags")
    for iid, flag in zip(ids, flags):
        check(flag.startswith("CTF{") and len(flag) == 37, f"flag shape {flag!r}")
        eq(flag, reveal(site, iid), f"flag of container {iid} vs the admin reveal")
    eq(len(live_rows(site)), BURST, "live rows")
    objs = engine(site)
    eq(sorted(objs), sorted(ids), "engine containers = rows")
    check(all(state == "running" for _, state in objs.values()), f"all running: {objs}")
    db_ports = sorted(int(p[0]) for p in site.db.rows("SELECT host_port FROM container_ports"))
    eq(db_ports, sorted(ports), "container_ports")
    stop_all(site, teams, WEB)
    no_leftovers(site, "after stopping the 20")


# ---------------------------------------------------------------- c. capacity
@case
def global_capacity(site):
    """max_containers = 5, 12 teams at once: 5 start, 7 get CAPACITY_FULL (503 + retry_after), never > 5 live"""
    restart(site, max_containers=5)
    try:
        global_capacity_body(site)
    finally:
        stop_everything(site)


def global_capacity_body(site):
    teams = list(TEAMS_CAP)
    seen = {"rows": 0, "engine": 0, "samples": 0}
    done = threading.Event()

    def monitor():
        while not done.is_set():
            seen["rows"] = max(seen["rows"], site.db.live_count())
            seen["engine"] = max(seen["engine"], len(engine(site)))
            seen["samples"] += 1

    mon = threading.Thread(target=monitor)
    mon.start()
    try:
        replies = burst(site.client.start, [(t * 10, WEB) for t in teams])
        time.sleep(0.5)
    finally:
        done.set()
        mon.join()
    for t, r in zip(teams, replies):
        check(not isinstance(r, Exception), f"transport error for team {t}: {r!r}")
    ok = [r for r in replies if r.status == 200]
    full = [r for r in replies if r.status == 503 and r.code == "CAPACITY_FULL"]
    eq(len(ok), 5, f"started (replies {sorted((r.status, r.code) for r in replies)})")
    eq(len(full), 7, "CAPACITY_FULL")
    for r in full:
        check(r.json.get("retry_after", 0) > 0, f"retry_after in the body: {r}")
        check(int(r.headers.get("Retry-After", "0")) > 0, f"Retry-After header: {r.headers}")
        check((r.json.get("message") or "").strip(), f"message: {r}")
    print(f"# most live rows seen {seen['rows']}, most engine containers {seen['engine']} "
          f"({seen['samples']} samples during the burst)")
    check(seen["rows"] <= 5 and seen["engine"] <= 5, f"more than 5 live: {seen}")
    eq(site.db.live_count(), 5, "live rows after the burst")
    eq(len(engine(site)), 5, "engine containers after the burst")
    eq(len({connection_of(r)["host_port"] for r in ok}), 5, "distinct ports")
    # A slot freed is a slot taken: one more start succeeds, the next is full again.
    started = {r.data["id"] for r in ok}
    winner = [t for t, r in zip(teams, replies) if r.status == 200][0]
    losers = [t for t, r in zip(teams, replies) if r.status != 200]
    eq(site.client.stop(winner * 10, WEB).status, 200, "stop one")
    r = site.client.start(losers[0] * 10, WEB)
    eq(r.status, 200, f"start into the freed slot {r}")
    check(r.data["id"] not in started, "a new container")
    r = site.client.start(losers[1] * 10, WEB)
    eq((r.status, r.code), (503, "CAPACITY_FULL"), "full again")
    stop_all(site, teams, WEB)
    no_leftovers(site, "after the capacity case")


# ---------------------------------------------------------------- d. chaos
class Chaos:
    """One thread per team: start, then stop (at once, later, or while the start
    is still running), let it expire, revert or extend, or start twice at once,
    at random."""

    def __init__(self, site, seconds, seed):
        self.site = site
        self.until = time.monotonic() + seconds
        self.rng_seed = seed
        self.ops = collections.Counter()      # action -> count
        self.replies = collections.Counter()  # (method, status, code) -> count
        self.bad = []                         # replies no race may produce
        self.lock = threading.Lock()

    def note(self, method, r):
        with self.lock:
            self.ops[method] += 1
            if isinstance(r, Exception):
                self.bad.append((method, repr(r)))
                return
            self.replies[(method, r.status, r.code)] += 1
            if r.status >= 500 or r.status in (400, 401, 403, 405):
                self.bad.append((method, repr(r)))

    def call(self, method, user):
        c = self.site.client
        fn = {"start": c.start, "stop": c.stop, "extend": c.extend, "status": c.status}[method]
        try:
            r = fn(user, SHORT)
        except Exception as e:
            r = e
        self.note(method, r)
        return r

    def loop(self, team):
        rng = random.Random(self.rng_seed * 1000 + team)
        user = team * 10
        while time.monotonic() < self.until:
            choice = rng.random()
            if choice < 0.2:
                # stop while the start is still in flight
                t = threading.Thread(target=self.call, args=("start", user))
                t.start()
                time.sleep(rng.uniform(0, 0.4))
                self.call("stop", user)
                t.join()
                continue
            if choice > 0.95:
                # a double click: two starts at once (one starts or reverts, one is BUSY)
                t = threading.Thread(target=self.call, args=("start", user))
                t.start()
                self.call("start", user)
                t.join()
                continue
            r = self.call("start", user)
            if isinstance(r, Exception):
                continue
            if choice < 0.4:
                self.call("stop", user)                      # right away
            elif choice < 0.6:
                time.sleep(rng.uniform(0.05, 1.5))           # after a short delay
                self.call("stop", user)
            elif choice < 0.75:
                time.sleep(rng.uniform(1.5, 3.0))            # let it (nearly) expire
                self.call("status", user)
            elif choice < 0.9:
                time.sleep(rng.uniform(0, 1.5))              # revert, maybe as it expires
                self.call("start", user)
            else:
                time.sleep(rng.uniform(0, 1.0))              # extend, maybe as it expires
                self.call("extend", user)
        self.call("start", user)  # end with a container, so the checks below see some


def reaper_pid(site):
    """The reaper is forked after the workers; it is the child that never served a request."""
    kids = sorted(site.app.children())
    with open(site.app.log_path) as fh:
        workers = set(re.findall(r"\[worker (\d+)\]", fh.read()))
    pid = kids[-1]
    check(str(pid) not in workers, f"could not tell the reaper among {kids}")
    return pid


@case
def chaos(site):
    """start / stop / revert / extend racing each other and expiry: rows, ports and engine agree"""
    restart(site, cooldown_seconds=0, max_containers=0, orphan_grace_seconds=600,
            extend_seconds=30)
    teams = list(TEAMS_CHAOS)
    seed = int(os.environ.get("CC_RACES_SEED") or random.randrange(1 << 30))
    print(f"# seed {seed} (CC_RACES_SEED={seed} repeats the choices)")
    ch = Chaos(site, 12.0, seed)
    threads = [threading.Thread(target=ch.loop, args=(t,)) for t in teams]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    took = time.monotonic() - t0
    total = sum(ch.ops.values())
    print(f"# {total} operations by {len(teams)} teams in {took:.1f} s: {dict(ch.ops)}")
    for (method, status, code), n in sorted(ch.replies.items(), key=lambda kv: -kv[1]):
        print(f"#   {method:6} {status} {code or ''}: {n}")
    for method, r in ch.bad:
        print(f"# NOT EXPECTED: {method} -> {r[:300]}")

    # Settle: no request is in flight; freeze the reaper once no row is mid-change,
    # so the checks below read one consistent state.
    reaper = reaper_pid(site)
    in_flight = "SELECT COUNT(*) FROM container_instances WHERE live = 1 AND state IN " \
                "('starting', 'stopping')"
    for attempt in range(50):
        wait_for(lambda: site.db.value(in_flight) == "0", 20, what="no row starting or stopping")
        os.kill(reaper, signal.SIGSTOP)
        if site.db.value(in_flight) == "0":
            break
        os.kill(reaper, signal.SIGCONT)
        time.sleep(0.1)
    else:
        raise AssertionError("rows kept changing")
    try:
        rows = live_rows(site)
        objs = engine(site)
        live_ids = {r[0] for r in rows}
        print(f"# settled: {len(rows)} live rows, {len(objs)} engine containers")
        orphans = sorted(set(objs) - live_ids)
        if orphans:
            ended = site.db.rows("SELECT id, state, end_reason FROM container_instances "
                                 f"WHERE id IN ({','.join(map(str, orphans))})")
            raise AssertionError(f"engine containers without a live row: "
                                 f"{[(i, objs[i]) for i in orphans]}; their rows: {ended}")
        for iid, account, state, ports in rows:
            eq(state, "running", f"state of live row {iid}")
            check(iid in objs and objs[iid][1] == "running",
                  f"live running row {iid} (team {account}) without a running container: "
                  f"{objs.get(iid)}")
        stray = site.db.rows("SELECT p.host_port, p.instance_id FROM container_ports p "
                             "LEFT JOIN container_instances i ON i.id = p.instance_id "
                             "AND i.live = 1 WHERE i.id IS NULL")
        check(not stray, f"host ports held without a live row: {stray}")
        held = sorted(int(p[0]) for p in site.db.rows("SELECT host_port FROM container_ports"))
        eq(held, sorted(host_port_of(r[3]) for r in rows), "ports held = ports of live rows")
        for iid, account, state, ports in rows:
            served = http_get(f"http://127.0.0.1:{host_port_of(ports)}/")
            eq(served, reveal(site, iid), f"flag served by container {iid} vs the admin reveal")
        eq(len({r[1] for r in rows}), len(rows), "at most one live row per team")
    finally:
        os.kill(reaper, signal.SIGCONT)

    mine = f"account_id BETWEEN {teams[0]} AND {teams[-1]}"
    ends = site.db.rows(f"SELECT state, COUNT(*) FROM container_instances WHERE live IS NULL "
                        f"AND {mine} GROUP BY state ORDER BY state")
    print(f"# ended rows by state: {', '.join(f'{s} {n}' for s, n in ends)}")
    lost = site.db.rows(f"SELECT id, end_reason FROM container_instances WHERE state = 'lost' "
                        f"AND {mine}")
    check(not lost, f"rows the reconcile found without their container: {lost}")
    # Every deadline passes (lifetime 2 s; a container extended in the loop got 30 s
    # more, so its team stops it): then nothing is left.
    for t in teams:
        extended = site.db.value(f"SELECT COUNT(*) FROM container_instances WHERE live = 1 "
                                 f"AND account_id = {t} AND renewals > 0")
        if extended != "0":
            eq(site.client.stop(t * 10, SHORT).status, 200, f"stop the extended one of team {t}")
    wait_for(lambda: site.db.live_count() == 0, 15, what="every live row expired")
    wait_for(lambda: not engine(site), 15, what="every engine container removed")
    eq(site.db.value("SELECT COUNT(*) FROM container_ports"), "0", "ports held at the end")
    eq(site.db.value("SELECT COUNT(*) FROM container_instances WHERE state IN "
                     "('starting', 'stopping')"), "0", "rows stuck in starting/stopping")
    check(not ch.bad, f"replies no race may produce (5xx, or 4xx other than 404/409): "
                      f"{ch.bad[:3]}")


@case
def nothing_left(site):
    """at the end: no live rows, no engine objects, no ports, no error lines in the log"""
    eq(site.db.live_count(), 0, "live rows")
    eq(engine(site), {}, "engine containers")
    log = site.app.log()
    errors = [line for line in log.splitlines() if " error [" in line]
    check(not errors, f"error lines in the app log: {errors[:5]}")
    check(" killed by signal" not in log, "a child died")


if __name__ == "__main__":
    run(setup, teardown)
