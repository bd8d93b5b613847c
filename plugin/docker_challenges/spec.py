"""Form fields of a `docker` challenge <-> the service's challenge spec. Pure functions."""

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
}
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
            docker[key] = kind(value) if kind is not str else str(value).strip()
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


def to_service_spec(challenge):
    """The spec the service stores for this challenge (it validates it again, strictly)."""
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
