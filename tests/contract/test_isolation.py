"""Isolation on every real backend: the containers of one instance reach each other by name on
their private network; nothing of another instance is reachable from them, by name or address."""

from __future__ import annotations

import pytest

from tests.conftest import DEMO_TCP_IMAGE, DEMO_WEB_IMAGE
from tests.contract.conftest import Engine

pytestmark = pytest.mark.docker

DUO = {
    "id": "duo",
    "containers": [
        {"name": "web", "image": DEMO_WEB_IMAGE, "ports": [{"port": 8080, "protocol": "http"}]},
        {"name": "db", "image": DEMO_TCP_IMAGE},  # no ports: reachable only from "web"
    ],
}


def test_an_instance_reaches_its_own_containers_by_name_and_nothing_of_another(engine: Engine) -> None:
    service = engine.service()
    service.challenges.put(DUO)
    mine = service.instances.start("duo", "team-a").instance
    theirs = service.instances.start("duo", "team-b").instance
    flags = {i.id: service.flags.reveal(i.id) for i in (mine, theirs)}

    def from_mine(target: str, port: int) -> str:
        # busybox nc: -w bounds the connection attempt and the wait for data.
        return engine.exec(service, mine.id, "web", "sh", "-c", f"nc -w 2 {target} {port} 2>&1; true")

    assert from_mine("db", 9000).strip() == flags[mine.id]
    for container, port in (("db", 9000), ("web", 8080)):
        address = engine.address(service, theirs.id, container)
        assert engine.address(service, mine.id, container) != address
        answer = from_mine(address, port)
        assert flags[theirs.id] not in answer and "HTTP" not in answer, answer
    # Their engine names (container or service) are not ours to resolve either.
    for name in (f"inst-{theirs.id}-1-db", f"inst-{theirs.id[:16]}-1-db"):
        assert flags[theirs.id] not in from_mine(name, 9000)
