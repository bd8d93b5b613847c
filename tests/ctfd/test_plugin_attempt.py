"""Flag checks of the `docker` challenge type against the C application's container_flags.

How to run (from the repository root; CTFD_PATH is a CTFd 3.8.7 checkout with its venv):

    CTFD_PATH=/work/ctfd /work/ctfd/.venv/bin/python -m pytest -p no:cacheprovider -q tests/ctfd

The container_* tables come from src/sql/001_initial.sql (as the app's --migrate creates them;
translated to SQLite's spelling for the SQLite cases). Flag rows are inserted here with the
digest the app would store: HMAC-SHA256(HMAC-SHA256(master, "ctfd-containers/v1/mac"), flag),
master = 00 01 .. 1f (the key file the `key_file` fixture writes).
"""

import os

import pytest

if not os.environ.get("CTFD_PATH"):
    pytest.skip("CTFD_PATH is not set (a CTFd 3.8.7 checkout with its venv)", allow_module_level=True)

import hashlib  # noqa: E402
import hmac  # noqa: E402
import itertools  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

from sqlalchemy import text  # noqa: E402

from tests.helpers import gen_flag, gen_team, login_as_user, register_user  # noqa: E402

MAC = hmac.new(bytes(range(32)), b"ctfd-containers/v1/mac", hashlib.sha256).digest()
_instances = itertools.count(100)


def digest(flag):
    return hmac.new(MAC, flag.encode(), hashlib.sha256).digest()


def add_flag(app, flag, kind, account_id, challenge_id, retired_at=None):
    """A container_flags row as the app writes it; returns its instance id."""
    instance = next(_instances)
    app.db.session.execute(
        text(
            "INSERT INTO container_flags (instance_id, account_kind, account_id, challenge_id, key_id, "
            "nonce, ciphertext, digest, created_at, retired_at) VALUES (:i, :k, :a, :c, "
            "'e1b3de68301a7b28', :n, :ct, :d, :now, :r)"
        ),
        {
            "i": instance,
            "k": kind,
            "a": account_id,
            "c": challenge_id,
            "n": b"\0" * 12,
            "ct": b"\1" * 40,
            "d": digest(flag),
            "now": int(time.time()) - 60,
            "r": retired_at,
        },
    )
    app.db.session.commit()
    return instance


def events(app):
    rows = app.db.session.execute(
        text(
            "SELECT kind, actor_user_id, instance_id, account_kind, account_id, challenge_id, detail, at "
            "FROM container_events ORDER BY id"
        )
    ).fetchall()
    app.db.session.commit()
    return [tuple(r) for r in rows]


def new_challenge(admin, name):
    r = admin.post(
        "/api/v1/challenges",
        json={
            "name": name,
            "category": "web",
            "description": "d",
            "value": 100,
            "state": "visible",
            "type": "docker",
            "image": "demo:1",
            "ports": "80/http",
            "flag_template": "CTF{<hex:32>}",
        },
    )
    assert r.status_code == 200, r.get_json()
    return r.get_json()["data"]["id"]


def submit(client, challenge_id, submission, preview=False):
    url = "/api/v1/challenges/attempt" + ("?preview=true" if preview else "")
    r = client.post(url, json={"challenge_id": challenge_id, "submission": submission})
    assert r.status_code == 200, (r.status_code, r.get_data(as_text=True))
    return r.get_json()["data"]


def solves(app, challenge_id):
    n = app.db.session.execute(text("SELECT COUNT(*) FROM solves WHERE challenge_id = :c"), {"c": challenge_id}).scalar()
    app.db.session.commit()
    return n


def test_user_mode(backend, make_ctfd, container_tables, key_file, monkeypatch):
    with make_ctfd(backend) as app, app.app_context():
        container_tables(app.db)
        admin = login_as_user(app, name="admin")
        web = new_challenge(admin, "web")
        pwn = new_challenge(admin, "pwn")
        gen_flag(app.db, challenge_id=web, content="static{shared}")
        register_user(app, name="alice", email="alice@examplectf.com")
        register_user(app, name="bob", email="bob@examplectf.com")
        alice, bob = login_as_user(app, name="alice"), login_as_user(app, name="bob")
        alice_id, bob_id = 2, 3

        add_flag(app, "CTF{alice-web}", "user", alice_id, web)
        bob_web = add_flag(app, "CTF{bob-web}", "user", bob_id, web)
        add_flag(app, "CTF{alice-pwn}", "user", alice_id, pwn)

        # Another account's flag: incorrect, and recorded with the owner (the victim).
        before = int(time.time())
        got = submit(alice, web, "CTF{bob-web}")
        assert got == {"status": "incorrect", "message": "Incorrect"}
        (event,) = events(app)
        assert event[:7] == (
            "flag_share",
            alice_id,
            bob_web,
            "user",
            bob_id,
            web,
            f"user {alice_id} submitted the flag of user {bob_id}",
        )
        assert before <= event[7] <= int(time.time())

        # Own flag of another challenge: incorrect, nothing recorded.
        assert submit(alice, web, "CTF{alice-pwn}")["status"] == "incorrect"
        # A flag nobody has, with blanks around the right one (CTFd strips them).
        assert submit(alice, web, "CTF{nobody}")["status"] == "incorrect"
        assert len(events(app)) == 1
        assert solves(app, web) == 0

        # Own live flag: correct, solved.
        assert submit(alice, web, "  CTF{alice-web} ")["status"] == "correct"
        assert solves(app, web) == 1
        # The static flag of the challenge still works beside the containers' flags.
        assert submit(bob, web, "static{shared}")["status"] == "correct"
        assert solves(app, web) == 2
        # The container's flag of the other challenge, submitted there: correct.
        assert submit(alice, pwn, "CTF{alice-pwn}")["status"] == "correct"
        assert len(events(app)) == 1


def test_retired_flags_and_grace(backend, make_ctfd, container_tables, key_file, monkeypatch):
    with make_ctfd(backend) as app, app.app_context():
        container_tables(app.db)
        admin = login_as_user(app, name="admin")
        chals = [new_challenge(admin, f"c{i}") for i in range(3)]
        register_user(app)
        player = login_as_user(app)
        now = int(time.time())
        add_flag(app, "CTF{ended-100s-ago}", "user", 2, chals[0], retired_at=now - 100)
        add_flag(app, "CTF{ended-1000s-ago}", "user", 2, chals[1], retired_at=now - 1000)
        add_flag(app, "CTF{ended-just-now}", "user", 2, chals[2], retired_at=now)

        # Grace off (the default): an ended container's flag no longer counts.
        got = submit(player, chals[0], "CTF{ended-100s-ago}")
        assert got["status"] == "incorrect"
        assert "ended" in got["message"]
        assert submit(player, chals[2], "CTF{ended-just-now}")["status"] == "incorrect"

        monkeypatch.setenv("CTFD_CONTAINERS_FLAG_GRACE_SECONDS", "600")
        assert submit(player, chals[1], "CTF{ended-1000s-ago}")["status"] == "incorrect"
        assert submit(player, chals[0], "CTF{ended-100s-ago}")["status"] == "correct"
        assert submit(player, chals[2], "CTF{ended-just-now}")["status"] == "correct"
        assert events(app) == []


def test_team_mode(backend, make_ctfd, container_tables, key_file):
    with make_ctfd(backend, user_mode="teams") as app, app.app_context():
        container_tables(app.db)
        admin = login_as_user(app, name="admin")
        web = new_challenge(admin, "web")
        red = gen_team(app.db, name="red", email="red@examplectf.com", member_count=2)
        blue = gen_team(app.db, name="blue", email="blue@examplectf.com", member_count=2)
        red_ids = [u.id for u in red.members]
        red_names = [u.name for u in red.members]
        red_id, blue_id = red.id, blue.id
        blue_web = add_flag(app, "CTF{blue}", "team", blue_id, web)
        add_flag(app, "CTF{red}", "team", red_id, web)
        # A user flag with the same number as the team is another account.
        add_flag(app, "CTF{user-red-number}", "user", red_id, web)

        red_member = login_as_user(app, name=red_names[1])  # not the one who started it
        assert submit(red_member, web, "CTF{blue}")["status"] == "incorrect"
        assert submit(red_member, web, "CTF{user-red-number}")["status"] == "incorrect"
        shares = events(app)
        assert [e[:7] for e in shares][0] == (
            "flag_share",
            red_ids[1],
            blue_web,
            "team",
            blue_id,
            web,
            f"team {red_id} submitted the flag of team {blue_id}",
        )
        assert len(shares) == 2 and shares[1][3:5] == ("user", red_id)
        assert submit(red_member, web, "CTF{red}")["status"] == "correct"


def test_warm_pool_flag_is_nobodys(backend, make_ctfd, container_tables, key_file):
    """A flag still owned by the warm pool (src/sql/003_warm_pool.sql's account_kind 'pool'):
    incorrect for everyone, and no flag_share event (the pool is no account)."""
    with make_ctfd(backend) as app, app.app_context():
        container_tables(app.db)
        if app.db.engine.dialect.name == "mysql":
            app.db.session.execute(
                text("ALTER TABLE container_flags MODIFY COLUMN account_kind ENUM('team','user','pool') NOT NULL")
            )
            app.db.session.commit()
        admin = login_as_user(app, name="admin")
        web = new_challenge(admin, "web")
        register_user(app)
        player = login_as_user(app)
        add_flag(app, "CTF{still-in-the-pool}", "pool", 4242, web)
        assert submit(player, web, "CTF{still-in-the-pool}")["status"] == "incorrect"
        assert events(app) == []
        assert solves(app, web) == 0


def test_admin_preview_records_nothing(backend, make_ctfd, container_tables, key_file):
    with make_ctfd(backend) as app, app.app_context():
        container_tables(app.db)
        admin = login_as_user(app, name="admin")
        web = new_challenge(admin, "web")
        register_user(app)
        add_flag(app, "CTF{player}", "user", 2, web)
        got = submit(admin, web, "CTF{player}", preview=True)
        assert got["status"] == "incorrect"  # not the admin's own container
        assert events(app) == []
        assert solves(app, web) == 0


def test_without_key_file_static_flags_only(backend, make_ctfd, container_tables, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CTFD_CONTAINERS_FLAG_KEY_FILE", str(tmp_path / "absent.key"))
    with make_ctfd(backend) as app, app.app_context():
        container_tables(app.db)
        admin = login_as_user(app, name="admin")
        web = new_challenge(admin, "web")
        gen_flag(app.db, challenge_id=web, content="static{flag}")
        register_user(app)
        player = login_as_user(app)
        add_flag(app, "CTF{mine}", "user", 2, web)
        # CTFd's migrations re-configure logging (fileConfig) and drop pytest's root handler.
        plugin_log = logging.getLogger("CTFd.plugins.docker_challenges")
        plugin_log.addHandler(caplog.handler)
        try:
            assert submit(player, web, "CTF{mine}")["status"] == "incorrect"
            assert submit(player, web, "CTF{mine}")["status"] == "incorrect"
        finally:
            plugin_log.removeHandler(caplog.handler)
        logged = [r for r in caplog.records if "flag key file" in r.getMessage()]
        assert len(logged) == 1 and "absent.key" in logged[0].getMessage()
        assert submit(player, web, "static{flag}")["status"] == "correct"


def test_without_container_tables_static_flags_still_work(backend, make_ctfd, key_file):
    """The app has not created its tables yet: a static flag still counts; anything else is
    answered 503 (not "incorrect": an attempt that was never judged must not count)."""
    with make_ctfd(backend) as app, app.app_context():
        admin = login_as_user(app, name="admin")
        web = new_challenge(admin, "web")
        gen_flag(app.db, challenge_id=web, content="static{flag}")
        register_user(app)
        player = login_as_user(app)
        r = player.post("/api/v1/challenges/attempt", json={"challenge_id": web, "submission": "CTF{x}"})
        assert r.status_code == 503
        assert r.get_json()["data"]["status"] == "unavailable"
        assert "could not be checked" in r.get_json()["data"]["message"]
        fails = app.db.session.execute(text("SELECT COUNT(*) FROM submissions")).scalar()
        app.db.session.commit()
        assert fails == 0
        assert submit(player, web, "static{flag}")["status"] == "correct"
