"""CTFd plugin `docker_challenges`: the CTFd side of ctfd-containers.

- the challenge type `docker` (table `docker_challenge`, the contract the C application reads;
  created by the plugin's migration), with admin forms that check the settings exactly as the
  application will;
- flag checks against the application's per-container flags (`container_flags`), static flags
  still accepted, another account's flag refused and recorded;
- the identity endpoint nginx asks before every request to the application
  (/plugins/docker_challenges/auth);
- the player view (Start, Extend, Revert, Stop, connection info, countdown), which talks to the
  application's /api/v1/container through nginx;
- the admin menu entry "Containers" (/admin/containers, a page the application serves).

The plugin talks to no service and starts nothing: it shares CTFd's database with the app.
"""

import os

from CTFd.plugins import register_admin_plugin_menu_bar, register_plugin_assets_directory
from CTFd.plugins.challenges import CHALLENGE_CLASSES
from CTFd.plugins.migrations import upgrade

from . import auth
from .challenge_type import PLUGIN_DIR, DockerChallengeType, FlagCheckUnavailable, unavailable_answer


def load(app):
    from CTFd.api import CTFd_API_v1  # importing it needs an app: CTFd loads plugins inside one

    upgrade(plugin_name=PLUGIN_DIR)  # SQLite: create_all(); others: migrations/
    CHALLENGE_CLASSES["docker"] = DockerChallengeType
    CTFd_API_v1.errorhandler(FlagCheckUnavailable)(unavailable_answer)
    app.jinja_env.globals["docker_challenges_dir"] = PLUGIN_DIR  # the forms' shared include
    register_plugin_assets_directory(app, base_path=f"/plugins/{PLUGIN_DIR}/assets/")
    app.register_blueprint(auth.blueprint())
    # Answer the auth endpoint before CTFd's own before_request hooks (see auth.py).
    app.before_request_funcs.setdefault(None, []).insert(0, auth.preempt)
    register_admin_plugin_menu_bar("Containers", "/admin/containers")
    # Owner-only container sites (docs/exposure.md): CTFd's session cookie must reach
    # NAME.containers.example.org, so its domain must cover both (e.g. ".example.org"). CTFd
    # has no setting of its own for it; nginx strips the cookie before a container sees it.
    cookie_domain = os.environ.get("CTFD_CONTAINERS_SESSION_COOKIE_DOMAIN", "").strip()
    if cookie_domain:
        app.config["SESSION_COOKIE_DOMAIN"] = cookie_domain
