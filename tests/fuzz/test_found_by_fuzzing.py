"""5xx answers found while fuzzing the API that Schemathesis does not generate by itself, kept as
tests. Each one that is still a bug is a strict xfail: when the fix lands it passes, and the
marker must go."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from instancer import bootstrap
from instancer.backends.fake import FakeBackend
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.fuzz

ADMIN_JSON = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}


@pytest.mark.xfail(
    strict=True,
    reason="bug: a lone surrogate in a container's env value or command argument passes spec validation, "
    "then fails to serialise when the spec is stored (PydanticSerializationError -> 500 INTERNAL_ERROR); "
    "remove this marker once the spec refuses it with 422",
)
@pytest.mark.parametrize(
    "document",
    [
        '{"image": "x", "env": {"A": "\\udfff"}}',
        '{"image": "x", "command": ["\\ud800"]}',
    ],
    ids=["env-value", "command"],
)
def test_a_spec_with_a_lone_surrogate_is_refused_not_a_500(
    make_service: Callable[..., bootstrap.Service], document: str
) -> None:
    service = make_service(backend=FakeBackend())
    with TestClient(bootstrap.app_of(service, run_reaper=False), raise_server_exceptions=False) as client:
        r = client.put("/api/v1/challenges/s1", content=document, headers=ADMIN_JSON)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"
