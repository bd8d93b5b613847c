"""The HTTP API over the fake engine: documented bodies, codes and statuses, and that refused
requests change nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

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
    service = make_service(backend=fake_backend, clock=clock, max_body_bytes=4096)
    with TestClient(bootstrap.app_of(service, run_reaper=False), raise_server_exceptions=False) as c:
        assert c.put("/api/v1/challenges/web", json=demo_spec("web"), headers=ADMIN).status_code == 201
        assert c.put("/api/v1/challenges/other", json=demo_spec("other"), headers=ADMIN).status_code == 201
        yield c


def _count(client: TestClient) -> tuple[int, int]:
    """(instances, challenges): what a refused request must leave as it was."""
    instances = client.get("/api/v1/admin/instances", headers=ADMIN).json()["total"]
    challenges = len(client.get("/api/v1/challenges", headers=ADMIN).json()["items"])
    return instances, challenges


def _start(client: TestClient, owner: str = "team-1", challenge: str = "web") -> dict:
    r = client.post("/api/v1/instances", json={"challenge": challenge, "owner": owner}, headers=PLATFORM)
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def test_start_shows_connection_info_and_never_the_flag(client: TestClient) -> None:
    r = client.post("/api/v1/instances", json={"challenge": "web", "owner": "team-1"}, headers=PLATFORM)
    assert r.status_code == 201
    body = r.json()
    assert body["state"] == "running" and body["extensions_left"] == 5 and body["remaining_seconds"] == 3600
    (conn,) = body["connection"]
    assert conn["host"] == "127.0.0.1" and conn["url"] == f"http://127.0.0.1:{conn['port']}/"
    assert "flag{" not in r.text
    again = client.post("/api/v1/instances", json={"challenge": "web", "owner": "team-1"}, headers=PLATFORM)
    assert again.status_code == 200 and again.json()["id"] == body["id"]


def test_tcp_ports_get_an_nc_command(client: TestClient) -> None:
    client.put(
        "/api/v1/challenges/nc",
        json={"image": "x", "ports": [{"port": 9000, "protocol": "tcp"}]},
        headers=ADMIN,
    )
    body = _start(client, challenge="nc")
    (conn,) = body["connection"]
    assert conn["command"] == f"nc 127.0.0.1 {conn['port']}" and conn["url"] is None


def test_owner_list_get_extend_revert_stop(client: TestClient) -> None:
    inst = _start(client)
    listed = client.get("/api/v1/instances", params={"owner": "team-1"}, headers=PLATFORM).json()
    assert [i["id"] for i in listed["items"]] == [inst["id"]]
    path = f"/api/v1/instances/{inst['id']}"
    assert client.get(path, headers=PLATFORM).json()["id"] == inst["id"]
    assert client.post(path + "/extend", headers=PLATFORM).json()["extensions_left"] == 4
    assert client.post(path + "/revert", headers=PLATFORM).json()["state"] == "running"
    stopped = client.delete(path, headers=PLATFORM).json()
    assert stopped["state"] == "stopped" and stopped["connection"] == []
    assert client.get("/api/v1/instances", params={"owner": "team-1"}, headers=PLATFORM).json()["total"] == 0


@pytest.mark.parametrize(
    ("setup", "call", "status", "code"),
    [
        (
            None,
            ("post", "/api/v1/instances", {"challenge": "nope", "owner": "o"}),
            404,
            "CHALLENGE_NOT_FOUND",
        ),
        (
            "start",
            ("post", "/api/v1/instances", {"challenge": "other", "owner": "team-1"}),
            409,
            "INSTANCE_LIMIT_REACHED",
        ),
        (None, ("get", "/api/v1/instances/" + "0" * 32, None), 404, "INSTANCE_NOT_FOUND"),
        (None, ("get", "/api/v1/instances/not-an-id", None), 422, "VALIDATION_FAILED"),
        (None, ("get", "/api/v1/nowhere", None), 404, "NOT_FOUND"),
        (None, ("patch", "/api/v1/instances", None), 405, "METHOD_NOT_ALLOWED"),
        (None, ("post", "/api/v1/instances", {"challenge": "web"}), 422, "VALIDATION_FAILED"),
        (None, ("post", "/api/v1/instances", {"challenge": 5, "owner": "o"}), 422, "VALIDATION_FAILED"),
        (
            None,
            ("post", "/api/v1/instances", {"challenge": "web", "owner": "o", "x": 1}),
            422,
            "VALIDATION_FAILED",
        ),
        (
            None,
            ("post", "/api/v1/instances", {"challenge": "web", "owner": "bad owner!"}),
            422,
            "VALIDATION_FAILED",
        ),
        (None, ("post", "/api/v1/instances", [1, 2]), 422, "VALIDATION_FAILED"),
    ],
)
def test_documented_errors_change_nothing(
    client: TestClient, setup: str | None, call: tuple, status: int, code: str
) -> None:
    if setup == "start":
        _start(client)
    before = _count(client)
    method, path, body = call
    r = client.request(method, path, json=body, headers=PLATFORM)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert set(r.json()["error"]) == {"code", "message", "details"}
    assert _count(client) == before


def test_the_limit_error_names_the_running_instance(client: TestClient) -> None:
    inst = _start(client)
    r = client.post("/api/v1/instances", json={"challenge": "other", "owner": "team-1"}, headers=PLATFORM)
    assert r.json()["error"]["details"]["instances"] == [
        {"id": inst["id"], "challenge": "web", "state": "running"}
    ]


def test_malformed_json(client: TestClient) -> None:
    before = _count(client)
    r = client.post(
        "/api/v1/instances",
        content=b'{"challenge": "web",',
        headers={**PLATFORM, "content-type": "application/json"},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "MALFORMED_JSON")
    assert _count(client) == before


def test_oversized_bodies_are_refused_before_reading(client: TestClient) -> None:
    before = _count(client)
    big = {"image": "x", "env": {"K": "v" * 10_000}}
    r = client.put("/api/v1/challenges/big", json=big, headers=ADMIN)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"image": "x", "env": {"K": "'
        for _ in range(10):
            yield b"v" * 1000
        yield b'"}}'

    r = client.put(
        "/api/v1/challenges/big", content=chunks(), headers={**ADMIN, "content-type": "application/json"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert _count(client) == before


@pytest.mark.parametrize(
    ("headers", "path", "status", "code"),
    [
        ({}, "/api/v1/instances?owner=o", 401, "UNAUTHORIZED"),
        (
            {"Authorization": "Bearer wrong-token-xxxxxxxxxxxx"},
            "/api/v1/instances?owner=o",
            401,
            "UNAUTHORIZED",
        ),
        ({"Authorization": "Basic abc"}, "/api/v1/instances?owner=o", 401, "UNAUTHORIZED"),
        (PLATFORM, "/api/v1/admin/instances", 403, "FORBIDDEN"),
        (PLATFORM, "/api/v1/challenges", 403, "FORBIDDEN"),
        ({}, "/api/v1/admin/stats", 401, "UNAUTHORIZED"),
    ],
)
def test_tokens(client: TestClient, headers: dict, path: str, status: int, code: str) -> None:
    r = client.get(path, headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)


def test_a_refused_start_without_token_changes_nothing(client: TestClient) -> None:
    before = _count(client)
    r = client.post("/api/v1/instances", json={"challenge": "web", "owner": "o"}, headers=auth("x" * 20))
    assert r.status_code == 401 and _count(client) == before


def test_invalid_challenge_spec_lists_problems(client: TestClient) -> None:
    before = _count(client)
    r = client.put("/api/v1/challenges/bad", json={"image": "x", "ports": [{"port": 99999}]}, headers=ADMIN)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "VALIDATION_FAILED")
    assert r.json()["error"]["details"]["errors"][0]["loc"].endswith("port")
    assert _count(client) == before


def test_challenge_crud(client: TestClient) -> None:
    assert (
        client.get("/api/v1/challenges/web", headers=ADMIN).json()["containers"][0]["image"]
        == "instancer/demo-web:latest"
    )
    assert (
        client.put("/api/v1/challenges/web", json=demo_spec("web", name="Web"), headers=ADMIN).status_code
        == 200
    )
    assert client.get("/api/v1/challenges/web", headers=ADMIN).json()["name"] == "Web"
    _start(client)
    assert client.delete("/api/v1/challenges/web", headers=ADMIN).json() == {"stopped": 1}
    r = client.get("/api/v1/challenges/web", headers=ADMIN)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "CHALLENGE_NOT_FOUND")


def test_admin_list_filters_paginates_and_counts(client: TestClient) -> None:
    for n in range(5):
        _start(client, owner=f"t{n}")
    _start(client, owner="u", challenge="other")
    page = client.get(
        "/api/v1/admin/instances", params={"per_page": 2, "page": 2, "challenge": "web"}, headers=ADMIN
    ).json()
    assert (page["total"], len(page["items"]), page["page"]) == (5, 2, 2)
    only = client.get(
        "/api/v1/admin/instances", params={"owner": "u", "state": "running"}, headers=ADMIN
    ).json()
    assert only["total"] == 1
    stats = client.get("/api/v1/admin/stats", headers=ADMIN).json()
    assert (
        stats["occupying"] == 6
        and stats["live_by_challenge"] == {"web": 5, "other": 1}
        and stats["capacity"] == 500
    )


def test_admin_extend_stop_and_bulk_stop(client: TestClient) -> None:
    inst = _start(client)
    r = client.post(f"/api/v1/admin/instances/{inst['id']}/extend", json={"seconds": 60}, headers=ADMIN)
    assert r.json()["remaining_seconds"] == 3660
    r = client.post(f"/api/v1/admin/instances/{inst['id']}/extend", headers=ADMIN)
    assert r.json()["remaining_seconds"] == 3660 + 3600
    assert client.delete(f"/api/v1/admin/instances/{inst['id']}", headers=ADMIN).json()["state"] == "stopped"
    for n in range(3):
        _start(client, owner=f"b{n}")
    r = client.delete("/api/v1/admin/instances", headers=ADMIN)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "VALIDATION_FAILED")
    assert client.delete("/api/v1/admin/instances", params={"challenge": "web"}, headers=ADMIN).json() == {
        "stopped": 3
    }


def test_health_and_readiness(client: TestClient, fake_backend: FakeBackend) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    fake_backend.down = True
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"] == {"database": "ok", "engine": "ENGINE_UNAVAILABLE"}
    r = client.post("/api/v1/instances", json={"challenge": "web", "owner": "o"}, headers=PLATFORM)
    assert (r.status_code, r.json()["error"]["code"]) == (503, "ENGINE_UNAVAILABLE")


def test_cooldown_sets_retry_after(
    make_service: Callable[..., bootstrap.Service], fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend, cooldown_seconds=30)
    with TestClient(bootstrap.app_of(service, run_reaper=False)) as c:
        c.put("/api/v1/challenges/web", json=demo_spec("web"), headers=ADMIN)
        inst = _start(c)
        r = c.post(f"/api/v1/instances/{inst['id']}/revert", headers=PLATFORM)
        assert (r.status_code, r.json()["error"]["code"]) == (429, "COOLDOWN")
        assert 29 <= int(r.headers["Retry-After"]) <= 30


def test_openapi_is_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/instances" in spec["paths"] and "/api/v1/admin/stats" in spec["paths"]


def test_an_internal_error_shows_nothing_internal(client: TestClient, fake_backend: FakeBackend) -> None:
    def boom(_: object) -> None:
        raise RuntimeError("secret internals flag{leak}")

    fake_backend.before_start = boom
    r = client.post("/api/v1/instances", json={"challenge": "web", "owner": "o"}, headers=PLATFORM)
    assert (r.status_code, r.json()["error"]["code"]) == (500, "INTERNAL_ERROR")
    assert "secret" not in r.text and "Traceback" not in r.text
    (failed,) = client.get("/api/v1/admin/instances", headers=ADMIN).json()["items"]
    assert failed["state"] == "failed" and "secret" not in str(failed)


def test_concurrent_puts_of_a_new_challenge_all_succeed(client: TestClient) -> None:

    def put(n: int) -> int:
        return client.put(
            f"/api/v1/challenges/race{n % 3}", json=demo_spec(f"race{n % 3}"), headers=ADMIN
        ).status_code

    with ThreadPoolExecutor(9) as pool:
        codes = list(pool.map(put, range(18)))
    assert set(codes) <= {200, 201} and codes.count(201) >= 3


def test_a_refused_put_leaves_the_existing_spec_as_it_was(client: TestClient) -> None:
    before = client.get("/api/v1/challenges/web", headers=ADMIN).json()
    r = client.put("/api/v1/challenges/web", json={"image": "x", "ports": [{"port": -1}]}, headers=ADMIN)
    assert r.status_code == 422
    r = client.put("/api/v1/challenges/web", json=demo_spec("web"), headers=PLATFORM)
    assert r.status_code == 403
    assert client.get("/api/v1/challenges/web", headers=ADMIN).json() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/challenges/web"),
        ("delete", "/api/v1/challenges/web"),
        ("delete", "/api/v1/admin/instances?challenge=web"),
        ("post", "/api/v1/admin/instances/" + "0" * 32 + "/extend"),
        ("delete", "/api/v1/admin/instances/" + "0" * 32),
        ("get", "/api/v1/admin/instances/" + "0" * 32 + "/flag"),
    ],
)
def test_the_platform_token_cannot_use_admin_endpoints(client: TestClient, method: str, path: str) -> None:
    inst = _start(client)
    before = _count(client)
    r = client.request(method, path, json=demo_spec("web") if method == "put" else None, headers=PLATFORM)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "FORBIDDEN")
    assert _count(client) == before
    assert client.get(f"/api/v1/instances/{inst['id']}", headers=PLATFORM).json()["state"] == "running"


def test_extension_too_soon_and_revert_of_a_stopped_instance(
    make_service: Callable[..., bootstrap.Service], fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend, extension_interval_seconds=300)
    with TestClient(bootstrap.app_of(service, run_reaper=False)) as c:
        c.put("/api/v1/challenges/web", json=demo_spec("web", lifetime={"seconds": 60}), headers=ADMIN)
        inst = _start(c)
        path = f"/api/v1/instances/{inst['id']}"
        assert c.post(path + "/extend", headers=PLATFORM).status_code == 200
        r = c.post(path + "/extend", headers=PLATFORM)
        assert (r.status_code, r.json()["error"]["code"]) == (429, "EXTENSION_TOO_SOON")
        assert r.json()["error"]["details"]["retry_after_seconds"] == 300
        c.delete(path, headers=PLATFORM)
        r = c.post(path + "/revert", headers=PLATFORM)
        assert (r.status_code, r.json()["error"]["code"]) == (409, "INSTANCE_NOT_RUNNING")


def test_405_names_the_allowed_methods_and_undecodable_bodies_are_malformed_json(client: TestClient) -> None:
    r = client.request("TRACE", "/api/v1/challenges", headers=ADMIN)
    assert (r.status_code, r.json()["error"]["code"]) == (405, "METHOD_NOT_ALLOWED") and "GET" in r.headers[
        "Allow"
    ]
    r = client.post(
        "/api/v1/instances",
        content=b'{"owner": "\xff"}',
        headers={**PLATFORM, "content-type": "application/json"},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "MALFORMED_JSON")


def test_spec_numbers_are_not_coerced_from_strings_or_booleans(client: TestClient) -> None:
    for bad in ({"lifetime": {"seconds": "60"}}, {"limits": {"cooldown_seconds": True}}):
        r = client.put("/api/v1/challenges/typed", json=demo_spec("typed", **bad), headers=ADMIN)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "VALIDATION_FAILED")


def test_openapi_declares_the_challenge_spec_in_both_forms(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    put = document["paths"]["/api/v1/challenges/{challenge_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChallengeSpecDocument"
    }
    long_form, short_form = document["components"]["schemas"]["ChallengeSpecDocument"]["anyOf"]
    assert "containers" in long_form["properties"] and "image" in short_form["properties"]
    assert "Container" in document["components"]["schemas"]


def test_a_dependency_cycle_is_refused_with_the_validation_envelope(client: TestClient) -> None:
    before = _count(client)
    spec = {
        "containers": [
            {"name": "web", "image": "x", "depends_on": ["db"]},
            {"name": "db", "image": "y", "depends_on": ["web"]},
        ]
    }
    r = client.put("/api/v1/challenges/loop", json=spec, headers=ADMIN)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "VALIDATION_FAILED")
    assert "cycle" in r.json()["error"]["details"]["errors"][0]["message"]
    assert _count(client) == before


def test_summed_resources_past_the_cap_answer_503_naming_the_resource(
    make_service: Callable[..., bootstrap.Service], fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend, capacity_memory_mib=600)
    big = demo_spec("big", resources={"memory_mib": 512})
    with TestClient(bootstrap.app_of(service, run_reaper=False)) as c:
        assert c.put("/api/v1/challenges/big", json=big, headers=ADMIN).status_code == 201
        assert _start(c, "a", "big")["state"] == "running"
        r = c.post("/api/v1/instances", json={"challenge": "big", "owner": "b"}, headers=PLATFORM)
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "CAPACITY_REACHED"
        assert error["details"] == {"scope": "memory", "capacity": 600, "in_use": 512, "requested": 512}


def test_pooled_instances_are_for_admins_only_until_a_start_claims_one(
    make_service: Callable[..., bootstrap.Service], fake_backend: FakeBackend, clock: FakeClock
) -> None:
    service = make_service(backend=fake_backend, clock=clock)
    spec = {"image": "x", "ports": [{"port": 80, "protocol": "http", "expose": "http"}], "pool": {"min": 2}}
    with TestClient(bootstrap.app_of(service, run_reaper=False), raise_server_exceptions=False) as c:
        stored = c.put("/api/v1/challenges/warm", json=spec, headers=ADMIN).json()
        assert stored["pool"] == {"min": 2, "max": 2}
        service.pools.fill()
        listed = c.get("/api/v1/admin/instances", params={"state": "pooled"}, headers=ADMIN).json()
        assert listed["total"] == 2 and all(i["connection"] == [] for i in listed["items"])
        hidden = listed["items"][0]
        for method, suffix in (("GET", ""), ("POST", "/extend"), ("POST", "/revert"), ("DELETE", "")):
            r = c.request(method, f"/api/v1/instances/{hidden['id']}{suffix}", headers=PLATFORM)
            assert (r.status_code, r.json()["error"]["code"]) == (404, "INSTANCE_NOT_FOUND")
        r = c.get("/api/v1/instances", params={"owner": hidden["owner"]}, headers=PLATFORM)
        assert r.status_code == 422  # a pool's owner is not an owner id anyone can ask for
        stats = c.get("/api/v1/admin/stats", headers=ADMIN).json()
        assert stats["pooled_by_challenge"] == {"warm": 2} and stats["occupying"] == 2
        claimed = _start(c, challenge="warm")
        assert (
            claimed["id"] in {i["id"] for i in listed["items"]} and claimed["connection"][0]["mode"] == "http"
        )
        assert c.delete(f"/api/v1/admin/instances/{hidden['id']}", headers=ADMIN).json()["state"] == "stopped"


def test_a_pool_needs_every_port_behind_the_proxy(client: TestClient) -> None:
    spec = {"image": "x", "ports": [{"port": 80, "protocol": "http"}], "pool": {"min": 1}}
    r = client.put("/api/v1/challenges/warm", json=spec, headers=ADMIN)
    assert r.status_code == 422 and "expose" in r.json()["error"]["details"]["errors"][0]["message"]
