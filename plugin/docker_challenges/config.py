"""The plugin's settings, kept in CTFd's config table and read at call time (never at import)."""

from CTFd.utils import get_config, set_config

from .client import InstancerClient

PREFIX = "docker_challenges:"
KEYS = ("service_url", "platform_token", "admin_token")
SECRETS = ("platform_token", "admin_token")


def get(key, default=None):
    return get_config(PREFIX + key, default)


def put(key, value):
    set_config(PREFIX + key, value)


def masked(key):
    """A secret as an admin may see it again: its last four characters."""
    value = get(key) or ""
    return ("…" + value[-4:]) if value else ""


def platform_client():
    return InstancerClient(get("service_url"), get("platform_token"))


def admin_client():
    return InstancerClient(get("service_url"), get("admin_token"))
