"""The swarm backend on a real three-node swarm: three engines in network
namespaces (scripts/swarm-lab; the host's own engine never joins), the app,
real nginx and MariaDB. Only loopback and the lab's own addresses are
contacted.

make check runs the short version: --sync-images onto fresh nodes, the
backend contract check (backend_check swarm), the application-level contract
(contract.py, the same cases as test_contract.py on docker), containers
spread over the nodes, placement by node label.

CC_SWARM_FULL=1 (make check-swarm) adds: 30 containers spread over the
nodes, a drained node (its containers reported lost, or replaced by a
revert), a killed worker node (its containers reported lost, rows, ports and
flags consistent, nothing left on it when it returns), and the measurements
(start-to-reachable through nginx and the app next to `docker service
create` plus a port poll, on the same lab in the same run; stop times)."""
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract  # noqa: E402
from harness import (BUILDDIR, WEB_IMAGE, Site, Skip, case, check, eq, http_get, run,  # noqa: E402
                     wait_for)
from swarm_lab import Lab  # noqa: E402

FULL = os.environ.get("CC_SWARM_FULL") == "1"
EXTEND = 600
PLACED = 10          # a challenge with placement node.labels.zone==b (nodes 2 and 3)
USERS = range(100, 170)
CHECK = os.path.join(BUILDDIR, "tests", "integration", "backend_check")


class SwarmEngine(contract.Engine):
    def __init__(self):
        self.lab = None
        self.site_name = None

    def objects(self):
        return self.lab.services(self.site_name)

    def reach(self, host):
        return self.lab.reach(host)


ENGINE = SwarmEngine()


def setup():
    if os.geteuid() != 0:
        raise Skip("needs root (network namespaces, engines, nginx)")
    lab = Lab(nodes=3, images="manager")
    try:
        site = Site("swarm", backend="swarm", swarm_endpoint=lab.endpoint(1),
                    swarm_node_endpoints=f"{lab.endpoint(1)},{lab.endpoint(2)},"
                                         f"{lab.tcp_endpoint(3)}",
                    extend_seconds=EXTEND, max_renewals=3, reconcile_interval_seconds=2,
                    workers=4)
    except BaseException:
        lab.close()
        raise
    site.lab = lab
    ENGINE.lab, ENGINE.site_name = lab, site.app.options["site"]
    contract.setup_db(site.db)
    for uid in USERS:
        site.db.user(uid, f"player{uid}")
    site.db.challenge(PLACED, "placed")
    site.db.sql(f"UPDATE docker_challenge SET placement = 'node.labels.zone==b' WHERE id = {PLACED}")
    return site


def teardown(site):
    try:
        site.close()
    finally:
        site.lab.close()


# ---------------------------------------------------------------- images
@case
def sync_images_onto_fresh_nodes(site):
    """--sync-images copies every challenge's image onto the nodes that lack them"""
    lab = site.lab
    for i in (2, 3):
        eq(lab.docker(i, "image", "inspect", WEB_IMAGE, check=False).returncode, 1,
           f"node {i} starts without the image")
    r = site.app.run("--sync-images", check=False)
    eq(r.returncode, 0, f"exit status ({r.stdout} {r.stderr})")
    out = r.stdout
    check(f"node {lab.endpoint(1)}: has all 2 image(s)" in out, f"the manager has them: {out}")
    check(f"node {lab.endpoint(2)}: copied 2 of 2 image(s)" in out, f"node 2: {out}")
    check(f"node {lab.tcp_endpoint(3)}: copied 2 of 2 image(s)" in out, f"node 3 (tcp): {out}")
    for i in (2, 3):
        eq(lab.docker(i, "image", "inspect", WEB_IMAGE, check=False).returncode, 0,
           f"node {i} has the image")
    r = site.app.run("--sync-images", check=False)
    check(r.returncode == 0 and out.count("copied") == 2 and r.stdout.count("has all") == 3,
          f"a second run copies nothing: {r.stdout}")


@case
def sync_images_failed_node(site):
    """--sync-images: an unreachable node gets a clear error line and exit 1; the others proceed"""
    lab = site.lab
    env = {"CTFD_CONTAINERS_SWARM_NODE_ENDPOINTS":
           f"unix:///nonexistent/node.sock,{lab.endpoint(2)}"}
    r = site.app.run("--sync-images", WEB_IMAGE, check=False, env=env)
    eq(r.returncode, 1, "exit status")
    check("node unix:///nonexistent/node.sock: FAILED: engine unreachable" in r.stderr,
          f"the failed node's line: {r.stderr}")
    check(f"node {lab.endpoint(2)}: has all 1 image(s)" in r.stdout, f"node 2: {r.stdout}")
    check("1 node(s) ready, 1 failed" in r.stdout, f"summary: {r.stdout}")
    r = site.app.run("--sync-images", "no-such/image:1", check=False)
    check(r.returncode == 1 and "not on the source engine" in r.stderr, f"{r.stderr}")


# ---------------------------------------------------------------- the backend check
@case
def backend_contract_check(site):
    """backend_check swarm: the backend's own contract cases (docker's 38 + swarm's 5) pass"""
    lab = site.lab
    env = {**os.environ, "CC_TEST_SWARM_ENDPOINT": lab.endpoint(1),
           "CC_TEST_SWARM_PLACEMENT": "node.labels.lab.node==n2",
           "CC_TEST_SWARM_ADDR": lab.addr(2), "CC_TEST_SWARM_PUBLIC_HOST": lab.public_host(2),
           "CC_TEST_SWARM_NETNS": lab.netns(2), "CC_TEST_SWARM_NETWORK": "0"}
    r = subprocess.run([CHECK, "swarm"], capture_output=True, text=True, timeout=300, env=env)
    lines = r.stdout.splitlines()
    plan = [ln for ln in lines if ln.startswith("1..")]
    oks = [ln for ln in lines if ln.startswith("ok ")]
    bad = [ln for ln in lines if ln.startswith("not ok")]
    check(plan and plan[0] == f"1..{len(oks)}" and not bad,
          f"{len(oks)} ok, failures: {bad} {r.stdout[-1500:]} {r.stderr[-500:]}")
    print(f"# backend_check swarm: {len(oks)} cases ok")
    for ln in oks:
        if "ms)" in ln:
            print(f"#   {ln}")


# ---------------------------------------------------------------- the app-level contract
contract.register(case, ENGINE, EXTEND)


# ---------------------------------------------------------------- several hosts
def start_many(site, users, cid):
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda u: (u, site.client.start(u, cid)), users))


def stop_all(site, started, cid):
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda ur: site.client.stop(ur[0], cid), started))
    wait_for(lambda: not ENGINE.objects(), timeout=60, what="every service gone")


def spread(site, n):
    lab = site.lab
    started = start_many(site, list(USERS)[:n], contract.WEB)
    nodes = {}
    for u, r in started:
        eq(r.status, 200, f"start for user {u}: {r}")
        port = r.data["ports"][0]
        node = lab.node_of(port["host"])
        check(node is not None, f"reported host {port['host']} is a node's")
        flag = http_get(f"http://{lab.reach(port['host'])}:{port['host_port']}/")
        check(flag.startswith("CTF{"), f"user {u}'s flag")
        nodes[node] = nodes.get(node, 0) + 1
    print(f"# {n} containers per node: {dict(sorted(nodes.items()))}")
    eq(sorted(nodes), [1, 2, 3], "every node runs some")
    check(min(nodes.values()) >= n // 6, f"spread evenly enough: {nodes}")
    return started


@case
def containers_spread_over_nodes(site):
    """containers spread over the three nodes; each serves its flag at its node's public host"""
    started = spread(site, 30 if FULL else 6)
    hosts = {r.data["ports"][0]["host"] for _, r in started}
    check("n1.swarm.test" in hosts, "node 1's public_host label is what players get")
    check(site.lab.addr(3) in hosts, "node 3 has no label: its address")
    stop_all(site, started, contract.WEB)


@case
def placement_by_node_label(site):
    """a challenge's placement node.labels.zone==b keeps its containers on nodes 2 and 3"""
    lab = site.lab
    started = start_many(site, list(USERS)[:6 if FULL else 3], PLACED)
    for u, r in started:
        eq(r.status, 200, f"start {r}")
        node = lab.node_of(r.data["ports"][0]["host"])
        check(node in (2, 3), f"user {u}'s container on node {node}")
    stop_all(site, started, PLACED)


# ---------------------------------------------------------------- full: nodes that go away
def full_only():
    if not FULL:
        raise Skip("CC_SWARM_FULL=1 (make check-swarm) runs it")


def on_node(site, started, node):
    return [(u, r) for u, r in started if site.lab.node_of(r.data["ports"][0]["host"]) == node]


def row(site, iid, cols="state, live, end_reason"):
    return site.db.rows(f"SELECT {cols} FROM container_instances WHERE id = {iid}")[0]


@case
def drained_node(site):
    """a drained node: its containers are reported lost, and a revert replaces one at once"""
    full_only()
    lab = site.lab
    started = spread(site, 9)
    mine = on_node(site, started, 2)
    check(len(mine) >= 2, f"at least two containers on node 2: {len(mine)}")
    node2 = lab.node_id(2)
    lab.docker(1, "node", "update", "--availability", "drain", node2)
    try:
        (u_revert, r_old), (u_wait, r_wait) = mine[0], mine[1]
        r = site.client.start(u_revert, contract.WEB)  # the player reverts
        eq(r.status, 200, f"revert {r}")
        check(lab.node_of(r.data["ports"][0]["host"]) != 2, "the new one is not on the drained node")
        check(http_get(f"http://{lab.reach(r.data['ports'][0]['host'])}:"
                       f"{r.data['ports'][0]['host_port']}/").startswith("CTF{"), "its flag")
        for _, rr in mine[1:]:
            iid = rr.data["id"]
            wait_for(lambda: row(site, iid)[0] == "lost", timeout=60,
                     what=f"container {iid} reported lost")
            st, live, reason = row(site, iid)
            eq((live, reason), ("NULL", "its container stopped by itself"), "lost row")
        eq(site.client.status(u_wait, contract.WEB).data, {}, "the player sees it gone")
        others = [ur for ur in started if ur not in mine]
        for u, rr in others:
            eq(row(site, rr.data["id"])[0], "running", "containers elsewhere keep running")
        started = [ur for ur in started if ur not in mine[1:]]
    finally:
        lab.docker(1, "node", "update", "--availability", "active", node2)
    stop_all(site, started, contract.WEB)


@case
def killed_worker_node(site):
    """a killed worker: its containers reported lost (rows, ports, flags consistent); none left when it returns"""
    full_only()
    lab = site.lab
    started = spread(site, 9)
    dead = on_node(site, started, 3)
    alive = [ur for ur in started if ur not in dead]
    check(dead, "some containers on node 3")
    t0 = time.monotonic()
    lab.kill(3)
    try:
        for _, r in dead:
            iid = r.data["id"]
            wait_for(lambda: row(site, iid)[0] == "lost", timeout=90,
                     what=f"container {iid} on the dead node reported lost")
        print(f"# killed node's containers reported lost after {time.monotonic() - t0:.1f} s")
        for _, r in dead:
            iid = r.data["id"]
            eq(row(site, iid, "live")[0], "NULL", "row ended")
            eq(site.db.value(f"SELECT COUNT(*) FROM container_ports WHERE instance_id = {iid}"),
               "0", "its ports freed")
            eq(site.db.value(f"SELECT retired_at IS NOT NULL FROM container_flags "
                             f"WHERE instance_id = {iid}"), "1", "its flag retired")
        for u, r in alive:
            eq(row(site, r.data["id"])[0], "running", "the others keep running")
            port = r.data["ports"][0]
            check(http_get(f"http://{lab.reach(port['host'])}:{port['host_port']}/")
                  .startswith("CTF{"), "and serve their flags")
        names = {f"{site.app.options['site']}-{r.data['id']}" for _, r in dead}
        check(not (names & set(ENGINE.objects())), "their services are removed on the manager")
    finally:
        lab.revive(3)
    wait_for(lambda: lab.containers(3, site.app.options["site"]) == [], timeout=90,
             what="the returned node to remove the dead services' containers")
    print(f"# node 3 back and clean {time.monotonic() - t0:.1f} s after the kill")
    stop_all(site, alive, contract.WEB)
    rep = site.app.run("--reconcile-once")
    check("orphans removed 0, lost 0" in rep.stdout, f"nothing left to reconcile: {rep.stdout}")


# ---------------------------------------------------------------- full: measurements
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def cli_service_create(lab, i, port):
    """`docker service create` as an operator would, then poll the port for the flag."""
    name = f"ccbench-{os.getpid()}-{i}"
    t0 = time.monotonic()
    lab.docker(1, "service", "create", "--detach", "--quiet", "--name", name,
               "--restart-condition", "none", "--publish",
               f"mode=host,target=8080,published={port}", "--constraint",
               "node.labels.lab.node==n2", "--env", "FLAG=bench", WEB_IMAGE)

    def answers():
        try:
            return http_get(f"http://{lab.addr(2)}:{port}/", timeout=1) == "bench"
        except OSError:
            return False
    wait_for(answers, timeout=60, step=0.02, what="the CLI service's port")
    took = time.monotonic() - t0
    t1 = time.monotonic()
    lab.docker(1, "service", "rm", name)
    return took, time.monotonic() - t1


@case
def measure_start_and_stop(site):
    """measured: start-to-reachable via nginx+app vs docker service create + port poll, same lab"""
    full_only()
    lab = site.lab
    site.db.sql(f"UPDATE docker_challenge SET placement = 'node.labels.lab.node==n2' "
                f"WHERE id = {PLACED}")
    n = 10
    app_start, app_stop, app_gone, cli_start, cli_stop = [], [], [], [], []
    for i in range(n):
        u = list(USERS)[50 + i]
        t0 = time.monotonic()
        r = site.client.start(u, PLACED)
        eq(r.status, 200, f"start {r}")
        port = r.data["ports"][0]
        flag = http_get(f"http://{lab.reach(port['host'])}:{port['host_port']}/")
        app_start.append(time.monotonic() - t0)
        check(flag.startswith("CTF{"), "flag")
        t1 = time.monotonic()
        eq(site.client.stop(u, PLACED).status, 200, "stop")
        app_stop.append(time.monotonic() - t1)

        def gone():
            try:
                http_get(f"http://{lab.reach(port['host'])}:{port['host_port']}/", timeout=1)
                return False
            except OSError:
                return True
        wait_for(gone, timeout=30, step=0.02, what="the stopped container's port to close")
        app_gone.append(time.monotonic() - t1)
        s, st = cli_service_create(lab, i, 31000 + i)
        cli_start.append(s)
        cli_stop.append(st)
    fmt = lambda xs: f"p50 {statistics.median(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"  # noqa
    print(f"# swarm, n={n} alternating, same lab, same run:")
    print(f"#   start-to-reachable via nginx + app (POST, then GET the flag): {fmt(app_start)}")
    print(f"#   docker service create + port poll (CLI):                      {fmt(cli_start)}")
    print(f"#   stop via nginx + app (DELETE):                                {fmt(app_stop)}")
    print(f"#   ... until its port no longer answers (the node kills it):     {fmt(app_gone)}")
    print(f"#   docker service rm (CLI):                                      {fmt(cli_stop)}")
    wait_for(lambda: not ENGINE.objects(), timeout=60, what="every service gone")


@case
def manager_down(site):
    """the manager's engine killed: starts are 503 ENGINE_UNAVAILABLE, nothing is declared lost; back: starts work"""
    full_only()
    lab = site.lab
    users = list(USERS)[60:63]
    started = start_many(site, users[:2], contract.WEB)
    for _, r in started:
        eq(r.status, 200, f"start {r}")
    lab.kill(1)
    try:
        live = site.db.live_count()
        r = site.client.start(users[2], contract.WEB)
        eq((r.status, r.code), (503, "ENGINE_UNAVAILABLE"), f"start with the manager down {r}")
        eq(site.db.live_count(), live, "no live row added")
        mark = site.app.log().count("reconcile: swarm listing failed")
        wait_for(lambda: site.app.log().count("reconcile: swarm listing failed") >= mark + 2,
                 timeout=30, what="two reconcile passes during the outage")
        for _, r in started:
            eq(row(site, r.data["id"])[0], "running", "nothing is declared lost while blind")
        for _, r in started:
            port = r.data["ports"][0]
            if lab.node_of(port["host"]) != 1:
                check(http_get(f"http://{lab.reach(port['host'])}:{port['host_port']}/")
                      .startswith("CTF{"), "containers on the workers keep serving")
    finally:
        lab.revive(1)
    t0 = time.monotonic()
    wait_for(lambda: site.client.start(users[2], contract.WEB).status == 200, timeout=90,
             step=1, what="starts to work again once the manager is back")
    print(f"# starts work again {time.monotonic() - t0:.1f} s after the manager's engine restarted")
    for u in users:
        site.client.stop(u, contract.WEB)
    wait_for(lambda: not ENGINE.objects(), timeout=60, what="every service gone")


if __name__ == "__main__":
    run(setup, teardown)
