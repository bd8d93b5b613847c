"""50 accounts' containers reached by name at the same time (make
check-exposure-scale; too long for make check, which reaches eight).

Each of CC_EXPOSURE_N (default 50) accounts starts a web container, each on
its own network (more networks than the engine's default address pools
hold: the app cuts them from network_pool); then every name is fetched at
once, and again N times over; each must answer its own account's flag.
Printed, never asserted: start time, the latency by name next to the direct
host port (same run, p50/p99), and stop-to-404 for ten names.
"""
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exposure_site import DOMAIN, ExposureSite, direct_get, pct, timed_get  # noqa
from harness import case, check, eq, run, sh, wait_for  # noqa

N = int(os.environ.get("CC_EXPOSURE_N", "50"))
ADMIN = 1
USERS = list(range(100, 100 + N))
WEB = 1
S = {}


def setup():
    site = ExposureSite("exposescale", workers=4)
    site.db.user(ADMIN, "admin", admin=True)
    site.auth.admins.add(ADMIN)
    for uid in USERS:
        site.db.user(uid, f"p{uid}")
    site.db.challenge(WEB, "web")
    return site


def teardown(site):
    site.close()


@case
def start_all(site):
    """N accounts start a web container each (4 at a time)"""
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda u: site.client.start(u, WEB), USERS))
    took = time.monotonic() - t0
    for uid, r in zip(USERS, replies):
        eq(r.status, 200, f"start for {uid}: {r}")
    S["c"] = {uid: r.data for uid, r in zip(USERS, replies)}
    print(f"# {N} starts (each with its own network) in {took:.1f} s")
    nets = sh("docker", "network", "ls", "-q", "--filter",
              f"label=ctfd-containers.site={site.app.options['site']}").stdout.split()
    eq(len(nets), N, "one network per container")


@case
def all_by_name_at_once(site):
    """Every name fetched at the same time answers its own flag (then 10 rounds more)"""
    flags = {}
    for uid in USERS:
        r = site.client.call("GET", f"/api/v1/admin/containers/{S['c'][uid]['id']}/flag", ADMIN)
        flags[uid] = r.data["flag"]
    barrier = threading.Barrier(N)
    results = {}

    def fetch(uid):
        barrier.wait()
        results[uid] = [site.by_name(f"{S['c'][uid]['route']}.{DOMAIN}") for _ in range(11)]

    threads = [threading.Thread(target=fetch, args=(u,)) for u in USERS]
    t0 = time.monotonic()
    [t.start() for t in threads]
    [t.join() for t in threads]
    took = time.monotonic() - t0
    for uid in USERS:
        for status, body, _ in results[uid]:
            eq(status, 200, f"account {uid}")
            eq(body.strip(), flags[uid], f"account {uid}'s own flag")
    print(f"# {N * 11} requests by name from {N} clients at once in {took:.2f} s")


@case
def latency(site):
    """Latency by name next to the direct host port (printed)"""
    c = S["c"][USERS[0]]
    host, port = f"{c['route']}.{DOMAIN}", c["ports"][0]["host_port"]
    site.by_name(host), direct_get(port)
    proxied = timed_get(lambda: site.by_name(host), 500)
    direct = timed_get(lambda: direct_get(port), 500)
    print(f"# by name: p50 {pct(proxied, 50):.2f} ms p99 {pct(proxied, 99):.2f} ms; "
          f"direct: p50 {pct(direct, 50):.2f} ms p99 {pct(direct, 99):.2f} ms (500 each, "
          f"{N} containers live)")


@case
def stop_to_404(site):
    """Ten stops: time from the stop request to the name answering 404 (printed)"""
    times = []
    for uid in USERS[:10]:
        host = f"{S['c'][uid]['route']}.{DOMAIN}"
        eq(site.by_name(host)[0], 200, "before")
        t0 = time.monotonic()
        th = threading.Thread(target=site.client.stop, args=(uid, WEB))
        th.start()
        wait_for(lambda: site.by_name(host)[0] == 404, timeout=5, step=0.005, what="404")
        times.append((time.monotonic() - t0) * 1000)
        th.join()
    print(f"# stop -> 404: p50 {pct(times, 50):.0f} ms, max {max(times):.0f} ms (10 stops)")
    check(max(times) < 5000)


@case
def stop_all_leaves_nothing(site):
    """Stop all: no container or network of the site remains"""
    r = site.client.call("DELETE", "/api/v1/admin/containers?confirm=all", ADMIN)
    eq(r.status, 200, f"stop all {r}")
    label = f"label=ctfd-containers.site={site.app.options['site']}"
    wait_for(lambda: not sh("docker", "network", "ls", "-q", "--filter", label).stdout.strip(),
             timeout=30, what="networks removed")


if __name__ == "__main__":
    run(setup, teardown)
