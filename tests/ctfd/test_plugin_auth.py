"""The identity endpoint nginx's auth_request asks: /plugins/docker_challenges/auth.

How to run (from the repository root; CTFD_PATH is a CTFd 3.8.7 checkout with its venv):

    CTFD_PATH=/work/ctfd /work/ctfd/.venv/bin/python -m pytest -p no:cacheprovider -q tests/ctfd

Requests are made the way nginx makes them (nginx/ctfd-containers.conf): GET, no body, no
Content-Type, with X-Original-Method and X-Original-URI, and the client's Cookie, CSRF-Token and
Authorization. Besides the answers, the tests check that the endpoint writes nothing to the
cache (CTFd's sessions live there: Redis in production), sends no Set-Cookie, keeps the
session's nonce, and runs at most one SQL statement.
"""

import os

import pytest

if not os.environ.get("CTFD_PATH"):
    pytest.skip("CTFD_PATH is not set (a CTFd 3.8.7 checkout with its venv)", allow_module_level=True)

import contextlib  # noqa: E402
import datetime  # noqa: E402

from sqlalchemy import event, text  # noqa: E402

from CTFd.cache import cache, clear_user_session  # noqa: E402
from tests.helpers import gen_team, login_as_user, register_user  # noqa: E402

AUTH = "/plugins/docker_challenges/auth"


def ask(client, method="GET", uri="/api/v1/container?challenge_id=1", headers=None):
    """The subrequest nginx sends for a client request `method uri`."""
    h = {"X-Original-Method": method, "X-Original-URI": uri}
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    return client.get(AUTH, headers=h)


def nonce_of(client):
    with client.session_transaction() as s:
        return s["nonce"]


@contextlib.contextmanager
def watching(app):
    """Record every cache write and every SQL statement while the block runs."""
    writes, statements = [], []
    originals = {}
    for name in ("set", "add", "delete", "inc", "dec", "set_many", "delete_many", "clear"):
        if not hasattr(cache, name):
            continue
        original = getattr(cache, name)
        originals[name] = original

        def spy(*args, _name=name, _original=original, **kwargs):
            writes.append((_name, args[:1]))
            return _original(*args, **kwargs)

        setattr(cache, name, spy)

    def on_statement(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = app.db.engine
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        yield writes, statements
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        for name in originals:
            delattr(cache, name)  # back to the class's methods


def assert_untouched(r):
    assert "Set-Cookie" not in r.headers
    assert r.get_data() == b""


def test_session(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        register_user(app)
        player = login_as_user(app)
        nonce = nonce_of(player)
        with watching(app) as (writes, statements):
            r = ask(player)
        assert r.status_code == 204
        assert r.headers["X-CTFd-User-Id"] == "2"
        assert "X-CTFd-Admin" not in r.headers and "X-CTFd-Team-Id" not in r.headers
        assert r.headers["X-CTFd-Nonce"] == nonce
        assert_untouched(r)
        assert writes == [], "no cache (session) write"
        assert len(statements) == 1, statements  # the session's user row
        assert nonce_of(player) == nonce  # no login_user(): the nonce the page holds stays valid

        admin = login_as_user(app, name="admin")
        r = ask(admin)
        assert r.status_code == 204
        assert (r.headers["X-CTFd-User-Id"], r.headers["X-CTFd-Admin"]) == ("1", "1")
        assert r.headers["X-CTFd-Nonce"] == nonce_of(admin)


def test_no_session(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        anonymous = app.test_client()
        with watching(app) as (writes, statements):
            r = ask(anonymous)
            r2 = ask(anonymous, method="POST")
        assert (r.status_code, r2.status_code) == (401, 401)
        assert_untouched(r)
        assert_untouched(r2)
        assert "X-CTFd-User-Id" not in r.headers
        assert writes == [] and statements == []
        # A cookie that is not a session: 401 as well.
        anonymous.set_cookie("localhost", "session", "forged")
        assert ask(anonymous).status_code == 401


def test_csrf_for_unsafe_methods(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        register_user(app)
        player = login_as_user(app)
        nonce = nonce_of(player)
        for method in ("POST", "PATCH", "DELETE", "PUT"):
            r = ask(player, method=method)
            assert r.status_code == 403, method
            assert_untouched(r)
            assert "X-CTFd-User-Id" not in r.headers
        assert ask(player, method="POST", headers={"CSRF-Token": "0" * 64}).status_code == 403
        # The nonce in the CSRF-Token header (CTFd.fetch sends it).
        r = ask(player, method="POST", headers={"CSRF-Token": nonce})
        assert r.status_code == 204 and r.headers["X-CTFd-User-Id"] == "2"
        assert ask(player, method="delete", headers={"CSRF-Token": nonce}).status_code == 204
        # The nonce in the original URI's query (the admin page's form actions).
        r = ask(player, method="POST", uri=f"/admin/containers/stop?nonce={nonce}")
        assert r.status_code == 204
        assert_untouched(r)
        assert ask(player, method="POST", uri=f"/admin/containers/stop?x=1&nonce={nonce}").status_code == 204
        assert ask(player, method="POST", uri="/admin/containers/stop?nonce=bad").status_code == 403
        assert ask(player, method="POST", uri=f"/admin/containers/stop?nonce={nonce}&nonce=x").status_code == 403
        assert ask(player, method="POST", uri=f"/admin/containers/stop#nonce={nonce}").status_code == 403
        # Safe methods need no nonce; without X-Original-Method the method counts as unsafe.
        for method in ("GET", "HEAD", "OPTIONS"):
            assert ask(player, method=method).status_code == 204, method
        assert ask(player, method=None).status_code == 403
        assert nonce_of(player) == nonce


def test_token(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        register_user(app)
        player = login_as_user(app)
        r = player.post("/api/v1/tokens", json={"description": "curl"})
        assert r.status_code == 200, r.get_json()
        token = r.get_json()["data"]["value"]
        anonymous = app.test_client()
        with watching(app) as (writes, statements):
            r = ask(anonymous, method="POST", headers={"Authorization": f"Token {token}"})
        assert r.status_code == 204  # a token needs no CSRF nonce
        assert r.headers["X-CTFd-User-Id"] == "2"
        assert "X-CTFd-Nonce" not in r.headers
        assert_untouched(r)
        assert writes == [], "no session is created for a token"
        assert len(statements) == 1, statements  # the token's row, with its user
        assert ask(anonymous, headers={"Authorization": f"token {token}"}).status_code == 204

        for bad in (f"Token {token}x", "Token ", "Token", f"Token ctfd_{'0' * 64}"):
            r = ask(anonymous, headers={"Authorization": bad})
            assert r.status_code == 401, bad
            assert_untouched(r)
        # Only the scheme Token: CTFd itself would take any word, e.g. Bearer.
        assert ask(anonymous, headers={"Authorization": f"Bearer {token}"}).status_code == 401
        # Another scheme (e.g. Basic from a site-wide password) leaves the session in charge.
        r = ask(player, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert r.status_code == 204 and r.headers["X-CTFd-User-Id"] == "2"

        # An expired token; a token of a deleted user.
        from CTFd.models import Users
        from CTFd.utils.security.auth import generate_user_token

        user = Users.query.filter_by(id=2).first()
        old = generate_user_token(user, expiration=datetime.datetime.utcnow() - datetime.timedelta(seconds=1))
        assert ask(anonymous, headers={"Authorization": f"Token {old.value}"}).status_code == 401
        app.db.session.execute(text("DELETE FROM users WHERE id = 2"))
        app.db.session.commit()
        assert ask(anonymous, headers={"Authorization": f"Token {token}"}).status_code == 401


def test_missing_original_uri_is_not_found(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        register_user(app)
        player = login_as_user(app)
        r = player.get(AUTH)
        assert r.status_code == 404
        assert_untouched(r)
        assert "X-CTFd-User-Id" not in r.headers
        r = player.get(AUTH, headers={"X-Original-Method": "GET"})
        assert r.status_code == 404


def test_team_mode_headers(backend, make_ctfd):
    with make_ctfd(backend, user_mode="teams") as app, app.app_context():
        team = gen_team(app.db, name="red", email="red@examplectf.com", member_count=2)
        member = team.members[0]
        client = login_as_user(app, name=member.name)
        r = ask(client)
        assert r.status_code == 204
        assert r.headers["X-CTFd-User-Id"] == str(member.id)
        assert r.headers["X-CTFd-Team-Id"] == str(team.id)


def test_identity_only_banned_and_password_change(backend, make_ctfd):
    """Bans are the application's to refuse (USER_BANNED, a sentence for the player): a banned
    user's valid session is still an identity. A password change voids older sessions, as in
    CTFd. CTFd's own hooks (banned page, forced password change redirect) do not run here."""
    with make_ctfd(backend) as app, app.app_context():
        register_user(app)
        player = login_as_user(app)
        app.db.session.execute(text("UPDATE users SET banned = :t, change_password = :t WHERE id = 2"), {"t": True})
        app.db.session.commit()
        clear_user_session(user_id=2)  # CTFd caches user attributes: let its hooks see the ban
        assert player.get("/challenges").status_code == 403  # CTFd itself refuses the banned user
        r = ask(player)
        assert r.status_code == 204 and r.headers["X-CTFd-User-Id"] == "2"
        assert_untouched(r)

        from CTFd.models import Users

        user = Users.query.filter_by(id=2).first()
        user.password = "another password"
        app.db.session.commit()
        assert ask(player).status_code == 401
        assert ask(player, method="POST", headers={"CSRF-Token": "x"}).status_code == 401


def test_deleted_user_session(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        register_user(app)
        player = login_as_user(app)
        app.db.session.execute(text("DELETE FROM users WHERE id = 2"))
        app.db.session.commit()
        assert ask(player).status_code == 401


def test_ctfd_csrf_hook_is_bypassed(backend, make_ctfd):
    """The view is marked bypass_csrf_protection, and CTFd's hooks never see the request: an
    anonymous GET would otherwise get a fresh session with a nonce (a cache write, a cookie)."""
    with make_ctfd(backend) as app, app.app_context():
        view = app.view_functions["docker_challenges_auth.auth"]
        assert getattr(view, "_bypass_csrf", False) is True
        anonymous = app.test_client()
        assert "Set-Cookie" in anonymous.get("/login").headers  # what CTFd does elsewhere
        other = app.test_client()
        assert_untouched(ask(other))


def test_session_cookie_domain_for_container_sites(backend, make_ctfd, monkeypatch):
    """CTFD_CONTAINERS_SESSION_COOKIE_DOMAIN widens CTFd's session cookie to the containers'
    domain (owner-only sites, docs/exposure.md); unset, the cookie stays host-only."""
    monkeypatch.setenv("CTFD_CONTAINERS_SESSION_COOKIE_DOMAIN", ".example.org")
    with make_ctfd(backend) as app, app.app_context():
        assert app.config["SESSION_COOKIE_DOMAIN"] == ".example.org"
        # What CTFd's session interface puts on its Set-Cookie (CTFd/utils/sessions).
        assert app.session_interface.get_cookie_domain(app) == ".example.org"
    monkeypatch.delenv("CTFD_CONTAINERS_SESSION_COOKIE_DOMAIN")
    with make_ctfd(backend) as app, app.app_context():
        assert not app.config.get("SESSION_COOKIE_DOMAIN")
        assert not app.session_interface.get_cookie_domain(app)
