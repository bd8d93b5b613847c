"""The `docker` challenge type: CTFd's BaseChallenge plus the container settings and flags.

Create/update check the settings exactly as the C application will (validate.py) and answer
a sentence naming the field when one is wrong. attempt() looks the submission up among the
containers' flags first (flagcheck.py) and falls back to the challenge's static flags.
"""

import logging
from collections import namedtuple

from CTFd.exceptions.challenges import ChallengeCreateException, ChallengeUpdateException
from CTFd.models import db
from CTFd.plugins.challenges import BaseChallenge, ChallengeResponse
from CTFd.utils import config as ctfd_config
from CTFd.utils.user import get_current_user, is_admin
from flask import has_request_context
from sqlalchemy.exc import SQLAlchemyError

from . import flagcheck, validate
from .models import DockerChallenge

log = logging.getLogger(__name__)
#: the folder this plugin is installed as (CTFd.plugins.<folder>)
PLUGIN_DIR = __name__.split(".")[-2]
ASSETS = f"/plugins/{PLUGIN_DIR}/assets/"

_Form = namedtuple("_Form", ["form"])


class FlagCheckUnavailable(Exception):
    """The container flags could not be looked up: the attempt is answered 503 and not counted
    (see `unavailable_answer`, registered on CTFd's API in load())."""


def unavailable_answer(exc):
    # CTFd's attempt envelope, so the core theme shows the sentence under the flag input.
    message = "Your flag could not be checked right now; please submit it again in a moment."
    return {"success": False, "data": {"status": "unavailable", "message": message}}, 503


class DockerChallengeType(BaseChallenge):
    id = "docker"
    name = "docker"
    templates = {
        "create": ASSETS + "create.html",
        "update": ASSETS + "update.html",
        "view": ASSETS + "view.html",
    }
    scripts = {
        "create": ASSETS + "admin.js",
        "update": ASSETS + "admin.js",
        "view": ASSETS + "view.js",
    }
    challenge_model = DockerChallenge

    @classmethod
    def create(cls, request):
        data = _checked(request, creating=True, error=ChallengeCreateException)
        return super().create(_Form(data))

    @classmethod
    def read(cls, challenge):
        data = super().read(challenge)
        # read() is what players get for the challenge: the container settings only for admins.
        if has_request_context() and is_admin():
            data["docker"] = {
                key: (str(v) if key == "cpus" and v is not None else v)
                for key, v in ((k, getattr(challenge, k)) for k in DockerChallenge.SETTINGS)
            }
        return data

    @classmethod
    def update(cls, challenge, request):
        data = _checked(request, creating=False, error=ChallengeUpdateException)
        return super().update(challenge, _Form(data))

    @classmethod
    def attempt(cls, challenge, request):
        data = request.form or request.get_json()
        submission = data["submission"].strip()
        user = get_current_user()
        if user is not None:
            if ctfd_config.is_teams_mode():
                kind, account_id = "team", user.team_id
            else:
                kind, account_id = "user", user.id
            # An admin's preview (?preview=true) checks a flag but is not a submission.
            preview = bool(request.args.get("preview")) and is_admin()
            try:
                verdict = flagcheck.check(
                    db.session,
                    submission,
                    challenge.id,
                    kind,
                    account_id,
                    user.id,
                    record=not preview,
                )
            except SQLAlchemyError:
                db.session.rollback()
                log.exception("docker_challenges: flag lookup failed for challenge %s", challenge.id)
                verdict = None
            if verdict is None:
                # The lookup failed: a static flag may still be right; otherwise do not count
                # a wrong attempt that was never judged.
                response = super().attempt(challenge, request)
                if response.status == "correct":
                    return response
                raise FlagCheckUnavailable()
            if verdict.status != "unknown":
                return ChallengeResponse(status=verdict.status, message=verdict.message)
        return super().attempt(challenge, request)


def _checked(request, creating, error):
    """The request's fields with the container settings checked and converted."""
    given = request.form or request.get_json() or {}
    if not isinstance(given, dict) and not hasattr(given, "items"):
        raise error("Send the challenge's fields as a JSON object.")
    data = dict(given)
    try:
        settings = validate.clean(data, creating=creating)
    except validate.SettingError as exc:
        db.session.rollback()
        raise error(str(exc)) from None
    for key in data:
        if key not in settings and not _is_model_attribute(key):
            db.session.rollback()
            raise error(f"Unknown field '{key}'.")
    data.update(settings)
    return data


def _is_model_attribute(key):
    return not key.startswith("_") and key != "SETTINGS" and hasattr(DockerChallenge, key)
