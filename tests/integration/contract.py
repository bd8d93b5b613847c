"""The backend contract at the application's level: the same lifecycle cases,
through nginx and the app, against each backend on a real engine.

test_contract.py runs them on the docker backend (the host's engine),
test_swarm.py on the swarm backend (a swarm in network namespaces). A whale
backend plugs in the same way: an Engine below (what the engine holds, where a
player connects) and a Site configured for it; then register(case, engine).

Cases, in order: start (the flag served where the reply says), status
(inspect: the engine object and its labels), extend (the row's deadline and
renewals move; the object's expires label keeps the deadline at start), revert
(a new container and a new flag, the old object gone), a TCP start, stop twice
(the second is 404 and changes nothing), expiry (the reaper ends it and
removes the object), list by label (the engine's labelled objects are the live
rows), and the engine down (ENGINE_UNAVAILABLE, nothing changes).
"""
import time

from harness import TCP_IMAGE, check, eq, http_get, tcp_read, wait_for

ADMIN, ALICE, BOB, CAROL = 1, 2, 3, 4
WEB, TCP, SHORT = 1, 2, 3


def setup_db(db):
    db.config("user_mode", "users")
    db.user(ADMIN, "admin", admin=True)
    db.user(ALICE, "alice")
    db.user(BOB, "bob")
    db.user(CAROL, "carol")
    db.challenge(WEB, "web")
    db.challenge(TCP, "tcp", image=TCP_IMAGE, ports="9000/tcp")
    db.challenge(SHORT, "short", lifetime=3)


class Engine:
    """What a backend's engine holds. Subclasses answer for one backend."""

    def objects(self):
        """{name: labels dict} of every engine object labelled with this site."""
        raise NotImplementedError

    def reach(self, host):
        """The address this test connects to for a container reported at `host`."""
        return host


def _flag_at(engine, port_json):
    host = engine.reach(port_json["host"])
    if port_json["protocol"] == "http":
        return http_get(f"http://{host}:{port_json['host_port']}/")
    return tcp_read(host, port_json["host_port"])


def _name(site, iid):
    return f"{site.app.options['site']}-{iid}"


def register(case, engine, extend_seconds):
    """Register the contract cases (in order) with harness.case."""
    state = {}

    @case
    def contract_start(site):
        """contract: start answers when the container serves its flag where the reply says"""
        r = site.client.start(ALICE, WEB)
        eq(r.status, 200, f"start {r}")
        eq(r.data["state"], "running", "state")
        flag = _flag_at(engine, r.data["ports"][0])
        check(flag.startswith("CTF{") and len(flag) == 37, f"flag {flag!r}")
        state["web"] = r.data
        state["flag"] = flag

    @case
    def contract_status(site):
        """contract: status is the same container; the engine object carries our labels"""
        r = site.client.status(ALICE, WEB)
        eq(r.status, 200, "status")
        eq(r.data["id"], state["web"]["id"], "same container")
        labels = engine.objects().get(_name(site, r.data["id"]))
        check(labels is not None, "the engine object exists")
        eq(labels.get("ctfd-containers.instance"), str(r.data["id"]), "instance label")
        eq(labels.get("ctfd-containers.account"), str(ALICE), "account label (user mode)")
        eq(labels.get("ctfd-containers.challenge"), str(WEB), "challenge label")
        eq(labels.get("ctfd-containers.expires"), str(r.data["deadline"]), "expires label")

    @case
    def contract_extend(site):
        """contract: extend moves the row's deadline; the object's expires label keeps the start's"""
        before = site.client.status(ALICE, WEB).data
        r = site.client.extend(ALICE, WEB)
        eq(r.status, 200, f"extend {r}")
        eq(r.data["deadline"], before["deadline"] + extend_seconds, "deadline + extend_seconds")
        eq(r.data["renewals_used"], before["renewals_used"] + 1, "renewals")
        row = site.db.value(f"SELECT deadline FROM container_instances WHERE id = {r.data['id']}")
        eq(int(row), r.data["deadline"], "the row holds the new deadline")
        labels = engine.objects()[_name(site, r.data["id"])]
        eq(labels.get("ctfd-containers.expires"), str(before["deadline"]),
           "the label is the deadline at start (the database is the truth)")
        eq(_flag_at(engine, r.data["ports"][0]), state["flag"], "still the same container")

    @case
    def contract_revert(site):
        """contract: a start while one runs is a revert: a new container, a new flag, the old gone"""
        old = state["web"]
        r = site.client.start(ALICE, WEB)
        eq(r.status, 200, f"revert {r}")
        check(r.data["id"] != old["id"], "a new container")
        flag = _flag_at(engine, r.data["ports"][0])
        check(flag != state["flag"] and flag.startswith("CTF{"), "a new flag")
        wait_for(lambda: _name(site, old["id"]) not in engine.objects(), timeout=15,
                 what="the reverted container's object to go")
        eq(site.db.value(f"SELECT state FROM container_instances WHERE id = {old['id']}"),
           "reverted", "the old row")
        state["web"], state["flag"] = r.data, flag

    @case
    def contract_tcp(site):
        """contract: a TCP challenge serves its flag on the reported host and port"""
        r = site.client.start(BOB, TCP)
        eq(r.status, 200, f"start {r}")
        flag = _flag_at(engine, r.data["ports"][0])
        check(flag.startswith("CTF{"), f"flag {flag!r}")
        eq(site.client.stop(BOB, TCP).status, 200, "stop")

    @case
    def contract_stop_twice(site):
        """contract: stop removes the object and frees the slot; a second stop is 404, changes nothing"""
        iid = state["web"]["id"]
        t0 = time.monotonic()
        r = site.client.stop(ALICE, WEB)
        took = time.monotonic() - t0
        eq((r.status, r.json), (200, {"success": True, "data": {}}), "stop")
        print(f"# stop through nginx and the app: {took * 1000:.0f} ms")
        check(_name(site, iid) not in engine.objects(), "the object is gone at once")
        eq(site.db.value(f"SELECT state FROM container_instances WHERE id = {iid}"), "stopped",
           "row")
        eq(site.db.value(f"SELECT COUNT(*) FROM container_ports WHERE instance_id = {iid}"), "0",
           "port freed")
        before = site.db.snapshot()
        r = site.client.stop(ALICE, WEB)
        eq((r.status, r.code), (404, "CONTAINER_NOT_FOUND"), "second stop")
        eq(site.db.snapshot(), before, "nothing changed")

    @case
    def contract_expiry(site):
        """contract: at its deadline the reaper ends the container and removes its object"""
        r = site.client.start(CAROL, SHORT)
        eq(r.status, 200, f"start {r}")
        iid = r.data["id"]
        wait_for(lambda: site.db.value(
            f"SELECT state FROM container_instances WHERE id = {iid}") == "expired",
            timeout=20, what="the row to expire")
        check(_name(site, iid) not in engine.objects(), "its object is removed")
        eq(site.client.status(CAROL, SHORT).data, {}, "the player sees none")
        flag_retired = site.db.value(
            f"SELECT retired_at IS NOT NULL FROM container_flags WHERE instance_id = {iid}")
        eq(flag_retired, "1", "its flag is retired")

    @case
    def contract_list_by_label(site):
        """contract: the engine's objects labelled with the site are exactly the live rows"""
        a = site.client.start(ALICE, WEB)
        b = site.client.start(BOB, TCP)
        eq((a.status, b.status), (200, 200), "two starts")
        live = {_name(site, r[0]) for r in site.db.rows(
            "SELECT id FROM container_instances WHERE live = 1")}
        eq(set(engine.objects()), live, "engine objects == live rows")
        listing = site.client.call("GET", "/api/v1/admin/containers?per_page=50", ADMIN)
        eq(listing.status, 200, "admin list")
        eq({_name(site, c["id"]) for c in listing.data}, live, "the admin list shows them")
        rep = site.app.run("--reconcile-once")
        check("orphans removed 0, lost 0" in rep.stdout, f"reconcile finds nothing: {rep.stdout}")

    @case
    def contract_engine_down(site):
        """contract: the engine down: a start is 503 ENGINE_UNAVAILABLE and changes nothing"""
        key = "swarm_endpoint" if site.app.options.get("backend") == "swarm" else "docker_endpoint"
        good = site.app.options.get(key, "unix:///var/run/docker.sock")
        site.app.write_conf(**{key: "unix:///nonexistent/engine.sock"})
        old = set(site.app.children())
        site.app.proc.send_signal(1)  # SIGHUP: workers replaced with the new configuration
        wait_for(lambda: not (old & set(site.app.children())), timeout=15, what="new workers")
        try:
            before, live = site.db.snapshot(), site.db.live_count()
            r = site.client.start(CAROL, WEB)
            eq((r.status, r.code), (503, "ENGINE_UNAVAILABLE"), f"start {r}")
            check(r.json.get("success") is False, "envelope")
            after = site.db.snapshot()
            eq((after[1], after[3], site.db.live_count()), (before[1], before[3], live),
               "ports, accounts (cooldown clock) and live rows unchanged")
            eq(site.client.status(CAROL, WEB).data, {}, "no container for the player")
        finally:
            site.app.write_conf(**{key: good})
            old = set(site.app.children())
            site.app.proc.send_signal(1)
            try:
                wait_for(lambda: not (old & set(site.app.children())), timeout=15,
                         what="workers back on the engine")
            except AssertionError:
                print("# " + "\n# ".join(site.app.log().splitlines()[-15:]))
                raise
        for user, cid in ((ALICE, WEB), (BOB, TCP)):
            site.client.stop(user, cid)
        wait_for(lambda: not engine.objects(), timeout=40, what="every object gone")
