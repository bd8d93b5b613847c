"""The challenge spec: what an organiser writes (YAML or JSON) to describe a challenge.

One validator for every entry point (API, CLI). A spec has a list of containers that
share one private network per instance; the short form (`image`, `ports`, ... at the
top level) is the common single-container case and is normalised into that list.
Pure values: no I/O here.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import flags
from .dependencies import DependencyError, start_order
from .errors import ValidationFailed

CHALLENGE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
CONTAINER_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,30}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# A Docker image reference: [registry[:port]/]repository[:tag][@sha256:digest], lower-case repository.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_PATTERN = (
    rf"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
# Linux capabilities a spec may add back; everything is dropped by default.
ALLOWED_CAPABILITIES = frozenset(
    {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE", "KILL", "SYS_CHROOT"}
)
_SYSTEM_DIRS = frozenset({"proc", "sys", "dev"})
# Swarm placement constraints a spec may give: equality on a node label, host name, role or
# platform; nothing that could name engine internals. Values are plain words.
_WORD = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
PLACEMENT_PATTERN = (
    rf"^node\.(?:labels\.{_WORD}|hostname|role|platform\.os|platform\.arch)\s*(?:==|!=)\s*{_WORD}$"
)
_SHORT_FORM_KEYS = ("image", "ports", "env", "command", "resources", "cap_add", "healthcheck")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Protocol(StrEnum):
    HTTP = "http"
    TCP = "tcp"


class Expose(StrEnum):
    """How players reach an exposed port.

    | mode      | reached at                                  | needs            |
    |-----------|---------------------------------------------|------------------|
    | `port`    | `<public host>:<host port from the pool>`   | nothing          |
    | `http`    | `https://<slug>.<domain>/`, by Host name    | the proxy        |
    | `tcp-tls` | `<slug>.<domain>:<tcp port>`, TLS with SNI  | the proxy        |
    """

    PORT = "port"
    HTTP = "http"
    TCP_TLS = "tcp-tls"


class Port(_Strict):
    """A container port players reach. `protocol` is what the service speaks (`http` gets a
    URL, `tcp` a command line); `expose` how it is reached (default: the service's setting)."""

    port: int = Field(strict=True, ge=1, le=65535)
    protocol: Protocol = Protocol.TCP
    expose: Expose | None = Field(
        default=None, description="`port`, `http` or `tcp-tls`; default: INSTANCER_EXPOSE_DEFAULT."
    )

    @model_validator(mode="before")
    @classmethod
    def _http_speaks_http(cls, data: Any) -> Any:
        """`expose: http` implies `protocol: http`; saying otherwise is a mistake worth naming."""
        if not isinstance(data, dict) or data.get("expose") != Expose.HTTP.value:
            return data
        if data.get("protocol", Protocol.HTTP.value) != Protocol.HTTP.value:
            raise ValueError("a port exposed as `http` must have `protocol: http`")
        return {**data, "protocol": Protocol.HTTP.value}

    @model_validator(mode="after")
    def _tls_carries_tcp(self) -> Self:
        if self.expose is Expose.TCP_TLS and self.protocol is not Protocol.TCP:
            raise ValueError("`tcp-tls` carries raw TCP; expose an http port as `http` instead")
        return self

    def mode(self, default_proxy: bool) -> Expose:
        """The exposure this port gets when the spec leaves it to the service's default."""
        if self.expose is not None:
            return self.expose
        if not default_proxy:
            return Expose.PORT
        return Expose.HTTP if self.protocol is Protocol.HTTP else Expose.TCP_TLS


class Resources(_Strict):
    memory_mib: int = Field(strict=True, default=256, ge=16, le=65536, description="Memory limit, MiB.")
    cpus: float = Field(strict=True, default=0.5, gt=0, le=64, description="CPU limit, in cores.")
    pids: int = Field(strict=True, default=256, ge=16, le=65536, description="Process/thread limit.")


class Healthcheck(_Strict):
    """A command the engine runs inside the container to tell whether it is healthy (Docker's
    HEALTHCHECK). Containers that depend on this one start only once it is healthy.

    The engine runs it every `interval_seconds` for the container's whole life (the first run
    one interval after the start), so a short interval makes starts quick and costs CPU.
    """

    command: tuple[str, ...] = Field(
        min_length=1, max_length=64, description="Program and arguments, run without a shell; 0 = healthy."
    )
    interval_seconds: float = Field(strict=True, default=1.0, ge=0.1, le=3600)
    timeout_seconds: float = Field(strict=True, default=5.0, ge=0.1, le=3600)
    start_period_seconds: float = Field(
        strict=True, default=0.0, ge=0, le=3600, description="Failures in this time after start do not count."
    )
    retries: int = Field(strict=True, default=3, ge=1, le=100, description="Failures in a row = unhealthy.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if any("\0" in arg for arg in self.command):
            raise ValueError("healthcheck command arguments may not contain NUL characters")
        return self


class Container(_Strict):
    name: str = Field(default="main", pattern=CONTAINER_NAME_PATTERN)
    image: str = Field(min_length=1, max_length=255, pattern=IMAGE_PATTERN)
    ports: tuple[Port, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    command: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=64)
    resources: Resources = Resources()
    cap_add: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = Field(
        default=(), max_length=9, description="Containers of this spec that start (and are healthy) first."
    )
    healthcheck: Healthcheck | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if len(set(self.depends_on)) != len(self.depends_on):
            raise ValueError("depends_on names a container twice")
        for key in self.env:
            if not re.fullmatch(ENV_NAME_PATTERN.strip("^$"), key):
                raise ValueError(f"env name {key!r} is not a valid variable name")
        if any("\0" in text for text in (*self.env.values(), *(self.command or ()))):
            raise ValueError("env values and command arguments may not contain NUL characters")
        unknown = sorted(set(self.cap_add) - ALLOWED_CAPABILITIES)
        if unknown:
            raise ValueError(f"cap_add {unknown} not allowed; allowed: {sorted(ALLOWED_CAPABILITIES)}")
        numbers = [p.port for p in self.ports]
        if len(numbers) != len(set(numbers)):
            raise ValueError("a container port is listed twice")
        return self


class Lifetime(_Strict):
    """How long an instance lives and how far players may extend it (all in seconds)."""

    seconds: int = Field(strict=True, default=3600, ge=1, le=7 * 86400)
    extension_seconds: int = Field(strict=True, default=3600, ge=1, le=7 * 86400)
    max_extensions: int = Field(strict=True, default=5, ge=0, le=1000)
    max_remaining_seconds: int = Field(strict=True, default=7200, ge=1, le=7 * 86400)
    after_solve_seconds: int | None = Field(
        strict=True,
        default=None,
        ge=0,
        le=7 * 86400,
        description=(
            "When set, the owner's correct flag brings its live instance's deadline to at most "
            "this many seconds later (0: the next reaper pass ends it), freeing the slot."
        ),
    )


class Limits(_Strict):
    """Per-challenge overrides of the global limits; `None` means the global setting."""

    per_owner: int | None = Field(strict=True, default=None, ge=1, le=1000)
    capacity: int | None = Field(
        strict=True, default=None, ge=1, le=100_000, description="Live instances of this challenge."
    )
    cooldown_seconds: float | None = Field(strict=True, default=None, ge=0, le=86400)
    extension_interval_seconds: float | None = Field(strict=True, default=None, ge=0, le=86400)


class Pool(_Strict):
    """A warm pool: instances started ahead of demand, owned by nobody until a start claims one
    (docs/decisions/0009).

    The pool filler keeps at least `min` idle (ready, or being started for the pool) and never
    more than `max`. Between the two it does nothing, so lowering `min` after a rush keeps the
    ready instances (up to `max`) for the starts to come, and `min: 0` winds a pool down without
    stopping what is ready. `max` defaults to `min`; `max: 0` (the default) is no pool.

    | idle         | the filler               |
    |--------------|--------------------------|
    | < min        | starts `min - idle`      |
    | min .. max   | does nothing             |
    | > max        | stops `idle - max`       |
    """

    min: int = Field(strict=True, default=0, ge=0, le=1000, description="Keep at least this many idle.")
    max: int = Field(
        strict=True, default=0, ge=0, le=1000, description="Never more idle than this; default: min."
    )

    @model_validator(mode="before")
    @classmethod
    def _max_defaults_to_min(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max" not in data and "min" in data:
            return {**data, "max": data["min"]}
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min > self.max:
            raise ValueError("pool.min must not be above pool.max")
        return self

    @property
    def enabled(self) -> bool:
        return self.max > 0


class Placement(_Strict):
    """Where an instance may run on a Swarm (the `docker` backend has one host and ignores it).

    Each constraint is `node.<attribute> == value` or `!=`, with attribute `labels.<key>`,
    `hostname`, `role` (`manager` or `worker`), `platform.os` or `platform.arch`; all must hold.
    E.g. `node.labels.instancer.pool==pwn` keeps a challenge on the nodes labelled for it."""

    constraints: tuple[str, ...] = Field(default=(), max_length=10)

    @model_validator(mode="after")
    def _check(self) -> Self:
        for constraint in self.constraints:
            if not re.fullmatch(PLACEMENT_PATTERN, constraint):
                raise ValueError(
                    f"placement constraint {constraint!r} is not `node.labels.KEY==VALUE` (or `!=`), "
                    "nor one on node.hostname, node.role, node.platform.os or node.platform.arch"
                )
            attribute, _, value = re.split(r"\s*(==|!=)\s*", constraint, maxsplit=1)
            if attribute == "node.role" and value not in ("manager", "worker"):
                raise ValueError("node.role is `manager` or `worker`")
        return self


class FlagSpec(_Strict):
    """How each instance's own flag is made and where it is put.

    `template` is parsed by `domain.flags` (placeholders only, never evaluated).
    """

    template: str = Field(default=flags.DEFAULT_TEMPLATE, max_length=flags.MAX_TEMPLATE_CHARS)
    env: str | None = Field(
        default="FLAG", pattern=ENV_NAME_PATTERN, description="Variable holding the flag."
    )
    file: str | None = Field(
        default=None,
        pattern=r"^/[A-Za-z0-9._/-]{1,200}$",
        description="Absolute path of a read-only file holding the flag; its directory must exist in the image.",  # noqa: E501
    )
    containers: tuple[str, ...] | None = Field(
        default=None, description="Containers that receive the flag; default: all."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        try:
            flags.parse(self.template)
        except flags.TemplateError as exc:
            raise ValueError(str(exc)) from exc
        if self.env is None and self.file is None:
            raise ValueError("the flag must go somewhere: set `env`, `file` or both")
        if self.file is not None:
            parts = self.file.split("/")
            if ".." in parts or "." in parts or self.file.endswith("/") or parts[1] in _SYSTEM_DIRS:
                raise ValueError("flag.file must be a plain absolute file path outside /proc, /sys and /dev")
        return self


class ChallengeSpec(_Strict):
    id: str = Field(pattern=CHALLENGE_ID_PATTERN)
    name: str = Field(default="", max_length=200)
    containers: tuple[Container, ...] = Field(min_length=1, max_length=10)
    lifetime: Lifetime = Lifetime()
    limits: Limits = Limits()
    flag: FlagSpec = FlagSpec()
    egress: bool = Field(
        strict=True,
        default=False,
        description=(
            "Whether instances may open connections to the internet. Never to the host, other "
            "instances, or private, loopback and link-local addresses."
        ),
    )
    pool: Pool = Pool()
    placement: Placement = Placement()

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        """Turn `image: ...` at the top level into `containers: [{name: main, image: ...}]`."""
        if not isinstance(data, dict) or not any(k in data for k in _SHORT_FORM_KEYS):
            return data
        if "containers" in data:
            raise ValueError("give either `containers` or the short form (`image`, `ports`, ...), not both")
        rest = {k: v for k, v in data.items() if k not in _SHORT_FORM_KEYS}
        rest["containers"] = [{k: data[k] for k in _SHORT_FORM_KEYS if k in data}]
        return rest

    @model_validator(mode="after")
    def _check(self) -> Self:
        names = [c.name for c in self.containers]
        if len(names) != len(set(names)):
            raise ValueError("container names must be unique")
        if self.lifetime.max_remaining_seconds < self.lifetime.seconds:
            raise ValueError("lifetime.max_remaining_seconds must be at least lifetime.seconds")
        unknown = set(self.flag.containers or ()) - set(names)
        if unknown:
            raise ValueError(f"flag.containers names unknown containers: {sorted(unknown)}")
        try:
            start_order({c.name: c.depends_on for c in self.containers})
        except DependencyError as exc:
            raise ValueError(str(exc)) from exc
        hidden = (Expose.HTTP, Expose.TCP_TLS)
        if self.pool.enabled and any(p.expose not in hidden for _, p in self.exposed):
            # A host port of an instance nobody owns yet could be found by a port scan, and the
            # instance tampered with or its flag read; a random slug cannot be found.
            raise ValueError("a pool needs `expose: http` or `expose: tcp-tls` on every exposed port")
        return self

    def pool_key(self) -> str:
        """What an instance runs, as a digest: a pooled instance started from a spec with another
        key is stale. Name, lifetime, limits and the pool's own bounds leave it unchanged; the
        containers, the flag recipe and `egress` (its network's rules) do not."""
        body = self.model_dump_json(include={"containers", "flag", "egress"})
        return hashlib.sha256(body.encode()).hexdigest()

    def gets_flag(self, container: str) -> bool:
        return self.flag.containers is None or container in self.flag.containers

    @property
    def exposed(self) -> list[tuple[Container, Port]]:
        return [(c, p) for c in self.containers for p in c.ports]


def parse_spec(data: Any, *, challenge_id: str | None = None) -> ChallengeSpec:
    """Validate a decoded spec document.

    `challenge_id`, when given (the id in the URL), fills a missing `id` and must match
    a present one.

    Raises:
        ValidationFailed: with `details.errors` listing each problem and where it is.
    """
    if not encodable(data):
        raise ValidationFailed(
            "the challenge spec is invalid",
            errors=[{"loc": "(root)", "message": "text must be valid Unicode (no lone surrogates)"}],
        )
    if challenge_id is not None and isinstance(data, dict):
        data = {"id": challenge_id, **data}
        if data["id"] != challenge_id:
            raise ValidationFailed("the spec's id differs from the id in the URL", errors=[])
    try:
        return ChallengeSpec.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("the challenge spec is invalid", errors=describe(exc)) from exc


def encodable(data: Any) -> bool:
    """True when every string in `data` can be stored as UTF-8 (JSON allows lone surrogates)."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(data, dict):
        return all(encodable(k) and encodable(v) for k, v in data.items())
    if isinstance(data, list | tuple):
        return all(encodable(v) for v in data)
    return True


def describe(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic's errors, without echoing the input back (it may hold secrets)."""
    return [
        {"loc": ".".join(str(part) for part in err["loc"]) or "(root)", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
