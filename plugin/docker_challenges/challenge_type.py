"""The `docker` challenge type: CTFd's BaseChallenge, with the challenge definition kept in
step with the service and flags checked by the service (static flags count too)."""

import logging

from CTFd.exceptions.challenges import ChallengeCreateException, ChallengeUpdateException
from CTFd.models import Flags, db
from CTFd.plugins.challenges import BaseChallenge, ChallengeResponse, calculate_value
from CTFd.plugins.dynamic_challenges.decay import DECAY_FUNCTIONS
from CTFd.plugins.flags import FlagException, get_flag_class
from flask import abort

from . import config
from .client import ServiceError
from .models import DockerChallenge
from .owners import current_owner
from .spec import SpecError, service_id, split_form, to_service_spec

log = logging.getLogger(__name__)
#: the folder this plugin was installed as (CTFd.plugins.<folder>), so no name is hard-wired
PLUGIN_DIR = __name__.split(".")[-2]
ASSETS = f"/plugins/{PLUGIN_DIR}/assets/"


class DockerChallengeType(BaseChallenge):
    id = "docker"
    name = "docker"
    templates = {
        "create": ASSETS + "create.html",
        "update": ASSETS + "update.html",
        "view": ASSETS + "view.html",
    }
    scripts = {
        "create": ASSETS + "create.js",
        "update": ASSETS + "update.js",
        "view": ASSETS + "view.js",
    }
    challenge_model = DockerChallenge

    @classmethod
    def create(cls, request):
        core, docker = _form(request, ChallengeCreateException)
        core.pop("type", None)
        for attr in ("initial", "minimum", "decay"):  # blank when scoring is static
            if core.get(attr) in ("", None):
                core.pop(attr, None)
        challenge = DockerChallenge(**core, **docker)
        if challenge.function in DECAY_FUNCTIONS:
            if core.get("value") and not core.get("initial"):
                challenge.initial = core["value"]
            for attr in ("initial", "minimum", "decay"):
                if getattr(challenge, attr) is None:
                    raise ChallengeCreateException(f"Missing '{attr}' but function is {challenge.function}")
        db.session.add(challenge)
        db.session.flush()  # an id, for the service's challenge id
        return _save(challenge, ChallengeCreateException)

    @classmethod
    def read(cls, challenge):
        data = super().read(challenge)
        # Players see how long an instance lives; never the image, template or resources.
        try:
            lifetime = to_service_spec(challenge).get("lifetime") or {}
        except SpecError:  # a stored advanced spec that no longer parses: the form's figures
            lifetime = {}
        data["docker"] = {
            "lifetime": lifetime.get("seconds", challenge.docker_lifetime),
            "max_extensions": lifetime.get("max_extensions", challenge.docker_max_extensions),
        }
        return data

    @classmethod
    def update(cls, challenge, request):
        core, docker = _form(request, ChallengeUpdateException)
        for attr, given in {**core, **docker}.items():
            value = given
            if attr in ("initial", "minimum", "decay"):
                try:
                    value = float(given)
                except (TypeError, ValueError) as exc:
                    raise ChallengeUpdateException(f"Invalid input for '{attr}'") from exc
            setattr(challenge, attr, value)
        return _save(challenge, ChallengeUpdateException)

    @classmethod
    def delete(cls, challenge):
        try:
            config.admin_client().delete_challenge(service_id(challenge.id))
        except ServiceError as exc:
            if exc.code != "CHALLENGE_NOT_FOUND":
                # CTFd's delete endpoint has no error channel; the service keeps a stale
                # definition, which `instancer challenge delete ctfd-<id>` removes.
                log.warning(
                    "docker challenge %s deleted in CTFd but not in the service: %s", challenge.id, exc.code
                )
        super().delete(challenge)

    @classmethod
    def attempt(cls, challenge, request):
        data = request.form or request.get_json()
        submission = str(data.get("submission", "")).strip()
        for flag in Flags.query.filter_by(challenge_id=challenge.id).all():
            try:
                if get_flag_class(flag.type).compare(flag, submission):
                    return ChallengeResponse(status="correct", message="Correct")
            except FlagException as exc:
                return ChallengeResponse(status="incorrect", message=str(exc))
        owner = current_owner()
        if owner is None or not submission:
            return ChallengeResponse(status="incorrect", message="Incorrect")
        try:
            verdict = config.platform_client().verify(service_id(challenge.id), owner, submission[:1024])
        except ServiceError as exc:
            log.warning("flag check for challenge %s failed: %s", challenge.id, exc.code)
            # Not "incorrect": that would record a wrong submission against the team's attempts.
            abort(503, "The instance service is unavailable, so your flag could not be checked; try again.")
        if verdict.get("correct"):
            return ChallengeResponse(status="correct", message="Correct")
        # A shared flag is simply wrong for the submitter; admins see the sharing event.
        return ChallengeResponse(status="incorrect", message="Incorrect")


def _form(request, error):
    """(core fields, docker fields) of the admin's form, or `error` saying what is wrong."""
    try:
        return split_form(dict(request.form or request.get_json()))
    except SpecError as exc:
        raise error(str(exc)) from exc


def _save(challenge, error):
    """Push the definition to the service, then commit (a refusal rolls everything back)."""
    _push(challenge, error)
    db.session.commit()
    return calculate_value(challenge) if challenge.function in DECAY_FUNCTIONS else challenge


def _push(challenge, error):
    """Store the challenge's definition in the service, or fail the admin's request with why."""
    try:
        spec = to_service_spec(challenge)
        config.admin_client().put_challenge(service_id(challenge.id), spec)
    except SpecError as exc:
        db.session.rollback()
        raise error(str(exc)) from exc
    except ServiceError as exc:
        db.session.rollback()
        detail = "; ".join(f"{e['loc']}: {e['message']}" for e in exc.details.get("errors", []))
        raise error(
            f"The instance service refused the challenge ({exc.code}): {exc.message} {detail}".strip()
        ) from exc
