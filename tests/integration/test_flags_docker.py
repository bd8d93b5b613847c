"""Flags on the real engine: each owner reads its own flag from inside its own container,
from the environment and from a read-only file written before the container started."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from instancer.backends.docker import DockerBackend
from instancer.bootstrap import Service
from tests.conftest import demo_spec
from tests.integration.helpers import engine_objects, http_get

pytestmark = pytest.mark.docker
MakeService = Callable[..., Service]


def _exec(service: Service, container_id: str, *cmd: str) -> str:
    backend = service.backend
    assert isinstance(backend, DockerBackend)
    run = backend.api.exec_create(container_id, list(cmd))
    return str(backend.api.exec_start(run["Id"]).decode())


def test_two_owners_read_different_flags_from_env_and_file(docker_service: MakeService) -> None:
    service = docker_service()
    service.challenges.put(
        demo_spec(flag={"template": "CTF{{{leet:read_me}_{hex:16}}}", "file": "/flag.txt"})
    )
    seen = {}
    for owner in ("team-a", "team-b"):
        inst = service.instances.start("demo-web", owner).instance
        (container,), _ = engine_objects(service, inst.id)
        from_env = _exec(service, container["Id"], "sh", "-c", 'printf %s "$FLAG"')
        from_file = _exec(service, container["Id"], "cat", "/flag.txt").strip()
        mode_and_owner = _exec(service, container["Id"], "stat", "-c", "%a %u", "/flag.txt").strip()
        served = http_get(f"http://127.0.0.1:{inst.allocations[0].host_port}/").strip()
        assert from_env == from_file == served and from_env.startswith("CTF{")
        assert mode_and_owner == "444 0"  # readable by the challenge's user (1000), writable by nobody
        assert "Permission denied" in _exec(service, container["Id"], "sh", "-c", "echo x >> /flag.txt 2>&1")
        assert service.flags.verify("demo-web", owner, from_env).correct
        seen[owner] = from_env
    assert seen["team-a"] != seen["team-b"]
    assert service.flags.verify("demo-web", "team-b", seen["team-a"]).reason == "shared"
