"""Docker Compose to challenge spec: the conversion behind `instancer challenge import-compose`.

Pure: it takes a decoded compose document (the CLI loads it with PyYAML's safe loader) and
returns a spec document, every key it did not carry over (with why) and notes. It never
reads files, the environment or the engine, and it does not validate the result: the
spec's own validator (`domain.spec.parse_spec`) does, so a converted spec obeys the same
rules as a written one. Only the common subset of Compose is converted; anything else is
reported, never guessed at.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .domain.errors import ValidationFailed
from .domain.spec import ALLOWED_CAPABILITIES, CHALLENGE_ID_PATTERN, CONTAINER_NAME_PATTERN


@dataclass
class Conversion:
    """A spec document (long form) and what the conversion left out."""

    spec: dict[str, Any]
    #: (where, why) for each key or value that was not carried over
    ignored: list[tuple[str, str]] = field(default_factory=list)
    #: things an organiser should check that are not losses
    notes: list[str] = field(default_factory=list)


# Why common keys are left out; any other key gets _UNSUPPORTED.
_WHY = {
    "version": "obsolete in Compose, and meaningless here",
    "volumes": "instances have no volumes: put the files in the image",
    "networks": "each instance has one private network; containers reach each other by name",
    "secrets": "not supported: the instance's flag is its only secret",
    "configs": "not supported: put the files in the image",
    "build": "instancer never builds or pulls: build the image on the engine and give `image`",
    "privileged": "containers never run privileged",
    "network_mode": "each instance has its own network",
    "restart": "instancer sets its own restart policy (unless-stopped)",
    "container_name": "container names are made per instance",
    "hostname": "a container's host name is its service name",
    "env_file": "env files are not read: list the variables under `environment`",
    "entrypoint": "the image's entrypoint is kept; only `command` can be changed",
    "cap_drop": "every capability is dropped already",
    "expose": "containers of an instance reach each other on every port",
}
_UNSUPPORTED = "not supported by the challenge spec"
_BYTES = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def convert(document: Any, *, challenge_id: str | None = None, fallback_id: str | None = None) -> Conversion:
    """Convert a compose document. The spec's id is `challenge_id`, else the compose `name`,
    else `fallback_id` (say, the file's directory), made into a valid id.

    Raises:
        ValidationFailed: the document is not a usable compose file (the message says why).
    """
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise _unusable("it has no `services` mapping")
    if not document["services"]:
        raise _unusable("`services` is empty")
    out = Conversion(spec={})
    for key in document:
        if key not in ("services", "name"):
            out.ignored.append((str(key), _WHY.get(str(key), _UNSUPPORTED)))
    out.spec["id"] = _challenge_id(challenge_id, document.get("name"), fallback_id)
    out.spec["name"] = str(document.get("name") or out.spec["id"])
    services = [_Service(str(name), out).convert(body) for name, body in document["services"].items()]
    out.spec["containers"] = [s.container for s in services]
    _check_health_conditions(out, services)
    out.notes.append(
        "every container gets the flag in $FLAG (the spec's default): set `flag.containers`, "
        "`flag.env` or `flag.file` to put it where the challenge reads it"
    )
    return out


def _unusable(why: str, **details: Any) -> ValidationFailed:
    return ValidationFailed(f"not a usable compose file: {why}", **details)


def _challenge_id(given: str | None, compose_name: Any, fallback: str | None) -> str:
    if given is not None:
        if not re.fullmatch(CHALLENGE_ID_PATTERN, given):
            raise ValidationFailed(f"{given!r} is not a valid challenge id ({CHALLENGE_ID_PATTERN})")
        return given
    for candidate in (compose_name, fallback):
        slug = re.sub(r"[^a-z0-9_-]+", "-", str(candidate or "").lower()).strip("-_")[:63]
        if re.fullmatch(CHALLENGE_ID_PATTERN, slug):
            return slug
    raise ValidationFailed("cannot make a challenge id from the compose file: give --id")


class _Service:
    """One compose service becoming one container of the spec."""

    def __init__(self, name: str, out: Conversion) -> None:
        if not re.fullmatch(CONTAINER_NAME_PATTERN, name):
            raise _unusable(
                f"service name {name!r} cannot be a container name (lower-case letters, digits and "
                "'-', at most 31, not starting with '-'): rename the service"
            )
        self.name, self.out, self.where = name, out, f"services.{name}"
        self.container: dict[str, Any] = {"name": name}
        self.conditions: dict[str, str] = {}  # dependency -> compose condition

    def convert(self, body: Any) -> _Service:
        if not isinstance(body, dict):
            raise _unusable(f"{self.where} is not a mapping")
        if not isinstance(body.get("image"), str):
            raise _unusable(f"{self.where} has no `image`: instancer runs images already on the engine")
        handlers = self._handlers()
        for key, value in body.items():
            handler = handlers.get(str(key))
            if handler is None:
                self.ignore(str(key), _WHY.get(str(key), _UNSUPPORTED))
            else:
                handler(value)
        return self

    def _handlers(self) -> dict[str, Callable[[Any], None]]:
        return {
            "image": self._image,
            "environment": self._environment,
            "command": self._command,
            "ports": self._ports,
            "depends_on": self._depends_on,
            "healthcheck": self._healthcheck,
            "cap_add": self._cap_add,
            "mem_limit": lambda v: self._resource("memory_mib", _mebibytes(v, f"{self.where}.mem_limit")),
            "cpus": lambda v: self._resource("cpus", _number(v, f"{self.where}.cpus")),
            "pids_limit": lambda v: self._resource("pids", _integer(v, f"{self.where}.pids_limit")),
            "deploy": self._deploy,
        }

    def ignore(self, key: str, why: str) -> None:
        self.out.ignored.append((f"{self.where}.{key}", why))

    # --- keys ---------------------------------------------------------------------

    def _image(self, value: Any) -> None:
        self.container["image"] = value

    def _environment(self, value: Any) -> None:
        pairs = _env_pairs(value, f"{self.where}.environment")
        env: dict[str, str] = {}
        for key, item in pairs:
            if item is None:
                self.ignore(
                    f"environment.{key}", "no value: Compose would take it from the host's environment"
                )
            else:
                env[key] = _scalar_text(item)
        if env:
            self.container["env"] = env

    def _command(self, value: Any) -> None:
        if isinstance(value, str):
            try:
                self.container["command"] = shlex.split(value)
            except ValueError as exc:
                raise _unusable(f"{self.where}.command cannot be split into words: {exc}") from exc
        elif isinstance(value, list):
            self.container["command"] = [_scalar_text(v) for v in value]
        else:
            raise _unusable(f"{self.where}.command must be a string or a list")

    def _ports(self, value: Any) -> None:
        if not isinstance(value, list):
            raise _unusable(f"{self.where}.ports must be a list")
        ports = [p for i, entry in enumerate(value) if (p := self._port(entry, f"ports[{i}]")) is not None]
        if ports:
            self.container["ports"] = ports

    def _port(self, entry: Any, key: str) -> dict[str, Any] | None:
        if isinstance(entry, dict):
            return self._long_port(entry, key)
        text = str(entry)
        text, _, proto = text.partition("/")
        if proto and proto != "tcp":
            self.ignore(key, f"{proto} ports are not supported (TCP only)")
            return None
        host, _, container = text.rpartition(":")
        if not container.isdigit():
            self.ignore(key, f"{entry!r}: port ranges and non-numeric ports are not supported")
            return None
        if host:
            self.ignore(
                f"{key}.host", f"host part {host!r} dropped: instancer picks each instance's host port"
            )
        return {"port": int(container)}

    def _long_port(self, entry: dict[str, Any], key: str) -> dict[str, Any] | None:
        if str(entry.get("protocol", "tcp")) != "tcp":
            self.ignore(key, f"{entry['protocol']} ports are not supported (TCP only)")
            return None
        port: dict[str, Any] = {"port": _integer(entry.get("target"), f"{self.where}.{key}.target")}
        if entry.get("app_protocol") == "http":
            port["protocol"] = "http"
        for part in sorted(set(entry) - {"target", "protocol", "app_protocol"}):
            why = (
                "dropped: instancer picks each instance's host port"
                if part in ("published", "host_ip")
                else None
            )
            self.ignore(f"{key}.{part}", why or _UNSUPPORTED)
        return port

    def _depends_on(self, value: Any) -> None:
        if isinstance(value, list):
            self.container["depends_on"] = [str(v) for v in value]
            return
        if not isinstance(value, dict):
            raise _unusable(f"{self.where}.depends_on must be a list or a mapping")
        self.container["depends_on"] = [str(v) for v in value]
        for dependency, given in value.items():
            options = given if isinstance(given, dict) else {}
            self.conditions[str(dependency)] = str(options.get("condition", "service_started"))
            for extra in sorted(set(options) - {"condition"}):
                self.ignore(f"depends_on.{dependency}.{extra}", _UNSUPPORTED)

    def _healthcheck(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise _unusable(f"{self.where}.healthcheck must be a mapping")
        if value.get("disable") is True or value.get("test") in (["NONE"], "NONE"):
            return
        if "test" not in value:
            self.ignore("healthcheck", "no `test`: the image's own healthcheck, if any, is kept")
            return
        check: dict[str, Any] = {"command": _health_command(value["test"], f"{self.where}.healthcheck.test")}
        for compose_key, spec_key in (
            ("interval", "interval_seconds"),
            ("timeout", "timeout_seconds"),
            ("start_period", "start_period_seconds"),
        ):
            if compose_key in value:
                check[spec_key] = _seconds(value[compose_key], f"{self.where}.healthcheck.{compose_key}")
        if "retries" in value:
            check["retries"] = _integer(value["retries"], f"{self.where}.healthcheck.retries")
        for extra in sorted(
            set(value) - {"test", "interval", "timeout", "start_period", "retries", "disable"}
        ):
            self.ignore(f"healthcheck.{extra}", _UNSUPPORTED)
        self.container["healthcheck"] = check

    def _cap_add(self, value: Any) -> None:
        if not isinstance(value, list):
            raise _unusable(f"{self.where}.cap_add must be a list")
        kept = []
        for item in value:
            cap = str(item).upper().removeprefix("CAP_")
            if cap in ALLOWED_CAPABILITIES:
                kept.append(cap)
            else:
                self.ignore(
                    f"cap_add.{item}", f"not allowed; allowed: {', '.join(sorted(ALLOWED_CAPABILITIES))}"
                )
        if kept:
            self.container["cap_add"] = kept

    def _resource(self, key: str, value: float) -> None:
        self.container.setdefault("resources", {})[key] = value

    def _deploy(self, value: Any) -> None:
        """Only `deploy.resources.limits` (memory, cpus, pids) means something for one instance."""
        resources = value.get("resources") if isinstance(value, dict) else None
        limits = resources.get("limits") if isinstance(resources, dict) else None
        limits = limits if isinstance(limits, dict) else {}
        where = f"{self.where}.deploy.resources.limits"
        if "memory" in limits:
            self._resource("memory_mib", _mebibytes(limits["memory"], f"{where}.memory"))
        if "cpus" in limits:
            self._resource("cpus", _number(limits["cpus"], f"{where}.cpus"))
        if "pids" in limits:
            self._resource("pids", _integer(limits["pids"], f"{where}.pids"))
        for key, why in _deploy_leftovers(value):
            self.ignore(f"deploy.{key}", why)


def _check_health_conditions(out: Conversion, services: list[_Service]) -> None:
    """Compose's `depends_on` conditions against what instancer does: it waits for a dependency
    to be healthy when that dependency has a healthcheck, and otherwise only starts it first."""
    checked = {s.name for s in services if "healthcheck" in s.container}
    for service in services:
        for dependency, condition in service.conditions.items():
            where = f"{service.where}.depends_on.{dependency}.condition"
            if condition == "service_healthy" and dependency not in checked:
                out.ignored.append((where, f"{dependency} has no healthcheck: it only starts first"))
            elif condition == "service_completed_successfully":
                out.ignored.append((where, "not supported: the dependency only starts first"))
            elif condition == "service_started" and dependency in checked:
                out.notes.append(
                    f"{service.name} will wait until {dependency} is healthy (Compose would only "
                    "wait for it to start): instancer waits on every healthcheck of a dependency"
                )


def _deploy_leftovers(value: Any) -> list[tuple[str, str]]:
    """Every part of `deploy` other than resources.limits.{memory,cpus,pids}."""
    if not isinstance(value, dict):
        return [("", _UNSUPPORTED)]
    found = [(k, _UNSUPPORTED) for k in sorted(set(value) - {"resources"})]
    resources = value.get("resources")
    if not isinstance(resources, dict):
        return found
    found += [(f"resources.{k}", _UNSUPPORTED) for k in sorted(set(resources) - {"limits"})]
    limits = resources.get("limits")
    if isinstance(limits, dict):
        found += [
            (f"resources.limits.{k}", _UNSUPPORTED) for k in sorted(set(limits) - {"memory", "cpus", "pids"})
        ]
    return found


# --- values --------------------------------------------------------------------------


def _env_pairs(value: Any, where: str) -> list[tuple[str, Any]]:
    """`environment` as a mapping or as a list of `NAME=value` / `NAME`."""
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, list):
        return [(name, text if sep else None) for name, sep, text in (str(i).partition("=") for i in value)]
    raise _unusable(f"{where} must be a mapping or a list")


def _scalar_text(value: Any) -> str:
    """Compose's text for a YAML scalar: booleans in lower case, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise _unusable("an environment value or command argument is not a single value")
    return str(value)


def _health_command(test: Any, where: str) -> list[str]:
    """Compose's test forms as a program and arguments (no shell assumed): `CMD` keeps its
    arguments; `CMD-SHELL` and a plain string run in `/bin/sh -c`, as the engine would."""
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    if isinstance(test, list) and len(test) >= 2 and test[0] == "CMD":
        return [_scalar_text(v) for v in test[1:]]
    if isinstance(test, list) and len(test) == 2 and test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", str(test[1])]
    raise _unusable(f"{where} must be a string, [CMD, ...] or [CMD-SHELL, command]")


def _seconds(value: Any, where: str) -> float:
    """A Compose duration (`10s`, `1m30s`, `500ms`) or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if not text or _DURATION_PART.sub("", text):
        raise _unusable(f"{where}: {value!r} is not a duration like 10s or 1m30s")
    return sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))


def _mebibytes(value: Any, where: str) -> int:
    """A Compose byte value (`512m`, `1g`, `1048576`) in whole MiB, rounded up."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", str(value).strip().lower())
    if match is None or match.group(2) not in _BYTES:
        raise _unusable(f"{where}: {value!r} is not a size like 512m or 1g")
    return math.ceil(float(match.group(1)) * _BYTES[match.group(2)] / 1024**2)


def _number(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _unusable(f"{where}: {value!r} is not a number") from None


def _integer(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise _unusable(f"{where}: {value!r} is not a whole number")
