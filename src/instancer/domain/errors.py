"""The error tree of instancer, each error with a stable code.

Codes are the contract with every client (the CTFd plugin branches on them, never on
message text). Adapters translate their library's exceptions into these once, at their
edge; the HTTP layer maps each code to a status in one table (`api/errors.py`).
Messages must never contain secrets (flags, tokens).
"""

from __future__ import annotations

from typing import Any, ClassVar


class InstancerError(Exception):
    """Base of every error instancer reports on purpose."""

    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationFailed(InstancerError):
    code = "VALIDATION_FAILED"


class ChallengeNotFound(InstancerError):
    code = "CHALLENGE_NOT_FOUND"


class InstanceNotFound(InstancerError):
    code = "INSTANCE_NOT_FOUND"


class InstanceNotRunning(InstancerError):
    code = "INSTANCE_NOT_RUNNING"


class InstanceLimitReached(InstancerError):
    code = "INSTANCE_LIMIT_REACHED"


class CapacityReached(InstancerError):
    code = "CAPACITY_REACHED"


class Cooldown(InstancerError):
    code = "COOLDOWN"


class ExtensionLimitReached(InstancerError):
    code = "EXTENSION_LIMIT_REACHED"


class ExtensionTooSoon(InstancerError):
    code = "EXTENSION_TOO_SOON"


class PortsExhausted(InstancerError):
    code = "PORTS_EXHAUSTED"


class InstanceStartFailed(InstancerError):
    code = "INSTANCE_START_FAILED"


class StoreUnavailable(InstancerError):
    """The database cannot be reached (or stayed locked past its timeout)."""

    code = "DATABASE_UNAVAILABLE"


class FlagKeyUnavailable(InstancerError):
    """A stored flag was sealed with a key that is no longer configured."""

    code = "FLAG_KEY_UNAVAILABLE"


class IsolationUnavailable(InstancerError):
    """The host firewall rules that isolate instances cannot be read or put in force here
    (no `iptables`, no privilege, or no Docker engine chains to hook into)."""

    code = "ISOLATION_UNAVAILABLE"


# --- Backend errors: raised by engine adapters, never carrying an SDK type. ---


class BackendError(InstancerError):
    """An engine call failed."""


class BackendUnavailable(BackendError):
    """The engine cannot be reached (socket gone, timeout)."""

    code = "ENGINE_UNAVAILABLE"


class ImageMissing(BackendError):
    """The challenge image is not present on the engine (no registry pull is attempted)."""

    code = "IMAGE_MISSING"


class PortUnavailable(BackendError):
    """A host port we allocated is held by something outside instancer; pick another."""

    code = "PORT_UNAVAILABLE"


class BackendRejected(BackendError):
    """The engine refused the request for a reason retrying will not fix."""

    code = "ENGINE_REJECTED"


class ContainerUnhealthy(BackendError):
    """A container others depend on turned unhealthy, or was not healthy in time, during a start."""

    code = "CONTAINER_UNHEALTHY"
