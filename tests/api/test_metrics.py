"""GET /metrics: Prometheus's own parser reads it; starts, flag checks and requests are counted
by bounded labels; the gauges match the database; only the metrics and admin tokens read it;
no owner, instance id or flag ever appears in it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from instancer import bootstrap
from instancer.backends.fake import FakeBackend
from tests.conftest import ADMIN_TOKEN, PLATFORM_TOKEN, FakeClock, auth, demo_spec

ADMIN = auth(ADMIN_TOKEN)
PLATFORM = auth(PLATFORM_TOKEN)
METRICS_TOKEN = "metrics-token-0123456789abcdef"
ROUTES_TOKEN = "routes-token-0123456789abcdef"


@pytest.fixture
def client(
    make_service: Callable[..., bootstrap.Service], fake_backend: FakeBackend, clock: FakeClock
) -> Iterator[TestClient]:
    service = make_service(
        backend=fake_backend, clock=clock, metrics_token=METRICS_TOKEN, routes_token=ROUTES_TOKEN, capacity=7
    )
    with TestClient(bootstrap.app_of(service, run_reaper=False), raise_server_exceptions=False) as c:
        c.put("/api/v1/challenges/web", json=demo_spec("web"), headers=ADMIN)
        yield c


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics", headers=auth(METRICS_TOKEN))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def _start(client: TestClient, owner: str, challenge: str = "web") -> dict:
    r = client.post("/api/v1/instances", json={"challenge": challenge, "owner": owner}, headers=PLATFORM)
    return dict(r.json())


def _verify(client: TestClient, owner: str, submission: str) -> None:
    body = {"challenge": "web", "owner": owner, "submission": submission}
    assert client.post("/api/v1/flags/verify", json=body, headers=PLATFORM).status_code == 200


def test_starts_flag_checks_and_gauges_are_counted(client: TestClient, fake_backend: FakeBackend) -> None:
    a = _start(client, "team-a")["id"]
    _start(client, "team-a")  # the live one again
    _start(client, "team-b")
    _start(client, "team-c", challenge="nope")
    flag = fake_backend.running[a].containers[0].env["FLAG"]
    _verify(client, "team-a", flag)
    _verify(client, "team-a", "flag{guess}")
    _verify(client, "team-b", flag)  # another team's flag: shared
    m = _samples(client)
    starts = {k[1]: v for k, v in m.items() if k[0] == "instancer_starts_total"}
    assert starts == {
        (("challenge", "web"), ("outcome", "created")): 2,
        (("challenge", "web"), ("outcome", "existing")): 1,
        (("challenge", "unknown"), ("outcome", "CHALLENGE_NOT_FOUND")): 1,  # not the id sent
    }
    assert m[("instancer_start_duration_seconds_count", (("challenge", "web"),))] == 2
    checks = {dict(k[1])["verdict"]: v for k, v in m.items() if k[0] == "instancer_flag_checks_total"}
    assert checks == {"correct": 1, "incorrect": 1, "shared": 1}
    assert m[("instancer_instances", (("state", "running"),))] == 2
    assert m[("instancer_instances", (("state", "failed"),))] == 0  # every state has its series
    assert m[("instancer_live_instances", (("challenge", "web"),))] == 2
    assert m[("instancer_occupying_instances", ())] == 2 and m[("instancer_capacity", ())] == 7
    assert m[("instancer_ports_allocated", ())] == 2


def test_requests_are_counted_by_route_template_never_by_id(
    client: TestClient, fake_backend: FakeBackend
) -> None:
    inst = _start(client, "team-secret-owner")
    client.get(f"/api/v1/instances/{inst['id']}", headers=PLATFORM)
    client.get("/no/such/path/" + "x" * 20, headers=PLATFORM)
    client.request("PROPFIND", "/healthz")
    m = _samples(client)
    odd = (("method", "other"), ("route", "/healthz"), ("status", "405"))
    assert m[("instancer_http_request_duration_seconds_count", odd)] == 1
    route = (("method", "GET"), ("route", "/api/v1/instances/{instance_id}"), ("status", "200"))
    assert m[("instancer_http_request_duration_seconds_count", route)] == 1
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert m[("instancer_http_request_duration_seconds_count", unmatched)] == 1
    text = client.get("/metrics", headers=ADMIN).text
    flag = fake_backend.running[inst["id"]].containers[0].env["FLAG"]
    for secret in (inst["id"], "team-secret-owner", flag, "xxxxxxxx", METRICS_TOKEN):
        assert secret not in text


def test_only_the_metrics_and_admin_tokens_read_metrics(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    for token, status in (
        (METRICS_TOKEN, 200),
        (ADMIN_TOKEN, 200),
        (PLATFORM_TOKEN, 403),
        (ROUTES_TOKEN, 403),
    ):
        r = client.get("/metrics", headers=auth(token))
        assert r.status_code == status, token
        if status == 403:
            assert r.json()["error"]["code"] == "FORBIDDEN"
    # ... and the metrics token reads nothing else
    for path in ("/api/v1/instances?owner=team-a", "/api/v1/admin/stats", "/api/v1/routes/traefik"):
        assert client.get(path, headers=auth(METRICS_TOKEN)).status_code == 403, path


def test_the_metrics_token_must_differ_from_the_others(make_settings: Callable[..., object]) -> None:
    with pytest.raises(ValidationError, match="must differ"):
        make_settings(metrics_token=ADMIN_TOKEN)
    with pytest.raises(ValidationError, match="at least 16"):
        make_settings(metrics_token="short")


def test_an_empty_metrics_token_is_unset(make_settings: Callable[..., object]) -> None:
    assert make_settings(metrics_token="").metrics_token is None  # type: ignore[attr-defined]
