"""What the Docker-engine backends share: the low-level client, the one place docker-py and
requests exceptions become the domain's backend errors, and small readers of engine replies.

Used by `docker` (one host) and `swarm`, which never import each other. Nothing here decides
how an instance is run.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
import requests.exceptions

from ..domain.errors import BackendRejected, BackendUnavailable, ImageMissing, PortUnavailable
from ..domain.ports import Observed
from . import labels

_PORT_CLASH = ("port is already allocated", "address already in use", "bind for")
# A 5xx from the engine is its own trouble (shutting down, a store it cannot write), to be
# retried, except when the container runtime refuses what the challenge asks it to run.
_CHALLENGE_FAULTS = ("oci runtime", "executable file not found", "exec format error", "no command specified")


def client(base_url: str, timeout_seconds: float, pool_size: int = 64) -> docker.APIClient:
    """An engine client with explicit timeouts; it does not connect until its first call."""
    with translate_errors("connect"):
        return docker.APIClient(
            base_url=base_url,
            version="auto",
            timeout=timeout_seconds,  # type: ignore[arg-type]  # requests takes a float
            max_pool_size=pool_size,
        )


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn docker-py and requests failures into our own backend errors."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ImageMissing(f"the challenge image is not on the engine ({action})") from exc
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc).lower()
        if port_clash(text):
            raise PortUnavailable("a host port is held by something else") from exc
        if exc.status_code is not None and exc.status_code >= 500 and "no such image" in text:
            raise ImageMissing(f"the challenge image is not on the engine ({action})") from exc
        if _engine_trouble(exc.status_code, text):
            raise BackendUnavailable(f"the Docker engine failed to {action}; it may be restarting") from exc
        raise BackendRejected(f"the engine refused to {action}: {exc.explanation}") from exc
    except (requests.exceptions.RequestException, docker.errors.DockerException, OSError) as exc:
        raise BackendUnavailable(f"the Docker engine is unreachable ({action})") from exc


def port_clash(text: str) -> bool:
    """Whether an engine's error text says a host port is taken."""
    return any(marker in text.lower() for marker in _PORT_CLASH)


def gone(exc: BackendRejected) -> bool:
    """Whether a refused removal was refused because the object is already gone (or going)."""
    cause = exc.__cause__
    return isinstance(cause, docker.errors.NotFound) or "already in progress" in str(cause)


def _engine_trouble(status: int | None, text: str) -> bool:
    return status is not None and status >= 500 and not any(fault in text for fault in _CHALLENGE_FAULTS)


def accepts(host: str, port: int) -> bool:
    """Whether `host:port` accepts a TCP connection now (a readiness probe)."""
    try:
        with socket.create_connection((host, port), timeout=0.25):
            return True
    except OSError:
        return False


_ENGINE_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def observed_networks(networks: list[dict[str, Any]]) -> list[Observed]:
    """Labelled networks, from one engine listing, as the reconcile sees them."""
    return [
        Observed(
            kind="network",
            name=n["Name"],
            instance_id=n["Labels"][labels.INSTANCE],
            created_at=parse_engine_time(n["Created"]),
        )
        for n in networks
    ]


def parse_engine_time(value: str) -> datetime:
    """Docker's RFC 3339 times may carry nanoseconds, which `fromisoformat` refuses: drop the
    fraction (a second is precise enough for grace periods). Unparseable means 'now'."""
    match = _ENGINE_TIME.match(value)
    if match is None:
        return datetime.now(UTC)
    zone = match.group(2) or "Z"
    return datetime.fromisoformat(match.group(1) + ("+00:00" if zone == "Z" else zone)).astimezone(UTC)
