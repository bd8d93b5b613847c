"""CTFd plugin `docker_challenges`: per-team challenge instances served by the instancer service.

`load(app)` only wires things up. The plugin keeps no state of its own beyond the challenge
columns and three settings, starts no thread, and talks to the service over HTTP only.
"""

from CTFd.api import CTFd_API_v1
from CTFd.plugins import register_admin_plugin_menu_bar, register_plugin_assets_directory
from CTFd.plugins.challenges import CHALLENGE_CLASSES

from . import admin, api, schema
from .challenge_type import PLUGIN_DIR, DockerChallengeType


def load(app):
    schema.ensure(app.db)  # the docker_challenge table and its later columns, on any database
    CHALLENGE_CLASSES["docker"] = DockerChallengeType
    app.jinja_env.globals["docker_challenges_dir"] = PLUGIN_DIR  # for the forms' shared include
    register_plugin_assets_directory(app, base_path=f"/plugins/{PLUGIN_DIR}/assets/")
    CTFd_API_v1.add_namespace(api.namespace(), "/containers")
    CTFd_API_v1.add_namespace(admin.namespace(), "/docker_admin")
    app.register_blueprint(admin.blueprint(PLUGIN_DIR))
    register_admin_plugin_menu_bar("Instances", "/admin/docker_challenges")
