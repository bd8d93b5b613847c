"""The flag endpoints: verify (platform), sharing events and reveal (admin only)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from instancer import bootstrap
from instancer.backends.fake import FakeBackend
from tests.conftest import ADMIN_TOKEN, PLATFORM_TOKEN, FakeClock, auth, demo_spec

ADMIN = auth(ADMIN_TOKEN)
PLATFORM = auth(PLATFORM_TOKEN)


@pytest.fixture
def client(
    make_service: Callable[..., bootstrap.Service], fake_backend: FakeBackend, clock: FakeClock
) -> Iterator[TestClient]:
    service = make_service(backend=fake_backend, clock=clock)
    with TestClient(bootstrap.app_of(service, run_reaper=False), raise_server_exceptions=False) as c:
        c.put("/api/v1/challenges/web", json=demo_spec("web"), headers=ADMIN)
        yield c


def _start(client: TestClient, owner: str) -> str:
    return str(
        client.post("/api/v1/instances", json={"challenge": "web", "owner": owner}, headers=PLATFORM).json()[
            "id"
        ]
    )


def _verify(client: TestClient, owner: str, submission: str) -> dict:
    body = {"challenge": "web", "owner": owner, "submission": submission}
    r = client.post("/api/v1/flags/verify", json=body, headers=PLATFORM)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_verify_and_sharing_events(client: TestClient, fake_backend: FakeBackend) -> None:
    a = _start(client, "team-a")
    _start(client, "team-b")
    flag_a = fake_backend.running[a].containers[0].env["FLAG"]
    assert _verify(client, "team-a", flag_a) == {"correct": True, "reason": "correct"}
    assert _verify(client, "team-b", flag_a) == {"correct": False, "reason": "shared"}
    assert _verify(client, "team-b", "flag{guess}") == {"correct": False, "reason": "incorrect"}
    shares = client.get("/api/v1/admin/flag-shares", params={"challenge": "web"}, headers=ADMIN).json()
    assert shares["total"] == 1
    (event,) = shares["items"]
    assert (event["submitter"], event["flag_owner"], event["instance"]) == ("team-b", "team-a", a)
    assert (
        client.get("/api/v1/admin/flag-shares", params={"submitter": "team-a"}, headers=ADMIN).json()["total"]
        == 0
    )
    assert flag_a not in str(shares)


def test_reveal_is_admin_only(client: TestClient, fake_backend: FakeBackend) -> None:
    a = _start(client, "team-a")
    r = client.get(f"/api/v1/admin/instances/{a}/flag", headers=PLATFORM)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "FORBIDDEN")
    r = client.get(f"/api/v1/admin/instances/{a}/flag", headers=ADMIN)
    assert r.json() == {"instance": a, "flag": fake_backend.running[a].containers[0].env["FLAG"]}
    r = client.get(f"/api/v1/admin/instances/{'0' * 32}/flag", headers=ADMIN)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "INSTANCE_NOT_FOUND")


def test_flags_never_appear_in_platform_or_list_answers(
    client: TestClient, fake_backend: FakeBackend
) -> None:
    a = _start(client, "team-a")
    flag = fake_backend.running[a].containers[0].env["FLAG"]
    for path, headers in (
        (f"/api/v1/instances/{a}", PLATFORM),
        ("/api/v1/instances?owner=team-a", PLATFORM),
        ("/api/v1/admin/instances", ADMIN),
        ("/api/v1/admin/stats", ADMIN),
    ):
        assert flag not in client.get(path, headers=headers).text


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"challenge": "nope", "owner": "a", "submission": "x"}, 404, "CHALLENGE_NOT_FOUND"),
        ({"challenge": "web", "owner": "a", "submission": ""}, 422, "VALIDATION_FAILED"),
        ({"challenge": "web", "owner": "a", "submission": "x" * 1025}, 422, "VALIDATION_FAILED"),
        ({"challenge": "web", "owner": "a"}, 422, "VALIDATION_FAILED"),
        ({"challenge": "web", "owner": "a", "submission": 5}, 422, "VALIDATION_FAILED"),
    ],
)
def test_verify_errors(client: TestClient, body: dict, status: int, code: str) -> None:
    r = client.post("/api/v1/flags/verify", json=body, headers=PLATFORM)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert "x" * 1025 not in r.text


def test_a_template_with_too_little_entropy_is_refused(client: TestClient) -> None:
    spec = demo_spec("weak", flag={"template": "flag{{{hex:8}}}"})
    r = client.put("/api/v1/challenges/weak", json=spec, headers=ADMIN)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "VALIDATION_FAILED")
    assert "32 bits of entropy" in r.text
    assert client.get("/api/v1/challenges/weak", headers=ADMIN).status_code == 404
