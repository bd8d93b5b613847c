"""Player API (`/api/v1/containers`): status, start, extend, revert, stop of the caller's
own instance. The owner always comes from the session; the request only names a challenge
(or, to stop, one of the caller's own instances). Built per app in `namespace()`."""

import re

from CTFd.models import Challenges, Solves
from CTFd.utils.dates import ctf_paused, ctftime
from CTFd.utils.decorators import authed_only, ratelimit, require_verified_emails
from CTFd.utils.decorators.visibility import check_challenge_visibility
from CTFd.utils.user import get_current_user, is_admin
from flask import request
from flask_restx import Namespace, Resource

from . import config
from .client import ServiceError
from .models import DockerChallenge
from .owners import current_owner
from .spec import service_id

INSTANCE_ID = re.compile(r"[0-9a-f]{32}")
PLAYER_FIELDS = ("id", "state", "expires_at", "remaining_seconds", "extensions_used", "extensions_left")
CONNECTION_FIELDS = ("protocol", "mode", "host", "port", "url", "command", "alternatives", "hint")


class Refused(Exception):
    def __init__(self, status, code, message, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


def player_view(instance):
    """Only what a player may see of an instance (no owner ids, no internals)."""
    if not instance:
        return None
    view = {key: instance.get(key) for key in PLAYER_FIELDS}
    view["connection"] = [{k: c.get(k) for k in CONNECTION_FIELDS} for c in instance.get("connection", [])]
    return view


def _fail(status, code, message, details=None):
    return {"success": False, "error": {"code": code, "message": message, "details": details or {}}}, status


def _challenge_for(challenge_id):
    """The docker challenge the caller may act on now, or Refused saying why not."""
    if not ctftime() and not is_admin():
        raise Refused(403, "CTF_NOT_RUNNING", "The CTF is not running.")
    if ctf_paused() and not is_admin():
        raise Refused(403, "CTF_PAUSED", "The CTF is paused.")
    owner = current_owner()
    if owner is None:
        raise Refused(403, "NO_TEAM", "Join a team first.")
    try:
        challenge = DockerChallenge.query.filter_by(id=int(challenge_id)).first()
    except (TypeError, ValueError):
        challenge = None
    if challenge is None or (challenge.state == "hidden" and not is_admin()):
        raise Refused(404, "CHALLENGE_NOT_FOUND", "No such challenge.")
    if challenge.state == "locked" and not is_admin():
        raise Refused(403, "CHALLENGE_LOCKED", "This challenge is locked.")
    if not is_admin() and not _prerequisites_met(challenge):
        raise Refused(403, "CHALLENGE_LOCKED", "Solve the challenge's prerequisites first.")
    return challenge, owner


def _prerequisites_met(challenge):
    required = set((challenge.requirements or {}).get("prerequisites", []))
    if not required:
        return True
    existing = {c.id for c in Challenges.query.with_entities(Challenges.id).all()}
    solved = {
        s.challenge_id
        for s in Solves.query.with_entities(Solves.challenge_id).filter_by(
            account_id=get_current_user().account_id
        )
    }
    return required & existing <= solved


def _body():
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _live(owner, challenge):
    items = config.platform_client().find(owner, service_id(challenge.id))
    return next((i for i in items if i["state"] in ("starting", "running")), None)


def _names_for(details):
    """INSTANCE_LIMIT_REACHED names the running instance: add its challenge's CTFd name and id."""
    for item in details.get("instances", []):
        chal_id = str(item.get("challenge", "")).removeprefix("ctfd-")
        chal = Challenges.query.filter_by(id=int(chal_id)).first() if chal_id.isdigit() else None
        item["challenge_id"] = chal.id if chal else None
        item["challenge_name"] = chal.name if chal else item.get("challenge")
    return details


def _answer(action):
    """Run `action()` -> (instance, status); turn refusals and service errors into the envelope."""
    try:
        instance, status = action()
    except Refused as exc:
        return _fail(exc.status, exc.code, exc.message, exc.details)
    except ServiceError as exc:
        status = exc.status if exc.status and exc.status < 500 else 503
        if exc.code in ("SERVICE_UNAVAILABLE", "SERVICE_NOT_CONFIGURED", "DATABASE_UNAVAILABLE"):
            return _fail(503, "SERVICE_UNAVAILABLE", "The instance service is unavailable. Try again later.")
        if exc.code == "INSTANCE_START_FAILED":
            status = 502
        return _fail(status, exc.code, exc.message, _names_for(exc.details))
    return {"success": True, "data": {"instance": player_view(instance)}}, status


def namespace():
    ns = Namespace("containers", description="Your team's own challenge instances")

    @ns.route("")
    class Containers(Resource):
        @authed_only
        @check_challenge_visibility
        @require_verified_emails
        def get(self):
            def action():
                challenge, owner = _challenge_for(request.args.get("challenge_id"))
                return _live(owner, challenge), 200

            return _answer(action)

        @authed_only
        @check_challenge_visibility
        @require_verified_emails
        @ratelimit(method="POST", limit=10, interval=60, key_prefix="docker_start")
        def post(self):
            def action():
                challenge, owner = _challenge_for(_body().get("challenge_id"))
                return config.platform_client().start(service_id(challenge.id), owner), 200

            return _answer(action)

        @authed_only
        @check_challenge_visibility
        @require_verified_emails
        @ratelimit(method="PATCH", limit=10, interval=60, key_prefix="docker_extend")
        def patch(self):
            def action():
                challenge, owner = _challenge_for(_body().get("challenge_id"))
                live = _require_live(owner, challenge)
                return config.platform_client().extend(live["id"], owner), 200

            return _answer(action)

        @authed_only
        @check_challenge_visibility
        @require_verified_emails
        @ratelimit(method="DELETE", limit=20, interval=60, key_prefix="docker_stop")
        def delete(self):
            def action():
                body = _body()
                if body.get("instance_id"):  # "stop the instance that holds your slot"
                    owner = current_owner()
                    if owner is None:
                        raise Refused(403, "NO_TEAM", "Join a team first.")
                    instance_id = str(body["instance_id"])
                    if not INSTANCE_ID.fullmatch(instance_id):
                        raise Refused(404, "INSTANCE_NOT_FOUND", "No such instance.")
                    return config.platform_client().stop(instance_id, owner), 200
                challenge, owner = _challenge_for(body.get("challenge_id"))
                return config.platform_client().stop(_require_live(owner, challenge)["id"], owner), 200

            return _answer(action)

    @ns.route("/revert")
    class Revert(Resource):
        @authed_only
        @check_challenge_visibility
        @require_verified_emails
        @ratelimit(method="POST", limit=10, interval=60, key_prefix="docker_revert")
        def post(self):
            def action():
                challenge, owner = _challenge_for(_body().get("challenge_id"))
                live = _require_live(owner, challenge)
                return config.platform_client().revert(live["id"], owner), 200

            return _answer(action)

    return ns


def _require_live(owner, challenge):
    live = _live(owner, challenge)
    if live is None:
        raise Refused(404, "INSTANCE_NOT_FOUND", "You have no running instance of this challenge.")
    return live
