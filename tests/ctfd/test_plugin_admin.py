"""Admin side of the `docker` challenge type: create/update through CTFd's API, the forms, the
menu entry, and what players may (not) see.

How to run (from the repository root; CTFD_PATH is a CTFd 3.8.7 checkout with its venv):

    CTFD_PATH=/work/ctfd /work/ctfd/.venv/bin/python -m pytest -p no:cacheprovider -q tests/ctfd

A refused setting answers CTFd's error envelope {"success": false, "errors": {"": [sentence]}}
(HTTP 500, CTFd's choice for challenge-type errors), which CTFd's admin page shows in a dialog
over the form; the sentence names the field and, for flag templates, is src/flag.c's.
"""

import os

import pytest

if not os.environ.get("CTFD_PATH"):
    pytest.skip("CTFD_PATH is not set (a CTFd 3.8.7 checkout with its venv)", allow_module_level=True)

import decimal  # noqa: E402

from sqlalchemy import text  # noqa: E402

from tests.helpers import login_as_user, register_user  # noqa: E402

BASE = {
    "name": "web",
    "category": "web",
    "description": "A web target",
    "value": 100,
    "state": "visible",
    "type": "docker",
    "image": "ctfd-containers/demo-web:latest",
    "ports": "80/http, 1337/tcp",
    "flag_template": "CTF{<hex:32>}",
}


def _create(client, **changes):
    body = dict(BASE, **changes)
    body = {k: v for k, v in body.items() if v is not None}
    return client.post("/api/v1/challenges", json=body)


def _row(app, cid):
    r = app.db.session.execute(text("SELECT * FROM docker_challenge WHERE id = :id"), {"id": cid}).mappings().first()
    app.db.session.commit()
    return dict(r) if r else None


def _challenge_count(app):
    n = app.db.session.execute(text("SELECT COUNT(*) FROM challenges")).scalar()
    app.db.session.commit()
    return n


def test_create_form_and_assets(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        admin = login_as_user(app, name="admin")
        r = admin.get("/api/v1/challenges/types")
        assert r.status_code == 200
        docker = r.get_json()["data"]["docker"]
        html = docker["create"]
        for name in ("image", "ports", "flag_template", "flag_env", "memory_mb", "cpus", "lifetime_seconds", "max_renewals", "backend", "warm_pool"):
            assert f'name="{name}"' in html, name
        assert 'name="type" id="chaltype"' in html and 'value="docker"' in html
        assert "CTF{&lt;hex:32&gt;}" in html  # the default template, escaped
        for script in docker["scripts"].values():
            assert admin.get(script).status_code == 200, script
        assert admin.get("/plugins/docker_challenges/assets/view.html").status_code == 200


def test_create_valid_stores_the_contract_values(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        admin = login_as_user(app, name="admin")
        r = _create(admin, memory_mb="256", cpus="0.5", lifetime_seconds="", max_renewals="2", backend="", flag_env="CHALLENGE_FLAG", warm_pool="3")
        assert r.status_code == 200, r.get_json()
        data = r.get_json()["data"]
        assert data["type"] == "docker"
        row = _row(app, data["id"])
        assert row["image"] == "ctfd-containers/demo-web:latest"
        assert row["ports"] == "80/http,1337/tcp"  # normalised, as the app reads it
        assert row["flag_template"] == "CTF{<hex:32>}"
        assert row["flag_env"] == "CHALLENGE_FLAG"
        assert row["memory_mb"] == 256
        assert decimal.Decimal(str(row["cpus"])) == decimal.Decimal("0.50")
        assert row["lifetime_seconds"] is None and row["backend"] is None
        assert row["max_renewals"] == 2
        assert row["warm_pool"] == 3
        # Only what must be given: everything else is the application's default.
        r = _create(admin, name="minimal")
        assert r.status_code == 200, r.get_json()
        row = _row(app, r.get_json()["data"]["id"])
        assert row["flag_env"] == "FLAG"
        assert [row[k] for k in ("memory_mb", "cpus", "lifetime_seconds", "max_renewals", "backend", "warm_pool")] == [None] * 6
        # The update page renders with the stored values.
        page = admin.get(f"/admin/challenges/{data['id']}")
        assert page.status_code == 200
        assert b'name="flag_template"' in page.data and b"CTF{&lt;hex:32&gt;}" in page.data


REFUSED = [
    ({"flag_template": "CTF{<hex:15>}"}, "flag template: only 60 random bits; at least 64 are required (e.g. <hex:16>)"),
    ({"flag_template": "CTF{<hex:32}"}, "flag template: unclosed '<' at position 4; a placeholder ends with '>' and '<' cannot be a literal"),
    ({"flag_template": "CTF{<py:4>}"}, "flag template: unknown placeholder 'py' at position 4; use <hex:N>, <alnum:N> or <lower:N>"),
    ({"flag_template": "<hex:128><hex:128>"}, "flag template: a flag could be 256 characters; at most 255 are allowed"),
    ({"flag_template": ""}, "Flag template: required."),
    ({"flag_template": "CTF{<hex:32>} "}, "flag template: starts or ends with a blank; CTFd strips blanks around a submission, so such a flag could never be submitted"),
    ({"ports": "80/http,80/tcp"}, "Ports: port 80 is listed twice; list each container port once."),
    ({"ports": "80/udp"}, "Ports: '80/udp' is not PORT/http or PORT/tcp (e.g. 80/http, 1337/tcp)."),
    ({"ports": "70000/tcp"}, "Ports: '70000/tcp': the port must be from 1 to 65535."),
    ({"ports": ",".join(f"{p}/tcp" for p in range(1, 10))}, "Ports: at most 8 ports are allowed."),
    ({"ports": None}, "Ports: required."),
    ({"image": ""}, "Image: required."),
    ({"image": "has blank:1"}, "Image: a name such as registry/name:tag, without blanks."),
    ({"flag_env": "flag"}, "Flag variable: use capital letters, digits and _ (not starting with a digit), at most 64 characters, e.g. FLAG."),
    ({"memory_mb": "lots"}, "Memory: a whole number from 6 to 1048576 MiB, or blank."),
    ({"cpus": "0.001"}, "CPUs: a number from 0.01 to 999.99 with at most two decimals (e.g. 0.5), or blank."),
    ({"lifetime_seconds": "0"}, "Lifetime: a whole number from 1 to 31536000 seconds, or blank."),
    ({"max_renewals": "-1"}, "Renewals: a whole number from 0 to 10000, or blank."),
    ({"backend": "k8s"}, "Backend: docker, swarm or whale, or blank for the application's."),
    ({"warm_pool": "101"}, "Warm pool: a whole number from 0 to 100 containers, or blank."),
    ({"warm_pool": "-1"}, "Warm pool: a whole number from 0 to 100 containers, or blank."),
    ({"spec": "{}"}, "Unknown field 'spec'."),
]


def test_create_refused_with_a_clear_error(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        admin = login_as_user(app, name="admin")
        before = _challenge_count(app)
        for changes, message in REFUSED:
            r = _create(admin, **changes)
            assert r.status_code == 500, changes
            assert r.get_json() == {"success": False, "errors": {"": [message]}}, changes
            assert _challenge_count(app) == before, changes  # nothing half-created


def test_update_checks_only_what_is_given(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        admin = login_as_user(app, name="admin")
        cid = _create(admin, memory_mb="256", backend="swarm").get_json()["data"]["id"]

        r = admin.patch(f"/api/v1/challenges/{cid}", json={"state": "hidden"})  # CTFd's own fields alone
        assert r.status_code == 200, r.get_json()

        r = admin.patch(f"/api/v1/challenges/{cid}", json={"ports": "1337/tcp", "flag_template": "flag{<alnum:11>}", "max_renewals": "0"})
        assert r.status_code == 200, r.get_json()
        row = _row(app, cid)
        assert (row["ports"], row["flag_template"], row["max_renewals"]) == ("1337/tcp", "flag{<alnum:11>}", 0)
        assert r.get_json()["data"]["docker"]["ports"] == "1337/tcp"  # admins see the settings

        # A cleared field (the form sends "" when it differs from its initial value): the app's default.
        r = admin.patch(f"/api/v1/challenges/{cid}", json={"memory_mb": "", "backend": ""})
        assert r.status_code == 200, r.get_json()
        row = _row(app, cid)
        assert row["memory_mb"] is None and row["backend"] is None

        for body, message in (
            ({"flag_template": "<alnum:10>"}, "flag template: only 59.54 random bits; at least 64 are required (e.g. <hex:16>)"),
            ({"ports": "80/http,"}, "Ports: the list ends with a comma; remove it or add a port."),
            ({"flag_env": "9LIVES"}, "Flag variable: use capital letters, digits and _ (not starting with a digit), at most 64 characters, e.g. FLAG."),
            ({"image": " "}, "Image: required."),
            ({"name": "renamed", "flag_template": "CTF{}"}, "flag template: only 0 random bits; at least 64 are required (e.g. <hex:16>)"),
        ):
            r = admin.patch(f"/api/v1/challenges/{cid}", json=body)
            assert r.status_code == 500
            assert r.get_json()["errors"][""] == [message]
        row = _row(app, cid)
        assert (row["ports"], row["flag_template"]) == ("1337/tcp", "flag{<alnum:11>}")  # unchanged
        name = app.db.session.execute(text("SELECT name FROM challenges WHERE id = :id"), {"id": cid}).scalar()
        assert name == "web"  # a refused update changes nothing, not even CTFd's own fields


def test_players_never_see_the_settings(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        admin = login_as_user(app, name="admin")
        cid = _create(admin, image="secret-registry/hidden-image:7", flag_template="SECRETFORMAT{<hex:32>}").get_json()["data"]["id"]
        register_user(app)
        player = login_as_user(app)
        r = player.get(f"/api/v1/challenges/{cid}")
        assert r.status_code == 200
        data = r.get_json()["data"]
        assert "docker" not in data
        blob = r.get_data(as_text=True)
        assert "hidden-image" not in blob and "SECRETFORMAT" not in blob
        assert 'x-data="dockerContainer"' in data["view"]
        assert f'data-challenge-id="{cid}"' in data["view"]
        assert player.get(f"/api/v1/challenges/{cid}").status_code == 200


def test_admin_menu_has_containers(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        entries = [(m.title, m.route) for m in app.admin_plugin_menu_bar]
        assert ("Containers", "/admin/containers") in entries
        admin = login_as_user(app, name="admin")
        page = admin.get("/admin/challenges")
        assert page.status_code == 200
        assert b'href="/admin/containers"' in page.data


def test_no_service_leftovers(backend, make_ctfd):
    """Nothing of the retired HTTP service remains: no routes, no settings page."""
    with make_ctfd(backend) as app, app.app_context():
        rules = {r.rule for r in app.url_map.iter_rules()}
        assert not any(r.startswith("/api/v1/containers") for r in rules)
        assert "/admin/docker_challenges" not in rules
        plugin_rules = sorted(r for r in rules if "docker_challenges" in r)
        assert plugin_rules == ["/plugins/docker_challenges/assets/<path:path>", "/plugins/docker_challenges/auth"]
