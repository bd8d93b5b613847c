"""The identity endpoint nginx asks (`auth_request`) before every request to the C application.

GET /plugins/docker_challenges/auth, no body, with the client's Cookie, Authorization and
CSRF-Token headers plus X-Original-Method and X-Original-URI (Content-Type blanked by nginx, so
CTFd's own token hook never runs). Answers, with an empty body:

  204  X-CTFd-User-Id, X-CTFd-Team-Id (when the user has a team), X-CTFd-Admin: 1 (admins),
       X-CTFd-Nonce (the session's CSRF nonce; sessions only): a valid CTFd session, or a valid
       access token `Authorization: Token <value>` (scheme Token only), and for an unsafe
       original method with a session, the session's nonce in the CSRF-Token header or in the
       `nonce` query parameter of X-Original-URI (the admin page's form actions carry it there)
  401  no valid session or token
  403  an unsafe original method with a session but without its nonce
  404  no X-Original-URI: not a subrequest from nginx (nginx marks its location internal too)

Identity only: bans, hiding, team membership and admin rights are re-read from the database by
the application on every request (docs/api.md, "Who may call"), so a banned user's valid
session still gets 204 here and the app answers USER_BANNED/TEAM_BANNED with its own sentence.

Cheap and write-free by construction: `preempt` runs as the app's first before_request hook
and answers this endpoint itself, so none of CTFd's hooks run for it (they may write the
tracking table, rotate a session for a forced password change, or create a CSRF nonce). It
reads the session without modifying it (so CTFd's session interface saves nothing and sends no
Set-Cookie), never calls login_user, and runs one indexed SELECT: the session's user row (to
check the session's password hash as CTFd does) or the token's row joined to its user.
"""

import datetime
import hmac
from urllib.parse import parse_qs, urlsplit

from CTFd.models import Tokens, Users, db
from CTFd.plugins import bypass_csrf_protection
from CTFd.utils.security.signing import hmac as ctfd_hmac
from flask import Blueprint, Response, request, session
from sqlalchemy import and_, select

PATH = "/plugins/docker_challenges/auth"
ENDPOINT = "docker_challenges_auth.auth"
SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
#: the methods nginx's auth subrequest may arrive with (it is a GET; the rest are tolerated)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def blueprint():
    """A fresh blueprint per app (tests create several apps in one process)."""
    bp = Blueprint("docker_challenges_auth", __name__)
    bp.add_url_rule(PATH, "auth", bypass_csrf_protection(answer), methods=METHODS)
    return bp


def preempt():
    """First before_request hook: answer the auth endpoint before CTFd's hooks run."""
    if request.endpoint == ENDPOINT:
        return answer()
    return None


def answer():
    if "X-Original-URI" not in request.headers:
        return _status(404)
    method = request.headers.get("X-Original-Method", "").strip().upper()
    scheme, _, credential = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "token":
        user = _token_user(credential.strip())
        return _status(401) if user is None else _allowed(user, nonce=None)
    # Any other Authorization scheme (e.g. Basic from a site-wide password) is not ours.
    user = _session_user()
    if user is None:
        return _status(401)
    nonce = session.get("nonce")
    if method not in SAFE_METHODS and not _nonce_given(nonce):
        return _status(403)
    return _allowed(user, nonce=nonce)


def _session_user():
    """The session's user row (id, type, team_id), if the session is a valid CTFd login."""
    user_id = session.get("id")  # reading never marks the session modified
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        return None
    users = Users.__table__
    row = db.session.execute(
        select(users.c.id, users.c.type, users.c.team_id, users.c.password).where(
            users.c.id == user_id
        )
    ).first()
    if row is None:
        return None
    # As CTFd's get_current_user(): a session made before a password change is void.
    session_hash = session.get("hash")
    if session_hash and not _equal(session_hash, ctfd_hmac(row.password or "")):
        return None
    return row


def _token_user(value):
    """The user row of a valid access token (CTFd's `tokens`, type user, not expired)."""
    if not value:
        return None
    users, tokens = Users.__table__, Tokens.__table__
    row = db.session.execute(
        select(users.c.id, users.c.type, users.c.team_id, tokens.c.expiration)
        .select_from(tokens.join(users, users.c.id == tokens.c.user_id))
        .where(and_(tokens.c.value == value, tokens.c.type == "user"))
    ).first()
    if row is None or row.expiration is None:
        return None
    if datetime.datetime.utcnow() >= row.expiration:  # CTFd's own test
        return None
    return row


def _nonce_given(nonce):
    """The session's nonce is in the CSRF-Token header or the original URI's query."""
    if not nonce:
        return False
    if _equal(request.headers.get("CSRF-Token", ""), nonce):
        return True
    query = urlsplit(request.headers.get("X-Original-URI", "")).query
    given = parse_qs(query, keep_blank_values=True).get("nonce", [])
    return len(given) == 1 and _equal(given[0], nonce)


def _equal(a, b):
    return hmac.compare_digest(str(a).encode("utf-8"), str(b).encode("utf-8"))


def _allowed(user, nonce):
    response = _status(204)
    response.headers["X-CTFd-User-Id"] = str(user.id)
    if user.team_id:
        response.headers["X-CTFd-Team-Id"] = str(user.team_id)
    if user.type == "admin":
        response.headers["X-CTFd-Admin"] = "1"
    if nonce:
        response.headers["X-CTFd-Nonce"] = str(nonce)
    return response


def _status(code):
    return Response(status=code)
