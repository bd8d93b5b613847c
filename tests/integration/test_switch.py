"""Switch, canary, rollback and fallback between backends (real nginx, MariaDB
and Docker). The second backend is `whale` pointed at an address where
nothing listens (so it answers ENGINE_UNAVAILABLE): enough to show that a
switch leaves running containers with the backend that started them, that a
challenge's own backend wins (the canary), that the fallback takes new starts
only while the primary is unavailable and counts each, that a rollback needs
nothing but the switch back, and that reconcile lists every backend in use
and keeps going when one of them is down. tests/integration/test_whale.py
runs the whale backend itself against a real ctfd-whale."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BINARY, SRCDIR, TCP_IMAGE, Site, case, check, eq, free_port, run, sh,  # noqa
                     wait_for)

ADMIN, ALICE, BOB, CAROL, DAVE, ERIN = 1, 2, 3, 4, 5, 6
WEB, TCP, SHORT = 1, 2, 3
DEAD_WHALE = f"http://127.0.0.1:{free_port()}"  # nothing listens there
# ctfd-whale's own table, as its db.create_all() makes it on MariaDB (a site
# that runs ctfd-whale has it even while its CTFd is down)
WHALE_TABLE = """CREATE TABLE whale_container (
    id INTEGER NOT NULL AUTO_INCREMENT, user_id INTEGER, challenge_id INTEGER,
    start_time DATETIME NOT NULL, renew_count INTEGER NOT NULL, status INTEGER,
    uuid VARCHAR(256), port INTEGER, flag VARCHAR(128) NOT NULL, PRIMARY KEY (id))"""


def setup():
    site = Site("switch", reconcile_interval_seconds=1, ready_timeout_seconds=8,
                docker_timeout_seconds=5, whale_url=DEAD_WHALE, whale_timeout_seconds=2,
                whale_admin_token="not-a-real-token", workers=2)
    db = site.db
    db.config("user_mode", "users")
    db.user(ADMIN, "admin", admin=True)
    for uid, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"), (DAVE, "dave"),
                      (ERIN, "erin")):
        db.user(uid, name)
    db.challenge(WEB, "web")
    db.challenge(TCP, "tcp", image=TCP_IMAGE, ports="9000/tcp")
    db.challenge(SHORT, "short", lifetime=30)
    db.sql(WHALE_TABLE)
    # a whale site forwards the player's session (nginx/whale-forward.conf)
    with open(os.path.join(site.nginx.dir, "ctfd-containers-forward.conf"), "w") as fh:
        fh.write(open(os.path.join(SRCDIR, "nginx", "whale-forward.conf")).read())
    site.nginx.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    return site


def teardown(site):
    site.close()


# ---------------------------------------------------------------- helpers
def reload_config(site, **options):
    """Write the new configuration, SIGHUP the master, wait for new workers."""
    offset = len(site.app.log())
    for k, v in options.items():
        if v is None:
            site.app.options.pop(k, None)
    site.app.write_conf(**{k: v for k, v in options.items() if v is not None})
    site.app.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload: configuration applied" in site.app.log()[offset:], timeout=15,
             what="the reload")
    want = int(site.app.options["workers"]) + 1
    wait_for(lambda: len(site.app.children()) == want, timeout=15, what="the new children")
    time.sleep(0.3)  # the retired workers finish their last request


def row(site, rid):
    r = site.db.rows(f"SELECT state, backend, live FROM container_instances WHERE id = {rid}")
    return r[0] if r else None


def exists(name):
    return sh("docker", "inspect", name, check=False).returncode == 0


def status(site):
    r = site.client.call("GET", "/api/v1/admin/containers/status", ADMIN)
    eq(r.status, 200, f"admin status {r}")
    return r.data


def start_ok(site, user, cid):
    r = site.client.start(user, cid)
    eq(r.status, 200, f"start of {cid} by {user}: {r}")
    return r.data["id"], site.db.value(f"SELECT name FROM container_instances WHERE id = "
                                        f"{r.data['id']}")


def stop_all(site):
    for uid in (ALICE, BOB, CAROL, DAVE, ERIN):
        for cid in (WEB, TCP, SHORT):
            site.client.stop(uid, cid)


# ---------------------------------------------------------------- cases
@case
def check_config_refuses_conflicts(site):
    """--check-config: whale_enabled is an alias of backend; conflicting settings exit 2"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTFD_CONTAINERS_")}
    conf = site.app.conf_path
    r = subprocess.run([BINARY, "-c", conf, "--check-config"], capture_output=True, text=True,
                       env={**env, "CTFD_CONTAINERS_WHALE_ENABLED": "true"})
    eq(r.returncode, 0, f"whale_enabled=true alone: {r.stderr}")
    check("backend = whale\n" in r.stdout, "whale_enabled=true means backend whale")
    check("not-a-real-token" not in r.stdout, "the admin token is masked")
    r = subprocess.run([BINARY, "-c", conf, "--check-config"], capture_output=True, text=True,
                       env={**env, "CTFD_CONTAINERS_WHALE_ENABLED": "true",
                            "CTFD_CONTAINERS_BACKEND": "docker"})
    eq(r.returncode, 2, "whale_enabled=true with backend=docker is refused")
    check("whale_enabled" in r.stderr, f"the message names the key: {r.stderr}")
    r = subprocess.run([BINARY, "-c", conf, "--check-config"], capture_output=True, text=True,
                       env={**env, "CTFD_CONTAINERS_FALLBACK_BACKEND": "docker"})
    eq(r.returncode, 2, "a fallback equal to the primary is refused")
    check("fallback_backend" in r.stderr, r.stderr)


@case
def switch_keeps_running_containers_on_docker(site):
    """switch docker -> whale (SIGHUP, whale_enabled=true): running containers are extended,
    stopped, expired and admin-stopped by docker; new starts go to whale"""
    a_id, a_name = start_ok(site, ALICE, WEB)
    b_id, b_name = start_ok(site, BOB, SHORT)
    e_id, e_name = start_ok(site, ERIN, TCP)
    eq(row(site, a_id)[1], "docker", "the row records its backend")
    reload_config(site, whale_enabled="true")
    eq(status(site)["backend"], "whale", "the global backend after the switch")
    check(exists(a_name) and exists(b_name) and exists(e_name),
          "the switch left the running containers alone")
    r = site.client.extend(ALICE, WEB)
    eq(r.status, 200, f"extend after the switch {r}")
    r = site.client.stop(ALICE, WEB)
    eq(r.status, 200, f"stop after the switch {r}")
    check(not exists(a_name), "docker removed alice's container")
    eq(row(site, a_id)[0], "stopped", "alice's row")
    r = site.client.call("DELETE", f"/api/v1/admin/containers/{e_id}", ADMIN)
    eq(r.status, 200, f"admin stop after the switch {r}")
    check(not exists(e_name), "docker removed erin's container (admin stop)")
    # expiry: move the deadline into the past; the reaper ends it through docker
    site.db.sql(f"UPDATE container_instances SET deadline = UNIX_TIMESTAMP() - 1 "
                f"WHERE id = {b_id}")
    wait_for(lambda: row(site, b_id)[0] == "expired", timeout=15, what="bob's expiry")
    check(not exists(b_name), "docker removed bob's expired container")
    # a new start goes to whale, which is down, and no fallback is set
    before = site.db.live_count()
    r = site.client.start(CAROL, WEB)
    eq(r.status, 503, f"a new start on the unavailable whale {r}")
    eq(r.code, "ENGINE_UNAVAILABLE", "the code")
    eq(site.db.live_count(), before, "the failed start left no live row")
    eq(site.db.value(f"SELECT backend FROM container_instances WHERE user_id = {CAROL} "
                     f"ORDER BY id DESC LIMIT 1"), "whale", "the failed row says whale")


@case
def fallback_takes_new_starts_and_counts(site):
    """fallback_backend = docker: while whale is unavailable new starts run on docker,
    each logged and counted (admin status, events)"""
    reload_config(site, fallback_backend="docker")
    before = status(site)
    eq(before["fallback_backend"], "docker", "status names the fallback")
    ids = []
    for uid in (CAROL, DAVE):
        rid, name = start_ok(site, uid, WEB)
        check(exists(name), "the fallback's container runs")
        eq(row(site, rid)[1], "docker", "the row records the backend that started it")
        ids.append(rid)
    after = status(site)
    eq(after["fallback_starts"], before["fallback_starts"] + 2, "two fallback starts counted")
    check(after["last_fallback_at"] is not None, "the last fallback's time")
    eq(int(site.db.value("SELECT COUNT(*) FROM container_events WHERE kind = 'fallback_start' "
                         f"AND instance_id IN ({ids[0]}, {ids[1]})")), 2, "one event per start")
    check("fallback start on docker" in site.app.log(), "each fallback start is logged")
    for uid in (CAROL, DAVE):
        eq(site.client.stop(uid, WEB).status, 200, "stop of a fallback container")


@case
def canary_per_challenge(site):
    """canary: with docker global, a challenge set to whale goes to whale; with whale global,
    a challenge set to docker runs on docker; an unknown backend is misconfigured"""
    reload_config(site, whale_enabled="false", fallback_backend="")
    eq(status(site)["backend"], "docker", "rolled back to docker")
    site.db.sql(f"UPDATE docker_challenge SET backend = 'whale' WHERE id = {TCP}")
    r = site.client.start(DAVE, TCP)
    eq((r.status, r.code), (503, "ENGINE_UNAVAILABLE"), f"the canary challenge went to whale {r}")
    rid, name = start_ok(site, DAVE, WEB)
    eq(row(site, rid)[1], "docker", "the other challenge stayed on docker")
    eq(site.client.stop(DAVE, WEB).status, 200, "stop")
    # the other way round: whale global, one challenge kept on docker
    site.db.sql(f"UPDATE docker_challenge SET backend = NULL WHERE id = {TCP}")
    site.db.sql(f"UPDATE docker_challenge SET backend = 'docker' WHERE id = {WEB}")
    reload_config(site, whale_enabled="true")
    rid, name = start_ok(site, DAVE, WEB)
    eq(row(site, rid)[1], "docker", "the challenge's own backend wins over the global one")
    r = site.client.start(ERIN, TCP)
    eq((r.status, r.code), (503, "ENGINE_UNAVAILABLE"), f"the rest follow the global {r}")
    site.db.sql(f"UPDATE docker_challenge SET backend = 'kubernetes' WHERE id = {SHORT}")
    r = site.client.start(ERIN, SHORT)
    eq((r.status, r.code), (500, "CHALLENGE_MISCONFIGURED"), f"an unknown backend {r}")
    site.db.sql(f"UPDATE docker_challenge SET backend = NULL WHERE id = {SHORT}")
    eq(site.client.stop(DAVE, WEB).status, 200, "stop")
    site.db.sql(f"UPDATE docker_challenge SET backend = NULL WHERE id = {WEB}")


@case
def reconcile_lists_each_backend_in_use(site):
    """reconcile with whale global and docker in use: docker's lost and orphaned containers
    are found; when whale cannot be listed that is reported and docker is still reconciled"""
    reload_config(site, whale_enabled="true", fallback_backend="docker")
    lost_id, lost_name = start_ok(site, ALICE, WEB)       # via the fallback
    orphan_id, orphan_name = start_ok(site, BOB, WEB)
    site.db.sql("RENAME TABLE whale_container TO whale_container_away")
    try:
        reconcile_without_whale(site, lost_id, lost_name, orphan_id, orphan_name)
    finally:
        site.db.sql("RENAME TABLE whale_container_away TO whale_container")


def reconcile_without_whale(site, lost_id, lost_name, orphan_id, orphan_name):
    sh("docker", "rm", "-f", lost_name)
    # forget bob's row behind the app's back: its container is now an orphan
    site.db.sql(f"UPDATE container_instances SET live = NULL, state = 'stopped' "
                f"WHERE id = {orphan_id}")
    wait_for(lambda: row(site, lost_id)[0] == "lost", timeout=20, what="the lost container")
    wait_for(lambda: not exists(orphan_name), timeout=20, what="the orphan's removal")
    last = status(site)["last_reconcile"]
    check(last is not None and last["failures"] >= 1,
          f"whale's failed listing is counted: {last}")
    check("whale listing failed" in site.app.log(), "and logged")


@case
def rollback_leaves_whale_era_containers_alone(site):
    """rollback whale -> docker: containers the fallback made keep running and stop normally"""
    rid, name = start_ok(site, CAROL, TCP)  # whale is down: the fallback (docker) runs it
    reload_config(site, whale_enabled=None, backend="docker", fallback_backend="")
    eq(status(site)["backend"], "docker", "rolled back")
    check(exists(name), "the rollback left it running")
    eq(site.client.stop(CAROL, TCP).status, 200, "stop after the rollback")
    check(not exists(name), "removed by docker")
    rid2, name2 = start_ok(site, CAROL, TCP)
    eq(row(site, rid2)[1], "docker", "new starts on docker")
    eq(site.client.stop(CAROL, TCP).status, 200, "stop")
    stop_all(site)
    wait_for(lambda: not site.engine_names(), timeout=20, what="nothing left on the engine")


@case
def nothing_crashed(site):
    """no process of the app crashed and no sanitizer reported anything"""
    log = site.app.log()
    for mark in ("killed by signal", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                 "runtime error:"):
        check(mark not in log, f"the app's log has {mark!r}: "
              f"{log[max(0, log.find(mark) - 300):log.find(mark) + 1500]}")


if __name__ == "__main__":
    run(setup, teardown)
