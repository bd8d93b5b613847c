"""The HTML admin page /admin/containers through real nginx, MariaDB and
Docker: rendering with 0, 1 and 300 containers (parsed, not grepped), hostile
names rendered inert and intact, every action end to end, refusals."""
import html.parser
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Site, case, check, eq, http_get, run, sh  # noqa: E402

ADMIN, ALICE, BOB = 1, 2, 3
HOSTILE_TEAM = '<script>alert("t")</script> "Ünïcødé" ' + "é" * 80
HOSTILE_CHALLENGE = "<img src=x onerror=alert(1)> & 'web'"


class Page(html.parser.HTMLParser):
    """What a browser would see: table rows, links, forms, scripts, texts by id."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.rows, self.links, self.forms, self.scripts, self.ids = [], [], [], 0, {}
        self._row = None
        self._cell = None
        self._id_stack = []
        self.title = None
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "tr" and "data-id" in a:
            self._row = {"id": a["data-id"], "cells": []}
        if tag == "td" and self._row is not None:
            self._cell = ""
        if tag == "a":
            self.links.append(a.get("href"))
        if tag == "form":
            self.forms.append(a)
        if tag == "title":
            self._in_title = True
        if "id" in a:
            self.ids[a["id"]] = ""
            self._id_stack.append((tag, a["id"]))

    def handle_endtag(self, tag):
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row["cells"].append(self._cell.strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        if tag == "title":
            self._in_title = False
        if self._id_stack and self._id_stack[-1][0] == tag:
            self._id_stack.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._in_title:
            self.title = (self.title or "") + data
        for _, ident in self._id_stack:
            self.ids[ident] += data


def setup():
    site = Site("adminpage", reconcile_interval_seconds=3600, cooldown_seconds=0)
    db = site.db
    db.config("user_mode", "teams")
    db.team(1, HOSTILE_TEAM)
    db.team(2, "blue")
    db.user(ADMIN, "the admin", admin=True)
    db.user(ALICE, "alice", team=1)
    db.user(BOB, "bob", team=2)
    db.challenge(1, HOSTILE_CHALLENGE)
    db.challenge(2, "second", max_renewals=1)
    return site


def teardown(site):
    site.close()


def get(site, path, user=ADMIN):
    r = site.client.call("GET", path, user)
    return r, Page(r.raw)


def post(site, path, fields, user=ADMIN, nonce=True, header=False):
    """A browser form post: urlencoded body, the nonce in the action's query."""
    if nonce:
        path += ("&" if "?" in path else "?") + f"nonce=n{user}"
    body = urllib.parse.urlencode(fields)
    return site.client.call("POST", path, user, raw=body, csrf=header,
                            content_type="application/x-www-form-urlencoded")


@case
def empty_state(site):
    """0 containers: the page renders in CTFd's admin layout with the empty state"""
    r, p = get(site, "/admin/containers")
    eq(r.status, 200, f"status {r}")
    check(r.headers["Content-Type"].startswith("text/html"), "HTML")
    check("cc-empty" in p.ids and "No containers here" in p.ids["cc-empty"], "empty state")
    eq(p.rows, [], "no rows")
    check("/admin/challenges" in p.links and "/admin/users" in p.links, "CTFd's admin navigation")
    check(any("main-css" in (l or "") for l in []) or "main-css" in r.raw, "CTFd's admin CSS linked")
    eq(p.ids.get("cc-live-total"), "0", "count")
    eq(r.headers.get("X-Frame-Options"), "DENY", "never framed (its forms change state)")


@case
def one_container_escaped(site):
    """1 container: its row links to the team and challenge; hostile names render inert and intact"""
    eq(site.client.start(ALICE, 1).status, 200, "start")
    r, p = get(site, "/admin/containers")
    eq(len(p.rows), 1, f"rows {p.rows}")
    cells = p.rows[0]["cells"]
    eq(cells[0], HOSTILE_TEAM, "team name intact")
    eq(cells[1], HOSTILE_CHALLENGE, "challenge name intact")
    check("/admin/teams/1" in p.links and "/admin/challenges/1" in p.links, "links")
    eq(p.scripts, 1, "only the page's own refresh script: no injected <script>")
    check("<img src=x" not in r.raw and '<script>alert("t")' not in r.raw, "escaped in the source")
    check(cells[5].startswith("http://127.0.0.1:"), f"connection {cells[5]}")
    check("left" in cells[7] and "0 / 5" == cells[8] and cells[9] == "running", f"cells {cells}")
    actions = [f["action"] for f in p.forms if f.get("method") == "post"]
    eq(sorted(a.split("?")[0] for a in actions),
       ["/admin/containers/extend", "/admin/containers/flag", "/admin/containers/stop"], "actions")
    check(all(a.endswith(f"nonce=n{ADMIN}") for a in actions), "each form carries the nonce")


@case
def extend_action(site):
    """extend: a POST with the nonce answers 303 back to the page and really moves the deadline"""
    iid = site.db.value("SELECT id FROM container_instances WHERE live = 1")
    before = int(site.db.value(f"SELECT deadline FROM container_instances WHERE id = {iid}"))
    r = post(site, "/admin/containers/extend", {"id": iid})
    eq(r.status, 303, f"status {r}")
    eq(r.headers["Location"], "/admin/containers?done=extended", "back to the page")
    after = int(site.db.value(f"SELECT deadline FROM container_instances WHERE id = {iid}"))
    eq(after, before + 3600, "deadline")
    _, p = get(site, "/admin/containers?done=extended")
    check("Container extended." in p.ids.get("cc-notice", ""), "notice")


@case
def reveal_flag(site):
    """reveal: the flag the container serves, shown once (no-store), audited with the admin's id"""
    iid = site.db.value("SELECT id FROM container_instances WHERE live = 1")
    r = post(site, "/admin/containers/flag", {"id": iid})
    eq(r.status, 200, f"status {r}")
    check("no-store" in r.headers.get("Cache-Control", ""), "not cached")
    p = Page(r.raw)
    conn = site.client.status(ALICE, 1).data["ports"][0]["connection"]
    eq(p.ids["cc-flag"], http_get(conn), "the container's own flag")
    ev = site.db.rows(f"SELECT kind, actor_user_id FROM container_events WHERE instance_id = {iid}")
    check(["flag_reveal", str(ADMIN)] in ev, f"event {ev}")
    check(p.ids["cc-flag"] not in site.app.log(), "not in the log")


@case
def refusals(site):
    """a player, a missing or foreign nonce, bad ids and pages: the right status and a page that says why"""
    iid = site.db.value("SELECT id FROM container_instances WHERE live = 1")
    snap = site.db.snapshot()
    r, p = get(site, "/admin/containers", user=ALICE)
    eq(r.status, 403, "a player")
    check("Only admins" in p.ids.get("cc-error", ""), f"says why {p.ids}")
    r = post(site, "/admin/containers/stop", {"id": iid}, nonce=False, header=True)
    eq(r.status, 403, f"nonce only in a header, none in the action {r}")
    check("NONCE_INVALID" in r.raw, "its code")
    r = site.client.call("POST", "/admin/containers/stop?nonce=wrong", ADMIN, raw=f"id={iid}",
                         csrf=True, content_type="application/x-www-form-urlencoded")
    eq(r.status, 403, "a nonce that is not the session's")
    r = post(site, "/admin/containers/stop", {"id": iid}, nonce=False)
    eq(r.status, 403, "no nonce at all (refused by CTFd's endpoint)")
    for path, status in [("/admin/containers?page=-1", 400), ("/admin/containers?page=99999999999", 400),
                         ("/admin/containers?per_page=0", 400), ("/admin/containers?state=%3Cx%3E", 400),
                         ("/admin/containers?sort=evil", 400), ("/admin/containers/nope", 404),
                         ("/admin/containers/events?kind=%3Cscript%3E", 400)]:
        r, p = get(site, path)
        eq(r.status, status, path)
        check("cc-error" in p.ids and "<x>" not in r.raw and "<script>" not in r.raw.split("</nav>")[1].split("<script>\n/*")[0], f"{path}: a page that says why")
    r = site.client.call("GET", "/admin/containers/stop?id=1", ADMIN)
    eq(r.status, 405, "an action by GET")
    for fid in ["abc", "0", "-3", "99999999999", "424242"]:
        r = post(site, "/admin/containers/stop", {"id": fid})
        eq(r.status, 303, f"id {fid}")
        check("error=" in r.headers["Location"], f"a notice {r.headers['Location']}")
    _, p = get(site, "/admin/containers?error=CONTAINER_NOT_FOUND")
    check("No live container" in p.ids.get("cc-notice", ""), "the notice")
    _, p = get(site, "/admin/containers?error=%3Cscript%3E")
    check("cc-notice" not in p.ids, "an unknown code shows nothing")
    eq(site.db.snapshot()[0], snap[0], "no container changed")


@case
def stop_action(site):
    """stop: 303 back; the container is really gone from the engine and the row ended"""
    iid = site.db.value("SELECT id FROM container_instances WHERE live = 1")
    name = site.db.value(f"SELECT name FROM container_instances WHERE id = {iid}")
    r = post(site, "/admin/containers/stop", {"id": iid})
    eq((r.status, r.headers.get("Location")), (303, "/admin/containers?done=stopped"), f"{r}")
    eq(site.engine_names() & {name}, set(), "gone from the engine")
    eq(site.db.value(f"SELECT state FROM container_instances WHERE id = {iid}"), "stopped", "row")


@case
def stop_all_with_confirmation(site):
    """stop all: a confirmation page names how many; the POST stops exactly those"""
    eq(site.client.start(ALICE, 1).status, 200, "alice")
    eq(site.client.start(BOB, 2).status, 200, "bob")
    _, p = get(site, "/admin/containers?challenge_id=2")
    eq(p.rows[0]["cells"][8], "0 / 1", "the challenge's own renewal limit, joined into the listing")
    r, p = get(site, "/admin/containers/stop-all")
    eq(r.status, 200, "confirmation")
    check("Stop 2 live container(s)?" in r.raw, "names the count")
    r, p = get(site, "/admin/containers/stop-all?challenge_id=2")
    check("Stop 1 live container(s)?" in r.raw and "second" in r.raw, "per challenge")
    r = post(site, "/admin/containers/stop-all", {"challenge_id": "2", "confirm": "all"})
    eq(r.status, 303, f"{r}")
    eq(site.db.live_count(), 1, "only challenge 2's stopped")
    r = post(site, "/admin/containers/stop-all", {})
    check("error=CONFIRM_REQUIRED" in r.headers.get("Location", ""), "needs confirm=all")
    eq(site.db.live_count(), 1, "nothing stopped without confirm")
    r = post(site, "/admin/containers/stop-all", {"confirm": "all"})
    eq(r.headers.get("Location"), "/admin/containers?done=stopped_all&n=1", "303 with the count")
    eq(site.db.live_count(), 0, "all stopped")
    eq(site.engine_names(), set(), "engine empty")


@case
def events_page(site):
    """events: admin actions and flag sharing, newest first, with who, what, when and which container"""
    site.db.sql("INSERT INTO container_events (at, kind, actor_user_id, instance_id, account_kind, "
                "account_id, challenge_id, detail) VALUES "
                f"({int(time.time())}, 'flag_share', {BOB}, 1, 'team', 2, 1, "
                "'submitted the flag of team 1 <b>')")
    r, p = get(site, "/admin/containers/events")
    eq(r.status, 200, "status")
    kinds = [row for row in r.raw.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]]
    check("flag_share" in kinds[0], "newest first")
    check(any("flag_reveal" in k and "the admin" in k for k in kinds), "the reveal, naming the admin")
    check(any("admin_stop_all" in k for k in kinds), "stop-all")
    check("&lt;b&gt;" in r.raw, "detail escaped")
    r, _ = get(site, "/admin/containers/events?kind=flag_share")
    check(r.raw.count("<tr>") == 2, "filter by kind (header + 1 row)")


@case
def three_hundred_rows(site):
    """300 live containers: 25 rows a page, 12 pages, links keep the filters, past the end says so"""
    now = int(time.time())
    values = ",".join(
        f"('team', {1000 + i}, {ALICE}, 2, 'docker', 'x-{i}', 'img', 'running', 1, '127.0.0.1', "
        f"'80/http:{20000 + i}', {now}, {now}, {now}, {now + 600 + i}, 0)" for i in range(300))
    site.db.sql("INSERT INTO container_instances (account_kind, account_id, user_id, challenge_id, "
                "backend, name, image, state, live, host, ports, created_at, updated_at, started_at, "
                f"deadline, renewals) VALUES {values}")
    r, p = get(site, "/admin/containers?challenge_id=2")
    eq(r.status, 200, "status")
    eq(len(p.rows), 25, "a page of rows")
    eq(p.ids.get("cc-live-total"), "300", "count")
    check("300 container(s), page 1 of 12" in r.raw, "pagination summary")
    pages = [l for l in p.links if l and l.startswith("/admin/containers?page=")]
    check(all("challenge_id=2" in l for l in pages), "page links keep the filter")
    r, p = get(site, "/admin/containers?challenge_id=2&page=12")
    eq(len(p.rows), 25, "last page")
    r, p = get(site, "/admin/containers?challenge_id=2&page=13")
    check("past the last one" in p.ids.get("cc-empty", ""), "past the end")
    first = get(site, "/admin/containers?challenge_id=2")[1].rows[0]["id"]
    last = get(site, "/admin/containers?challenge_id=2&sort=-time_left")[1].rows[0]["id"]
    check(int(first) < int(last), "sorted by time left, both ways")
    site.db.sql("DELETE FROM container_instances WHERE name LIKE 'x-%'")


if __name__ == "__main__":
    run(setup, teardown)
