"""On the real engine: a start that never becomes ready fails cleanly, state survives a restart
of the service, and flags never reach the logs."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable

import httpx2 as httpx
import pytest

from instancer.bootstrap import Service
from tests.conftest import ADMIN_TOKEN, LiveServer, auth, demo_spec
from tests.integration.helpers import engine_objects, http_get, wait_until

pytestmark = pytest.mark.docker
MakeService = Callable[..., Service]


def _put(server: LiveServer, spec: dict) -> None:
    r = httpx.put(f"{server.url}/api/v1/challenges/{spec['id']}", json=spec, headers=auth(ADMIN_TOKEN))
    assert r.status_code in (200, 201), r.text


def test_a_port_that_never_answers_fails_the_start_and_removes_the_container(
    docker_service: MakeService,
) -> None:
    service = docker_service(ready_timeout_seconds=1.5)
    with LiveServer(service) as server:
        _put(server, demo_spec("deaf", ports=[{"port": 9999, "protocol": "tcp"}]))  # nothing listens on 9999
        r = httpx.post(
            f"{server.url}/api/v1/instances",
            json={"challenge": "deaf", "owner": "o"},
            headers=auth(),
            timeout=30,
        )
        assert (r.status_code, r.json()["error"]["code"]) == (502, "INSTANCE_START_FAILED")
        instance_id = r.json()["error"]["details"]["instance_id"]
        failed = httpx.get(f"{server.url}/api/v1/instances/{instance_id}", headers=auth()).json()
        assert failed["state"] == "failed" and failed["reason"].startswith("NOT_READY")
        assert engine_objects(service) == ([], [])
        assert service.instances.stats().ports_allocated == 0


def test_instances_survive_a_restart_of_the_service_and_still_expire(docker_service: MakeService) -> None:
    first = docker_service(reaper_interval_seconds=0.5)
    with LiveServer(first) as server:
        _put(server, demo_spec(lifetime={"seconds": 4}))
        body = _start(server, "o").json()
    # The first process is gone; a second one on the same database and engine takes over.
    second = docker_service(reaper_interval_seconds=0.5, deployment=first.settings.deployment)
    assert second.instances.get(body["id"]).state.value == "running"
    with LiveServer(second):
        wait_until(lambda: second.instances.get(body["id"]).state.value == "expired", timeout=15)
        assert engine_objects(second) == ([], [])


def test_flags_never_reach_the_logs(docker_service: MakeService, caplog: pytest.LogCaptureFixture) -> None:
    """Happy path and failure paths (a start that fails, a sharing attempt, a reveal) at DEBUG."""
    caplog.set_level(logging.DEBUG)
    service = docker_service(ready_timeout_seconds=1)
    with LiveServer(service) as server:
        _put(server, demo_spec())
        _put(server, demo_spec("deaf", ports=[{"port": 9999, "protocol": "tcp"}]))
        failed = httpx.post(
            f"{server.url}/api/v1/instances",
            json={"challenge": "deaf", "owner": "p"},
            headers=auth(),
            timeout=30,
        ).json()["error"]["details"]["instance_id"]
        body = _start(server, "o").json()
        httpx.post(f"{server.url}/api/v1/instances/{body['id']}/revert", headers=auth(), timeout=30)
        flag = httpx.get(
            f"{server.url}/api/v1/admin/instances/{body['id']}/flag", headers=auth(ADMIN_TOKEN)
        ).json()["flag"]
        verify = {"challenge": "demo-web", "owner": "q", "submission": flag}
        assert (
            httpx.post(f"{server.url}/api/v1/flags/verify", json=verify, headers=auth()).json()["reason"]
            == "shared"
        )
        httpx.delete(f"{server.url}/api/v1/instances/{body['id']}", headers=auth(), timeout=30)
    flags = {flag, service.flags.reveal(failed)}
    messages = [r.getMessage() + str(r.args) + str(r.exc_info) for r in caplog.records]
    assert any("flag sharing" in m for m in messages) and any("failed to start" in m for m in messages)
    assert not [m for m in messages for f in flags if f in m]


def _start(server: LiveServer, owner: str, challenge: str = "demo-web") -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/instances",
        json={"challenge": challenge, "owner": owner},
        headers=auth(),
        timeout=30,
    )


def _remove_behind_the_services_back(service: Service, instance_id: str) -> None:
    (container,), _ = engine_objects(service, instance_id)
    subprocess.run(["docker", "rm", "-f", container["Id"]], check=True, capture_output=True)


def test_a_container_removed_behind_the_services_back_is_lost_at_the_next_reconcile(
    docker_service: MakeService,
) -> None:
    service = docker_service(reconcile_interval_seconds=1, reaper_interval_seconds=0.5, lost_after_seconds=2)
    with LiveServer(service) as server:
        _put(server, demo_spec())
        body = _start(server, "o").json()
        _remove_behind_the_services_back(service, body["id"])
        wait_until(lambda: service.instances.get(body["id"]).state.value == "lost", timeout=10)
        assert service.instances.get(body["id"]).reason.startswith("LOST: 0 of 1")
        assert engine_objects(service, body["id"]) == ([], [])  # its network went too
        report = httpx.get(f"{server.url}/api/v1/admin/reconcile", headers=auth(ADMIN_TOKEN)).json()
        assert report["at"] is not None and "lost" in report["repairs"]
        assert _start(server, "o").status_code == 201


def test_with_the_recreate_policy_a_removed_container_comes_back_serving_the_same_flag(
    docker_service: MakeService,
) -> None:
    service = docker_service(
        reconcile_interval_seconds=1,
        reaper_interval_seconds=0.5,
        lost_after_seconds=1,
        lost_policy="recreate",
    )
    with LiveServer(service) as server:
        _put(server, demo_spec())
        body = _start(server, "o").json()
        flag = service.flags.reveal(body["id"])
        _remove_behind_the_services_back(service, body["id"])
        wait_until(
            lambda: (
                service.instances.get(body["id"]).generation == 2
                and service.instances.get(body["id"]).state.value == "running"
            ),
            timeout=20,
        )
        assert flag in http_get(body["connection"][0]["url"])
