"""Form fields of a `docker` challenge <-> the service's challenge spec. Pure functions."""

import json
import re

FIELDS = {
    # form name: (column, type)
    "docker_image": str,
    "docker_ports": str,
    "docker_flag_template": str,
    "docker_flag_env": str,
    "docker_flag_file": str,
    "docker_lifetime": int,
    "docker_extension": int,
    "docker_max_extensions": int,
    "docker_max_remaining": int,
    "docker_memory_mib": int,
    "docker_cpus": float,
    "docker_pids": int,
    "docker_capacity": int,
    "docker_spec_extra": str,
}
#: the keys of the spec's short form (one container): replaced, not merged, when the advanced
#: spec gives `containers`
_SHORT_FORM = ("image", "ports", "resources", "env", "command", "cap_add", "healthcheck")
#: set by the plugin: the service's id is derived from CTFd's (service_id)
_NOT_IN_EXTRA = ("id",)
# PORT[/http|/tcp][@port|@http|@tcp-tls]: what the port speaks, and how players reach it
# (without @, the service's INSTANCER_EXPOSE_DEFAULT decides).
_PORT = re.compile(r"^\s*(\d{1,5})\s*(?:/\s*(http|tcp))?\s*(?:@\s*(port|http|tcp-tls))?\s*$")


class SpecError(ValueError):
    pass


def service_id(challenge_id):
    """The service's id for a CTFd challenge: stable, and valid in its id grammar."""
    return f"ctfd-{int(challenge_id)}"


def split_form(data):
    """(core fields, docker fields cast to their types). Raises SpecError on a bad value."""
    core, docker = {}, {}
    for key, value in data.items():
        if key not in FIELDS:
            core[key] = value
            continue
        kind = FIELDS[key]
        try:
            if kind is str:  # JSON's null (an API client clearing a field) is an empty field
                docker[key] = "" if value is None else str(value).strip()
            else:
                docker[key] = kind(value)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"'{key}' must be a {kind.__name__}") from exc
    return core, docker


def parse_ports(text):
    ports = []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        match = _PORT.match(item)
        if not match:
            raise SpecError(f"port '{item}' is not PORT[/http|/tcp][@port|@http|@tcp-tls]")
        number, protocol, expose = match.groups()
        port = {"port": int(number), "protocol": protocol or ("http" if expose == "http" else "tcp")}
        if expose:
            port["expose"] = expose
        ports.append(port)
    return ports


def parse_extra(text):
    """The advanced spec: a JSON object, or {} for an empty field. Raises SpecError."""
    if not (text or "").strip():
        return {}
    try:
        extra = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"the advanced spec is not valid JSON: {exc}") from exc
    if not isinstance(extra, dict):
        raise SpecError('the advanced spec must be a JSON object, e.g. {"egress": true}')
    taken = [key for key in _NOT_IN_EXTRA if key in extra]
    if taken:
        raise SpecError(f"the advanced spec cannot set {', '.join(taken)}: the plugin sets it")
    return extra


def merged(base, extra):
    """`extra` over `base`: objects are merged key by key, anything else is replaced."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def to_service_spec(challenge):
    """The spec the service stores for this challenge (it validates it again, strictly): the
    form's fields, with the advanced spec merged over them. With `containers` there, the
    form's image, ports and resources give way to it."""
    extra = parse_extra(challenge.docker_spec_extra)
    base = _form_spec(challenge)
    if "containers" in extra:
        base = {k: v for k, v in base.items() if k not in _SHORT_FORM}
    return merged(base, extra)


def _form_spec(challenge):
    return {
        "name": challenge.name or "",
        "image": challenge.docker_image,
        "ports": parse_ports(challenge.docker_ports),
        "resources": {
            "memory_mib": challenge.docker_memory_mib,
            "cpus": challenge.docker_cpus,
            "pids": challenge.docker_pids,
        },
        "lifetime": {
            "seconds": challenge.docker_lifetime,
            "extension_seconds": challenge.docker_extension,
            "max_extensions": challenge.docker_max_extensions,
            "max_remaining_seconds": challenge.docker_max_remaining,
        },
        "flag": {
            "template": challenge.docker_flag_template,
            "env": challenge.docker_flag_env or None,
            "file": challenge.docker_flag_file or None,
        },
        "limits": {"capacity": challenge.docker_capacity or None},
    }
