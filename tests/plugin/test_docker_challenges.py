"""The `docker_challenges` plugin inside a real CTFd 3.8, against the real instancer service
on the real Docker engine: admin set-up, the team flow, flag checks and sharing, refusals,
the admin page, and behaviour while the service is down."""

import json
import urllib.request

from CTFd.models import Challenges, Fails, Solves
from CTFd.utils import set_config
from sqlalchemy import inspect, text
from tests.helpers import ctftime, gen_flag, gen_team, gen_user, login_as_user

from conftest import ADMIN_TOKEN, configure

DEMO = {
    "name": "Web target",
    "category": "web",
    "description": "Find the flag.",
    "value": 500,
    "function": "logarithmic",
    "decay": 10,
    "minimum": 100,
    "state": "visible",
    "type": "docker",
    "docker_image": "instancer/demo-web:latest",
    "docker_ports": "8080/http",
    "docker_flag_template": "CTF{{{leet:docker}_{hex:16}}}",
    "docker_lifetime": 600,
}


def _admin(app):
    return login_as_user(app, name="admin", password="password")


def _create(app, **changes):
    r = _admin(app).post("/api/v1/challenges", json={**DEMO, **changes})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["data"]["id"]


def _members(app, name):
    with app.app_context():
        team = gen_team(app.db, name=name, email=f"{name}@examplectf.com", member_count=2)
        return [login_as_user(app, name=m.name, password="password") for m in team.members]


def _flag_from(instance):
    url = instance["connection"][0]["url"]
    return urllib.request.urlopen(url, timeout=5).read().decode().strip()


def _attempt(client, cid, submission):
    r = client.post("/api/v1/challenges/attempt", json={"challenge_id": cid, "submission": submission})
    return r.get_json()["data"]["status"]


def test_a_team_starts_reads_submits_and_shares_one_instance(ctfd, service):
    cid = _create(ctfd)
    admin = _admin(ctfd)
    for page in (f"/admin/challenges/{cid}", "/admin/docker_challenges", "/admin/docker_challenges/settings"):
        assert admin.get(page).status_code == 200, page
    assert admin.get("/api/v1/challenges/types").status_code == 200
    assert "docker_image" in admin.get(f"/admin/challenges/{cid}").get_data(as_text=True)

    alice, bob = _members(ctfd, "red")
    view = alice.get(f"/api/v1/challenges/{cid}").get_json()["data"]
    assert "docker-instance" in view["view"] and "docker_image" not in json.dumps(view)
    assert alice.get(f"/api/v1/containers?challenge_id={cid}").get_json()["data"]["instance"] is None

    started = alice.post("/api/v1/containers", json={"challenge_id": cid}).get_json()
    assert started["success"], started
    instance = started["data"]["instance"]
    assert instance["state"] == "running" and instance["extensions_left"] == 5
    assert set(instance) == {
        "id",
        "state",
        "expires_at",
        "remaining_seconds",
        "extensions_used",
        "extensions_left",
        "connection",
    }
    flag = _flag_from(instance)
    assert flag.startswith("CTF{")

    # The teammate sees, and would start, the very same instance.
    assert (
        bob.get(f"/api/v1/containers?challenge_id={cid}").get_json()["data"]["instance"]["id"]
        == instance["id"]
    )
    assert (
        bob.post("/api/v1/containers", json={"challenge_id": cid}).get_json()["data"]["instance"]["id"]
        == instance["id"]
    )

    assert _attempt(alice, cid, "CTF{wrong}") == "incorrect"
    assert _attempt(bob, cid, flag) == "correct"
    with ctfd.app_context():
        team_id = alice.get("/api/v1/teams/me").get_json()["data"]["id"]
        assert Solves.query.filter_by(challenge_id=cid, team_id=team_id).count() == 1
        chal = Challenges.query.filter_by(id=cid).first()
        assert (chal.function, chal.initial, chal.minimum, chal.decay) == ("logarithmic", 500, 100, 10)

    extended = alice.patch("/api/v1/containers", json={"challenge_id": cid}).get_json()
    assert extended["data"]["instance"]["extensions_left"] == 4
    reverted = alice.post("/api/v1/containers/revert", json={"challenge_id": cid}).get_json()
    assert (
        reverted["data"]["instance"]["id"] == instance["id"]
        and _flag_from(reverted["data"]["instance"]) == flag
    )
    stopped = bob.delete("/api/v1/containers", json={"challenge_id": cid}).get_json()
    assert stopped["data"]["instance"]["state"] == "stopped"
    assert service.leftovers() == []


def test_another_teams_flag_is_incorrect_and_listed_for_admins(ctfd, service):
    cid = _create(ctfd)
    (red, _), (blue, _) = _members(ctfd, "red"), _members(ctfd, "blue")
    red_flag = _flag_from(
        red.post("/api/v1/containers", json={"challenge_id": cid}).get_json()["data"]["instance"]
    )
    blue_flag = _flag_from(
        blue.post("/api/v1/containers", json={"challenge_id": cid}).get_json()["data"]["instance"]
    )
    assert _attempt(blue, cid, red_flag) == "incorrect"
    assert _attempt(red, cid, red_flag) == "correct"
    assert _attempt(blue, cid, blue_flag) == "correct"
    with ctfd.app_context():
        assert Challenges.query.filter_by(id=cid).first().value < 500  # dynamic scoring decays per solve
    shares = _admin(ctfd).get("/api/v1/docker_admin/flag-shares").get_json()["data"]
    (event,) = shares["items"]
    assert (event["submitter_info"]["name"], event["flag_owner_info"]["name"]) == ("blue", "red")
    assert event["challenge_info"]["id"] == cid
    listed = _admin(ctfd).get(f"/api/v1/docker_admin/instances?challenge_id={cid}").get_json()["data"]
    assert {i["owner_info"]["name"] for i in listed["items"]} == {"red", "blue"}
    stopped = _admin(ctfd).delete(f"/api/v1/docker_admin/instances?challenge_id={cid}", json={})
    assert stopped.get_json()["data"] == {"stopped": 2}
    assert service.leftovers() == []


def test_static_flags_are_accepted_too(ctfd, service):
    cid = _create(ctfd)
    with ctfd.app_context():
        gen_flag(ctfd.db, challenge_id=cid, content="CTF{static}")
    (alice, _) = _members(ctfd, "red")
    assert _attempt(alice, cid, "CTF{static}") == "correct"


def test_refusals_change_nothing(ctfd, service):
    cid = _create(ctfd)
    hidden = _create(ctfd, name="Hidden", state="hidden")
    (red, _), (blue, _) = _members(ctfd, "red"), _members(ctfd, "blue")
    with ctfd.app_context():
        gen_user(ctfd.db, name="loner", email="loner@examplectf.com")
    loner = login_as_user(ctfd, name="loner", password="password")

    def start(client, challenge_id, **kwargs):
        r = client.post("/api/v1/containers", json={"challenge_id": challenge_id}, **kwargs)
        return r.status_code, (r.get_json() or {}).get("error", {}).get("code")

    assert start(red, hidden) == (404, "CHALLENGE_NOT_FOUND")
    locked = _create(ctfd, name="Locked", state="locked")
    assert start(red, locked) == (403, "CHALLENGE_LOCKED")
    gated = _create(ctfd, name="Gated")
    with ctfd.app_context():
        chal = Challenges.query.filter_by(id=gated).first()
        chal.requirements = {"prerequisites": [cid]}
        ctfd.db.session.commit()
    assert start(red, gated) == (403, "CHALLENGE_LOCKED")
    assert start(loner, cid) == (403, "NO_TEAM")
    r = red.post(
        "/api/v1/containers",
        data=json.dumps({"challenge_id": cid}),
        content_type="application/json",
        headers={"CSRF-Token": "forged"},
    )
    assert r.status_code == 403  # CTFd's CSRF check
    with ctfd.app_context(), ctftime.init():
        with ctftime.not_started():
            assert start(red, cid) == (403, "CTF_NOT_RUNNING")
        with ctftime.ended():
            assert start(red, cid) == (403, "CTF_NOT_RUNNING")
    with ctfd.app_context():
        set_config("verify_emails", True)  # the team's members never confirmed their address
    assert start(red, cid)[0] == 403
    with ctfd.app_context():
        set_config("verify_emails", False)
        set_config("challenge_visibility", "admins")
    assert start(red, cid)[0] == 403
    with ctfd.app_context():
        set_config("challenge_visibility", "private")
        set_config("paused", True)
    assert start(red, cid) == (403, "CTF_PAUSED")
    with ctfd.app_context():
        set_config("paused", False)
    assert service.leftovers() == []

    blue_instance = blue.post("/api/v1/containers", json={"challenge_id": cid}).get_json()["data"]["instance"]
    r = red.delete("/api/v1/containers", json={"instance_id": blue_instance["id"]})
    assert (r.status_code, r.get_json()["error"]["code"]) == (404, "INSTANCE_NOT_FOUND")
    assert (
        blue.get(f"/api/v1/containers?challenge_id={cid}").get_json()["data"]["instance"]["state"]
        == "running"
    )
    assert len(service.leftovers()) == 1
    blue.delete("/api/v1/containers", json={"challenge_id": cid})


def test_the_limit_error_names_the_running_instance_and_lets_the_team_stop_it(ctfd, service):
    first, second = _create(ctfd, name="One"), _create(ctfd, name="Two")
    (alice, _) = _members(ctfd, "red")
    running = alice.post("/api/v1/containers", json={"challenge_id": first}).get_json()["data"]["instance"]
    r = alice.post("/api/v1/containers", json={"challenge_id": second})
    error = r.get_json()["error"]
    assert (r.status_code, error["code"]) == (409, "INSTANCE_LIMIT_REACHED")
    (named,) = error["details"]["instances"]
    assert (named["id"], named["challenge_name"], named["challenge_id"]) == (running["id"], "One", first)
    assert alice.delete("/api/v1/containers", json={"instance_id": named["id"]}).get_json()["success"]
    assert alice.post("/api/v1/containers", json={"challenge_id": second}).get_json()["success"]
    alice.delete("/api/v1/containers", json={"challenge_id": second})


def test_the_admin_sees_a_refusal_from_the_service(ctfd, service):
    r = _admin(ctfd).post("/api/v1/challenges", json={**DEMO, "docker_flag_template": "flag{{{hex:4}}}"})
    assert r.status_code == 500
    assert "entropy" in json.dumps(r.get_json())
    with ctfd.app_context():
        assert Challenges.query.count() == 0


def test_while_the_service_is_down_ctfd_keeps_working(ctfd, service):
    cid = _create(ctfd)
    configure(ctfd, "http://127.0.0.1:9")  # nothing listens there
    (alice, _) = _members(ctfd, "red")
    assert alice.get("/challenges").status_code == 200
    assert alice.get("/api/v1/challenges").status_code == 200
    assert alice.get(f"/api/v1/challenges/{cid}").status_code == 200
    r = alice.post("/api/v1/containers", json={"challenge_id": cid})
    assert (r.status_code, r.get_json()["error"]["code"]) == (503, "SERVICE_UNAVAILABLE")
    r = alice.post("/api/v1/challenges/attempt", json={"challenge_id": cid, "submission": "CTF{x}"})
    assert r.status_code == 503 and "could not be checked" in r.get_data(as_text=True)
    with ctfd.app_context():
        assert Fails.query.filter_by(challenge_id=cid).count() == 0  # the outage cost no attempt
    settings = _admin(ctfd).get("/admin/docker_challenges/settings").get_data(as_text=True)
    assert "SERVICE_UNAVAILABLE" in settings


def test_the_settings_page_never_shows_a_token_back(ctfd, service):
    admin = _admin(ctfd)
    page = admin.get("/admin/docker_challenges/settings").get_data(as_text=True)
    assert "plugin-platform-token-0123456789" not in page and "…6789" in page
    with admin.session_transaction() as session:
        nonce = session["nonce"]
    r = admin.post(
        "/admin/docker_challenges/settings",
        data={"nonce": nonce, "service_url": service.url, "platform_token": "", "admin_token": ""},
    )
    assert r.status_code == 302
    assert "reachable" in admin.get("/admin/docker_challenges/settings").get_data(as_text=True)


def test_a_tcp_tls_port_shows_its_command_alternatives_and_hint(ctfd, service):
    cid = _create(ctfd, docker_image="instancer/demo-tcp:latest", docker_ports="9000/tcp@tcp-tls")
    (alice, _) = _members(ctfd, "green")
    instance = alice.post("/api/v1/containers", json={"challenge_id": cid}).get_json()["data"]["instance"]
    [conn] = instance["connection"]
    assert conn["mode"] == "tcp-tls" and conn["command"].startswith("openssl s_client")
    assert conn["alternatives"] and "nc" in conn["hint"]
    assert set(conn) == {"protocol", "mode", "host", "port", "url", "command", "alternatives", "hint"}
    alice.delete("/api/v1/containers", json={"challenge_id": cid})
    assert service.leftovers() == []


DUO = {
    "containers": [
        {
            "name": "db",
            "image": "instancer/demo-duo:latest",
            "command": ["db"],
            "healthcheck": {
                "command": ["sh", "-c", "nc 127.0.0.1 5000 </dev/null | grep -q ."],
                "interval_seconds": 0.5,
                "start_period_seconds": 10,
            },
        },
        {
            "name": "web",
            "image": "instancer/demo-duo:latest",
            "command": ["web"],
            "depends_on": ["db"],
            "ports": [{"port": 8080, "protocol": "http"}],
        },
    ],
    "flag": {"containers": ["db"]},
    "lifetime": {"max_extensions": 1, "after_solve_seconds": 5},
}


def _service_spec(service, cid):
    request = urllib.request.Request(
        f"{service.url}/api/v1/challenges/ctfd-{cid}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def test_the_advanced_spec_runs_two_containers_from_ctfd(ctfd, service):
    cid = _create(ctfd, docker_image="", docker_ports="", docker_spec_extra=json.dumps(DUO))
    spec = _service_spec(service, cid)
    assert [c["name"] for c in spec["containers"]] == ["db", "web"]
    assert spec["flag"]["containers"] == ["db"] and spec["flag"]["template"] == DEMO["docker_flag_template"]
    assert spec["lifetime"]["max_extensions"] == 1 and spec["lifetime"]["seconds"] == 600
    (alice, _) = _members(ctfd, "red")
    assert alice.get(f"/api/v1/challenges/{cid}").get_json()["data"]["docker"]["max_extensions"] == 1
    assert "demo-duo" not in alice.get(f"/api/v1/challenges/{cid}").get_data(as_text=True)
    instance = alice.post("/api/v1/containers", json={"challenge_id": cid}).get_json()["data"]["instance"]
    flag = _flag_from(instance)  # served by `web`, read from `db` by name
    assert instance["remaining_seconds"] > 500
    assert _attempt(alice, cid, flag) == "correct"
    solved = alice.get(f"/api/v1/containers?challenge_id={cid}").get_json()["data"]["instance"]
    assert solved is None or solved["remaining_seconds"] <= 5  # after_solve_seconds
    alice.delete("/api/v1/containers", json={"challenge_id": cid})
    assert service.leftovers() == []

    # Without `containers` the form's image is needed again: refused, and nothing changes ...
    admin = _admin(ctfd)
    r = admin.patch(f"/api/v1/challenges/{cid}", json={"docker_spec_extra": '{"egress": true}'})
    assert r.status_code == 500 and "containers" in json.dumps(r.get_json())
    assert [c["name"] for c in _service_spec(service, cid)["containers"]] == ["db", "web"]
    # ... and with it, the edit reaches the service, the advanced part included.
    single = {"docker_image": DEMO["docker_image"], "docker_ports": "8080/http"}
    r = admin.patch(f"/api/v1/challenges/{cid}", json={**single, "docker_spec_extra": '{"egress": true}'})
    assert r.status_code == 200, r.get_json()
    spec = _service_spec(service, cid)
    assert spec["egress"] is True and spec["containers"][0]["image"] == DEMO["docker_image"]


def test_a_bad_advanced_spec_is_refused_and_changes_nothing(ctfd, service):
    admin = _admin(ctfd)
    for extra, says in (
        ("{egress: true}", "not valid JSON"),
        ('["egress"]', "must be a JSON object"),
        ('{"egress": "yes"}', "VALIDATION_FAILED"),
        ('{"id": "elsewhere"}', "cannot set id"),
    ):
        r = admin.post("/api/v1/challenges", json={**DEMO, "docker_spec_extra": extra})
        assert r.status_code == 500 and says in json.dumps(r.get_json()), (extra, r.get_json())
    with ctfd.app_context():
        assert Challenges.query.count() == 0
    cid = _create(ctfd)
    r = admin.patch(f"/api/v1/challenges/{cid}", json={"docker_spec_extra": '{"pool": {"min": "x"}}'})
    assert r.status_code == 500 and "pool" in json.dumps(r.get_json())
    with ctfd.app_context():
        assert Challenges.query.filter_by(id=cid).first().docker_spec_extra == ""
    assert _service_spec(service, cid).get("pool", {}).get("max", 0) == 0


def test_a_table_from_an_earlier_version_gains_the_new_column(ctfd, service):
    # Imported here: the plugin package imports CTFd.api, which needs an app to exist.
    from CTFd.plugins.docker_challenges import schema  # noqa: PLC0415

    cid = _create(ctfd)
    with ctfd.app_context():
        with ctfd.db.engine.begin() as conn:  # the table as the first release made it
            conn.execute(text("ALTER TABLE docker_challenge DROP COLUMN docker_spec_extra"))
        columns = {c["name"] for c in inspect(ctfd.db.engine).get_columns("docker_challenge")}
        assert "docker_spec_extra" not in columns
        schema.ensure(ctfd.db)
        schema.ensure(ctfd.db)  # a second worker loading: nothing to do, no error
        columns = {c["name"] for c in inspect(ctfd.db.engine).get_columns("docker_challenge")}
        assert "docker_spec_extra" in columns
        ctfd.db.session.expire_all()
        assert Challenges.query.filter_by(id=cid).first().docker_spec_extra is None  # old row: none
    admin = _admin(ctfd)
    assert admin.get(f"/admin/challenges/{cid}").status_code == 200
    r = admin.patch(f"/api/v1/challenges/{cid}", json={"docker_spec_extra": '{"egress": true}'})
    assert r.status_code == 200 and _service_spec(service, cid)["egress"] is True
