"""Admin pages (instances, settings) and the admin JSON endpoints behind them.

Admin endpoints call the service with the admin token; the token never reaches a browser.
"""

from CTFd.models import Challenges, Teams, Users
from CTFd.utils.decorators import admins_only
from flask import Blueprint, redirect, render_template, request, url_for
from flask_restx import Namespace, Resource

from . import config
from .client import ServiceError
from .owners import describe


def blueprint(plugin_dir):
    bp = Blueprint(f"{plugin_dir}_admin", __name__, template_folder="templates")

    @bp.route("/admin/docker_challenges", methods=["GET"])
    @admins_only
    def instances():
        return render_template("docker_challenges/instances.html", plugin_dir=plugin_dir)

    @bp.route("/admin/docker_challenges/settings", methods=["GET", "POST"])
    @admins_only
    def settings():
        if request.method == "POST":
            for key in config.KEYS:
                value = request.form.get(key, "").strip()
                # An empty secret field means "keep the stored one": it is never shown back.
                if key in config.SECRETS and not value:
                    continue
                config.put(key, value)
            return redirect(url_for(f"{plugin_dir}_admin.settings", saved=1))
        status = _service_status()
        return render_template(
            "docker_challenges/settings.html",
            service_url=config.get("service_url") or "",
            masked={key: config.masked(key) for key in config.SECRETS},
            status=status,
            saved=request.args.get("saved"),
        )

    return bp


def _service_status():
    try:
        config.admin_client().ready()
        stats = config.admin_client().admin_stats()
        return {
            "ok": True,
            "text": f"reachable; {stats['occupying']} of {stats['capacity']} instances in use",
        }
    except ServiceError as exc:
        return {"ok": False, "text": f"{exc.code}: {exc.message}"}


def _error(exc):
    status = 503 if exc.code in ("SERVICE_UNAVAILABLE", "SERVICE_NOT_CONFIGURED") else (exc.status or 502)
    return {
        "success": False,
        "error": {"code": exc.code, "message": exc.message, "details": exc.details},
    }, status


def _owner_name(owner):
    kind, number = describe(owner)
    model = Teams if kind == "team" else Users
    row = model.query.filter_by(id=number).first() if number else None
    return {"owner": owner, "kind": kind, "id": number, "name": row.name if row else owner}


def _challenge_name(service_challenge, cache):
    if service_challenge not in cache:
        number = str(service_challenge).removeprefix("ctfd-")
        chal = Challenges.query.filter_by(id=int(number)).first() if number.isdigit() else None
        cache[service_challenge] = {
            "id": chal.id if chal else None,
            "name": chal.name if chal else service_challenge,
        }
    return cache[service_challenge]


def namespace():
    ns = Namespace("docker_admin", description="Admin view of every instance")

    @ns.route("/instances")
    class Instances(Resource):
        @admins_only
        def get(self):
            params = {
                k: request.args[k] for k in ("page", "per_page", "owner", "state") if request.args.get(k)
            }
            if request.args.get("challenge_id"):
                if not request.args["challenge_id"].isdigit():
                    return {
                        "success": False,
                        "error": {"code": "VALIDATION_FAILED", "message": "challenge_id"},
                    }, 400
                params["challenge"] = f"ctfd-{int(request.args['challenge_id'])}"
            try:
                page = config.admin_client().admin_instances(**params)
            except ServiceError as exc:
                return _error(exc)
            names = {}
            for item in page["items"]:
                item["owner_info"] = _owner_name(item["owner"])
                item["challenge_info"] = _challenge_name(item["challenge"], names)
            return {"success": True, "data": page}

        @admins_only
        def delete(self):
            try:
                challenge = f"ctfd-{int(request.args['challenge_id'])}"
                return {"success": True, "data": config.admin_client().admin_stop_challenge(challenge)}
            except (KeyError, ValueError):
                return {
                    "success": False,
                    "error": {"code": "VALIDATION_FAILED", "message": "challenge_id"},
                }, 400
            except ServiceError as exc:
                return _error(exc)

    @ns.route("/instances/<string:instance_id>")
    class Instance(Resource):
        @admins_only
        def delete(self, instance_id):
            try:
                return {"success": True, "data": config.admin_client().admin_stop(instance_id)}
            except ServiceError as exc:
                return _error(exc)

    @ns.route("/instances/<string:instance_id>/extend")
    class Extend(Resource):
        @admins_only
        def post(self, instance_id):
            try:
                return {"success": True, "data": config.admin_client().admin_extend(instance_id)}
            except ServiceError as exc:
                return _error(exc)

    @ns.route("/flag-shares")
    class FlagShares(Resource):
        @admins_only
        def get(self):
            params = {k: request.args[k] for k in ("page", "per_page") if request.args.get(k)}
            try:
                page = config.admin_client().admin_flag_shares(**params)
            except ServiceError as exc:
                return _error(exc)
            names = {}
            for item in page["items"]:
                item["submitter_info"] = _owner_name(item["submitter"])
                item["flag_owner_info"] = _owner_name(item["flag_owner"])
                item["challenge_info"] = _challenge_name(item["challenge"], names)
            return {"success": True, "data": page}

    return ns
