"""Flags on every real backend: each owner reads its own flag from inside its own container,
from the environment and from a read-only file put there before the container started."""

from __future__ import annotations

import pytest

from tests.conftest import demo_spec
from tests.contract.conftest import Engine
from tests.integration.helpers import http_get

pytestmark = pytest.mark.docker


def test_two_owners_read_different_flags_from_env_and_file(engine: Engine) -> None:
    service = engine.service()
    service.challenges.put(
        demo_spec(flag={"template": "CTF{{{leet:read_me}_{hex:16}}}", "file": "/flag.txt"})
    )
    seen = {}
    for owner in ("team-a", "team-b"):
        inst = service.instances.start("demo-web", owner).instance

        def run(*cmd: str, instance_id: str = inst.id) -> str:
            return engine.exec(service, instance_id, "main", *cmd)

        from_env = run("sh", "-c", 'printf %s "$FLAG"')
        from_file = run("cat", "/flag.txt").strip()
        mode_and_owner = run("stat", "-c", "%a %u", "/flag.txt").strip()
        [connection] = inst.allocations
        host = inst.public_host or service.settings.public_host
        served = http_get(f"http://{host}:{connection.host_port}/").strip()
        assert from_env == from_file == served and from_env.startswith("CTF{")
        assert mode_and_owner == "444 0"  # readable by the challenge's user (1000), writable by nobody
        # Not writable (the engine may say "Permission denied" or "Read-only file system").
        assert run(
            "sh", "-c", "(echo x >> /flag.txt) 2>/dev/null && echo written || echo refused"
        ).strip() == ("refused")
        assert run("cat", "/flag.txt").strip() == from_env
        assert service.flags.verify("demo-web", owner, from_env).correct
        seen[owner] = from_env
    assert seen["team-a"] != seen["team-b"]
    assert service.flags.verify("demo-web", "team-b", seen["team-a"]).reason == "shared"
