"""Warm pools through real nginx, MariaDB and Docker: the reaper keeps
docker_challenge.warm_pool containers started per challenge; a player's start
claims one in its admission transaction (the row, the ports and the flag row
become the account's); limits, cooldown and capacity are decided exactly as
for a cold start; reconcile leaves pool containers alone and replaces dead
ones; warm_pool = 0 drains the pool.

  1  the pool fills to its size (account label 0, hidden from the admin list,
     no flag reveal, not counted as capacity)
  2  a start claims a pool container; the container serves the flag whose HMAC
     row is the account's
  3  the pool refills; with no claimable pool container a start goes cold
  4  limits and cooldown refuse with the pool full, and leave it untouched
  5  a revert takes a fresh pool container
  6  10 teams at once claim 10 distinct pool containers; capacity still holds
  7  reconcile leaves pool containers alone, replaces a removed and an expired one
  8  changed challenge settings retire the pool's containers (fresh ones replace them)
  9  warm_pool = 0 drains the pool; nothing of ours is left on the engine
 10  the app stops cleanly (no sanitizer report under --enable-sanitizers, no flag logged)
"""
import hashlib
import hmac
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BINARY, LABEL, App, Database, Site, case, check, eq, http_get, run, sh,  # noqa: E402
                     wait_for)

ADMIN = 1
WEB, COLD = 1, 2
TEAM_A, TEAM_CAP = 100, 199
TEAMS_BURST = range(200, 210)
MAX_CONTAINERS = 10  # the burst (10): full after it


def setup():
    site = Site("pool", cooldown_seconds=300, reconcile_interval_seconds=1,
                warm_pool_max_total=12, warm_pool_retry_seconds=2,
                max_containers=MAX_CONTAINERS)
    db = site.db
    db.config("user_mode", "teams")
    db.user(ADMIN, "admin", admin=True)
    for tid in [TEAM_A, TEAM_CAP, *TEAMS_BURST]:
        db.team(tid, f"team-{tid}")
        db.user(tid * 10, f"u{tid}", team=tid)
    db.challenge(WEB, "web")
    db.challenge(COLD, "cold")
    return site


def teardown(site):
    site.close()


# ---------------------------------------------------------------- helpers
def pool_rows(site, cid=WEB, state="running"):
    """Ids of live pool rows of a challenge in a state."""
    return [int(r[0]) for r in site.db.rows(
        f"SELECT id FROM container_instances WHERE account_kind = 'pool' AND live = 1 "
        f"AND challenge_id = {cid} AND state = '{state}' ORDER BY id")]


def live_pool(site):
    return int(site.db.value("SELECT COUNT(*) FROM container_instances "
                             "WHERE account_kind = 'pool' AND live = 1"))


def set_pool(site, size, cid=WEB):
    site.db.sql(f"UPDATE docker_challenge SET warm_pool = {size} WHERE id = {cid}")


def wait_full(site, size, cid=WEB, timeout=60):
    try:
        return wait_for(lambda: len(pool_rows(site, cid)) == size and
                        live_pool(site) == size and pool_rows(site, cid),
                        timeout=timeout, step=0.2, what=f"{size} running pool containers")
    except AssertionError:
        print("# pool rows: " + repr(site.db.rows(
            "SELECT id, state, live, COALESCE(end_reason, '') FROM container_instances "
            "WHERE account_kind = 'pool' ORDER BY id DESC LIMIT 12")))
        for line in site.app.log().splitlines()[-40:]:
            print("# log: " + line)
        raise


def engine(site):
    """{instance id: (account label, state)} of this site's engine containers."""
    out = sh("docker", "ps", "-a", "--filter",
             f"label=ctfd-containers.site={site.app.options['site']}", "--format",
             '{{.Label "' + LABEL + '"}}\t{{.Label "ctfd-containers.account"}}\t{{.State}}').stdout
    objs = {}
    for line in out.splitlines():
        if line.strip():
            iid, account, state = line.split("\t")
            objs[int(iid)] = (account, state)
    return objs


def mac_key(site):
    with open(site.app.options["flag_key_file"]) as fh:
        master = bytes.fromhex(fh.read().strip())
    return hmac.new(master, b"ctfd-containers/v1/mac", hashlib.sha256).digest()


def owner_of_served_flag(site, reply):
    """The flag the container serves, looked up by its HMAC as the plugin does."""
    flag = http_get(reply.data["ports"][0]["connection"])
    d = hmac.new(mac_key(site), flag.encode(), hashlib.sha256).hexdigest()
    rows = site.db.rows(f"SELECT instance_id, account_kind, account_id, challenge_id, "
                        f"COALESCE(retired_at, '') FROM container_flags WHERE digest = UNHEX('{d}')")
    eq(len(rows), 1, "one flag row by the served flag's digest")
    return rows[0]


def row(site, iid):
    r = site.db.rows(f"SELECT account_kind, account_id, user_id, state, live, "
                     f"COALESCE(claimed_at, ''), COALESCE(pool_spec, '') FROM container_instances "
                     f"WHERE id = {iid}")
    return r[0] if r else None


def admin_status(site):
    r = site.client.call("GET", "/api/v1/admin/containers/status", ADMIN)
    eq(r.status, 200, f"admin status {r}")
    return r.data


# ---------------------------------------------------------------- cases
@case
def pool_fills(site):
    """the reaper fills the pool to its size; pool containers are nobody's yet"""
    eq(live_pool(site), 0, "no pool before warm_pool is set")
    set_pool(site, 2)
    ids = wait_full(site, 2)
    objs = engine(site)
    for iid in ids:
        check(iid in objs and objs[iid] == ("0", "running"),
              f"pool container {iid} runs on the engine with account label 0: {objs}")
        kind, account, user, state, live, claimed, spec = row(site, iid)
        eq((kind, account, user, claimed), ("pool", str(iid), "0", ""), f"pool row {iid}")
        check(len(spec) == 16, f"spec key recorded: {spec!r}")
        eq(site.db.rows(f"SELECT account_kind, account_id FROM container_flags "
                        f"WHERE instance_id = {iid} AND retired_at IS NULL"),
           [["pool", str(iid)]], "its flag row is the pool's")
        r = site.client.call("GET", f"/api/v1/admin/containers/{iid}/flag", ADMIN)
        eq((r.status, r.code), (404, "CONTAINER_NOT_FOUND"), "a pool flag is never revealed")
        r = site.client.call("DELETE", f"/api/v1/admin/containers/{iid}", ADMIN)
        eq(r.status, 404, "admins act on players' containers only")
    r = site.client.call("GET", "/api/v1/admin/containers", ADMIN)
    eq((r.status, r.json["meta"]["total"]), (200, 0), "the admin list shows no pool container")
    st = admin_status(site)
    eq((st["live"], st["warm_pool"]), (0, 2), "status: 0 live, 2 warm")
    eq(site.db.value("SELECT COUNT(*) FROM container_events WHERE kind = 'flag_reveal'"), "0",
       "no reveal happened")


@case
def start_claims_warm(site):
    """a start claims a pool container: row, ports and flag are the account's"""
    before = pool_rows(site)
    r = site.client.start(TEAM_A * 10, WEB)
    eq(r.status, 200, f"start {r}")
    iid = r.data["id"]
    check(iid in before, f"the started container {iid} came from the pool {before}")
    kind, account, user, state, live, claimed, spec = row(site, iid)
    eq((kind, account, user, state, live), ("team", str(TEAM_A), str(TEAM_A * 10), "running", "1"),
       "the row is the team's")
    check(claimed != "", "claimed_at set")
    eq(r.data["renewals_used"], 0, "fresh renewals")
    check(3500 <= r.data["seconds_left"] <= 3600, f"a fresh deadline: {r.data['seconds_left']}")
    owner = owner_of_served_flag(site, r)
    eq(owner, [str(iid), "team", str(TEAM_A), str(WEB), ""],
       "the served flag's row is the team's, live, for this container")
    ports = {int(p["host_port"]) for p in r.data["ports"]}
    eq({int(x[0]) for x in site.db.rows(f"SELECT host_port FROM container_ports "
                                        f"WHERE instance_id = {iid}")}, ports, "its host ports")
    s = site.client.status(TEAM_A * 10, WEB)
    eq((s.status, s.data["id"]), (200, iid), "status shows it")
    check(f"container {iid} started for team {TEAM_A}" in site.app.log()
          and "(from the warm pool)" in site.app.log(), "the log says it came from the pool")


@case
def pool_refills(site):
    """the reaper starts a replacement"""
    ids = wait_full(site, 2)
    eq(len(set(ids)), 2, "two pool containers again")
    eq(admin_status(site)["live"], 1, "capacity counts the player's container only")


@case
def falls_back_cold(site):
    """no claimable pool container (pool deadline within 30 s): the start goes cold"""
    ids = pool_rows(site)
    in_list = ",".join(map(str, ids))
    site.db.sql(f"UPDATE container_instances SET deadline = UNIX_TIMESTAMP() + 20 "
                f"WHERE id IN ({in_list})")
    r = site.client.start(TEAM_CAP * 10, WEB)
    eq(r.status, 200, f"start {r}")
    iid = r.data["id"]
    check(iid not in ids, f"{iid} is a new container, not one of the pool's {ids}")
    eq(row(site, iid)[:2] + row(site, iid)[5:], ["team", str(TEAM_CAP), "", ""],
       "a cold start: never pooled, never claimed")
    eq(pool_rows(site), ids, "the pool's containers are untouched")
    eq(owner_of_served_flag(site, r)[:3], [str(iid), "team", str(TEAM_CAP)], "its own flag")
    eq(site.client.stop(TEAM_CAP * 10, WEB).status, 200, "stopped")
    site.db.sql(f"UPDATE container_instances SET deadline = UNIX_TIMESTAMP() + 3600 "
                f"WHERE id IN ({in_list});"
                f"UPDATE container_accounts SET last_action_at = 0 WHERE account_id = {TEAM_CAP}")


@case
def limits_and_cooldown_unchanged(site):
    """per-account limit and cooldown refuse as before, and the pool stays full"""
    pool = pool_rows(site)
    snap = site.db.snapshot()
    r = site.client.start(TEAM_A * 10, COLD)
    eq((r.status, r.code), (409, "CONTAINER_LIMIT_REACHED"), f"second container {r}")
    r = site.client.start(TEAM_A * 10, WEB)
    eq((r.status, r.code), (429, "COOLDOWN"), f"revert inside the cooldown {r}")
    eq(site.db.snapshot(), snap, "refusals change nothing")
    eq(pool_rows(site), pool, "the pool is untouched")


@case
def revert_takes_warm(site):
    """a revert ends the old container and takes a fresh pool container"""
    old = site.client.status(TEAM_A * 10, WEB).data["id"]
    pool = pool_rows(site)
    site.db.sql(f"UPDATE container_accounts SET last_action_at = 0 WHERE account_id = {TEAM_A}")
    r = site.client.start(TEAM_A * 10, WEB)
    eq(r.status, 200, f"revert {r}")
    new = r.data["id"]
    check(new != old and new in pool, f"the new container {new} came from the pool {pool}")
    eq(row(site, old)[3:5], ["reverted", "NULL"], "the old row ended reverted")
    check(old not in engine(site), "the old container is gone")
    eq(owner_of_served_flag(site, r)[:3], [str(new), "team", str(TEAM_A)], "a fresh flag")


@case
def burst_claims_distinct(site):
    """10 teams at once claim 10 distinct pool containers, none twice"""
    # The engine's addresses are shared (a small bridge network on the test
    # machines): team A's container goes, and the refill after the burst is one.
    eq(site.client.stop(TEAM_A * 10, WEB).status, 200, "team A stops")
    set_pool(site, 10)
    pool = set(wait_full(site, 10, timeout=120))
    barrier = threading.Barrier(len(TEAMS_BURST))
    out = {}

    def one(tid):
        barrier.wait()
        out[tid] = site.client.start(tid * 10, WEB)

    threads = [threading.Thread(target=one, args=(t,)) for t in TEAMS_BURST]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    set_pool(site, 1)
    bad = {t: r for t, r in out.items() if r.status != 200}
    eq(bad, {}, "every start succeeded")
    ids = [out[t].data["id"] for t in TEAMS_BURST]
    eq(len(set(ids)), 10, f"10 distinct containers: {ids}")
    check(set(ids) <= pool, f"all from the pool: {sorted(ids)} vs {sorted(pool)}")
    for t in TEAMS_BURST:
        iid = out[t].data["id"]
        eq(row(site, iid)[:2], ["team", str(t)], f"row {iid} is team {t}'s")
        eq(site.db.rows(f"SELECT account_kind, account_id FROM container_flags "
                        f"WHERE instance_id = {iid}"), [["team", str(t)]], f"flag of {iid}")
    dup = site.db.rows("SELECT account_kind, account_id, challenge_id, COUNT(*) FROM "
                       "container_instances WHERE live = 1 AND account_kind <> 'pool' "
                       "GROUP BY 1, 2, 3 HAVING COUNT(*) > 1")
    eq(dup, [], "one live container per team and challenge")
    eq(owner_of_served_flag(site, out[TEAMS_BURST[3]])[:3],
       [str(ids[3]), "team", str(TEAMS_BURST[3])], "a burst container serves its team's flag")
    # Capacity: 10 players' containers live; the pool does not count, but a
    # claim is refused exactly like a cold start once capacity is reached.
    pool = wait_full(site, 1)
    eq(admin_status(site)["live"], MAX_CONTAINERS, "capacity reached")
    r = site.client.start(TEAM_CAP * 10, WEB)
    eq((r.status, r.code), (503, "CAPACITY_FULL"), f"capacity holds with a warm container {r}")
    eq(pool_rows(site), pool, "the pool is untouched")


@case
def reconcile_leaves_pool_alone(site):
    """reconcile keeps pool containers, replaces a removed and an expired one"""
    set_pool(site, 2)
    ids = wait_full(site, 2)
    wait_for(lambda: admin_status(site)["reconciled_at"] > 0, timeout=10, what="a reconcile")
    t0 = int(site.db.value("SELECT UNIX_TIMESTAMP()"))
    wait_for(lambda: admin_status(site)["reconciled_at"] >= t0 + 2, timeout=15,
             what="two reconcile passes")
    eq(pool_rows(site), ids, "the same pool containers after reconciles (no orphan removal)")
    for iid in ids:
        eq(engine(site).get(iid), ("0", "running"), f"{iid} still runs")
    sh("docker", "rm", "-f", f"{site.app.options['site']}-{ids[0]}")
    wait_for(lambda: row(site, ids[0])[3] == "lost", timeout=20, step=0.2, what="lost")
    site.db.sql(f"UPDATE container_instances SET deadline = UNIX_TIMESTAMP() - 1 "
                f"WHERE id = {ids[1]}")
    wait_for(lambda: row(site, ids[1])[3] == "expired", timeout=20, step=0.2, what="expired")
    new = wait_full(site, 2)
    check(not set(new) & set(ids), f"two replacements {new} for {ids}")
    check(ids[1] not in engine(site), "the expired one is gone from the engine")


@case
def settings_change_retires(site):
    """changed challenge settings retire the pool's containers; fresh ones replace them"""
    old = pool_rows(site)
    site.db.sql(f"UPDATE docker_challenge SET flag_template = 'FLAG{{<hex:32>}}' WHERE id = {WEB}")
    wait_for(lambda: not set(pool_rows(site)) & set(old) and len(pool_rows(site)) == 2,
             timeout=30, step=0.2, what="fresh pool containers")
    for iid in old:
        eq(row(site, iid)[3:5], ["stopped", "NULL"], f"{iid} retired")


@case
def drain_and_clean(site):
    """warm_pool = 0 drains the pool; stopping everything leaves the engine empty"""
    set_pool(site, 0)
    wait_for(lambda: live_pool(site) == 0, timeout=30, step=0.2, what="the pool drained")
    r = site.client.call("DELETE", "/api/v1/admin/containers?confirm=all", ADMIN)
    eq((r.status, r.data["failed"]), (200, 0), f"stop all {r}")
    wait_for(lambda: not engine(site), timeout=30, step=0.2, what="no container on the engine")
    eq(site.db.live_count(), 0, "no live row")
    eq(site.db.value("SELECT COUNT(*) FROM container_ports"), "0", "no host port held")



def refused(app):
    """The master refuses to serve (and says to migrate); never left running."""
    p = subprocess.Popen([BINARY, "-c", app.conf_path], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("the master served with a migration missing")
    check(p.returncode != 0 and "--migrate" in out, f"refused, naming --migrate: {out[-300:]!r}")


@case
def migrations_by_file(site):
    """migrations are recorded file by file: an older schema and a gap are both migrated"""
    db = Database(f"cc_test_poolmig_{os.getpid()}")
    try:
        workdir = os.path.join(site.workdir, "mig")
        os.makedirs(workdir, exist_ok=True)
        app = App(workdir, db)
        app.write_conf()
        r = app.run("--migrate", check=False)
        eq(r.returncode, 0, f"--migrate {r.stderr}")
        files = sorted(f for f in os.listdir(os.path.join(os.environ.get(
            "CC_SRCDIR", os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__))))), "src", "sql")) if f.endswith(".sql"))
        versions = [str(int(f.split("_")[0])) for f in files]
        eq([x[0] for x in db.rows("SELECT version FROM container_migrations ORDER BY version")],
           versions, "one row per file")
        eq(db.value("SELECT version FROM container_schema"), versions[-1], "the version row")
        # A database migrated before files were recorded, at version 1.
        db.sql("DROP TABLE container_migrations; UPDATE container_schema SET version = 1")
        refused(app)
        r = app.run("--migrate", check=False)
        eq(r.returncode, 0, f"--migrate {r.stderr}")
        check("applying 001" not in r.stdout and "applying 003_warm_pool.sql" in r.stdout,
              f"001 counted as applied, 003 applied: {r.stdout!r}")
        # A gap: a lower-numbered file merged after a higher one was applied.
        db.sql("DELETE FROM container_migrations WHERE version = 3")
        refused(app)
        r = app.run("--migrate", check=False)
        eq((r.returncode, r.stdout.count("applying")), (0, 1), f"only the missing file: {r.stdout!r}")
        eq(db.value("SELECT version FROM container_schema"), versions[-1], "version unchanged")
        eq(db.value("SELECT COUNT(*) FROM container_locks WHERE name = 'pool'"), "1", "one pool row")
    finally:
        db.drop()


@case
def clean_stop(site):
    """the app stops cleanly; its log has no sanitizer report and no pool flag"""
    flags = site.db.rows("SELECT HEX(digest) FROM container_flags")
    eq(site.app.stop(), 0, "exit code of the master")
    log = site.app.log()
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "CTF{", "FLAG{"):
        check(bad not in log, f"{bad!r} in the app's log")
    for (d,) in flags:
        check(d.lower() not in log.lower(), "no flag digest in the log")
    check("warm pool container" in log and "ready for challenge" in log, "the fill is logged")


if __name__ == "__main__":
    run(setup, teardown)
