"""5xx answers found while fuzzing the API that Schemathesis does not generate by itself (it
never sends lone surrogates), kept as regression tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from instancer import bootstrap
from instancer.backends.fake import FakeBackend
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.fuzz

ADMIN_JSON = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    "document",
    [
        # JSON allows a lone surrogate escape; pydantic lets it through inside a dict or a tuple, and
        # storing the spec then failed to encode it: 500 INTERNAL_ERROR instead of 422.
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
        assert client.get("/api/v1/challenges/s1", headers=ADMIN_JSON).status_code == 404
