"""Schemathesis fuzzing of the whole HTTP API, in process, over the fake engine.

Every operation in /openapi.json gets generated requests, valid and invalid, sent with the
admin token. No answer may be a 5xx (`not_a_server_error`), and each answer must match the
response schema declared for its status (`response_schema_conformance`). A stateful run then
chains operations (start -> get / extend / revert / stop / reveal ...) along the links that
Schemathesis infers from the schema.

Generated ids rarely name a registered challenge, so a small dictionary ("demo" for
challenges, three owners) gets requests past CHALLENGE_NOT_FOUND and into the use cases; the
tests also check that they did reach them, so a run that only ever got 401 or 404 cannot pass
unnoticed. Examples are bounded and derandomised: the module takes well under a minute and a
failure shows up again on the next run.

Select with `pytest -m fuzz`. Skipped, saying why, when schemathesis is not installed.
Schemathesis' own pytest loader (`schemathesis.pytest.from_fixture`) is not used: with
pytest 9.2 it fails on `Function._nodeid`; plain Hypothesis `@given` over each operation's
strategy does the same job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

schemathesis = pytest.importorskip(
    "schemathesis",
    reason="schemathesis is not installed: `.venv/bin/pip install schemathesis` to run the API fuzz tests",
)

import hypothesis  # noqa: E402  (a dependency of schemathesis: there once schemathesis is)
import hypothesis.errors  # noqa: E402
from schemathesis.checks import not_a_server_error, response_schema_conformance  # noqa: E402

from instancer import bootstrap  # noqa: E402
from instancer.backends.fake import FakeBackend  # noqa: E402
from tests.conftest import ADMIN_TOKEN, DEMO_WEB_IMAGE  # noqa: E402

pytestmark = pytest.mark.fuzz

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHECKS = [not_a_server_error, response_schema_conformance]
MAX_EXAMPLES = 30  # per operation and generation mode (about 20 operations)
STATEFUL_EXAMPLES = 40
STATEFUL_STEPS = 10

# What a schemathesis.toml would say; given here so that no config file lying around changes the run.
CONFIG: dict[str, Any] = {
    # The token is sent by the test; negative cases spend themselves on the API, not on mangling it
    # (401 and 403 are covered in tests/api).
    "generation": {"with-security-parameters": False},
    "dictionaries": {
        "challenge": {"values": ["demo"]},
        "owner": {"values": ["team-1", "team-2", "team-3"]},
    },
    "parameters": {
        "body.challenge": {"dictionary": "challenge", "probability": 0.8},
        "query.challenge": {"dictionary": "challenge", "probability": 0.3},
        "body.owner": {"dictionary": "owner", "probability": 0.6},
        "query.owner": {"dictionary": "owner", "probability": 0.3},
    },
    "operations": [
        # Keep the challenge every other operation needs (deleting one is covered in tests/api).
        {
            "include-name": "DELETE /api/v1/challenges/{challenge_id}",
            "parameters": {"path.challenge_id": "scratch"},
        },
    ],
}

SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: report what was found
    suppress_health_check=list(hypothesis.HealthCheck),
)


class _Served:
    """The app under test, as a server would run it, and replaceable (the stateful test gives each
    scenario a fresh one).

    Starlette answers an unhandled error with the 500 and then re-raises it, for test clients. A
    server logs it and goes on; so does this wrapper, so that a crash is judged as the 500 response it
    is (`not_a_server_error`, with a curl reproduction) and the other operations are still fuzzed."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if not started:
                raise


def _fresh_app(make_service: Callable[..., bootstrap.Service]) -> Any:
    """A service on its own empty database and fake engine, with the challenge `demo` registered."""
    service = make_service(backend=FakeBackend())
    service.challenges.put(
        {"image": DEMO_WEB_IMAGE, "ports": [{"port": 8080, "protocol": "http"}]}, challenge_id="demo"
    )
    return bootstrap.app_of(service, run_reaper=False)


@pytest.fixture
def served(make_service: Callable[..., bootstrap.Service]) -> _Served:
    return _Served(_fresh_app(make_service))


@pytest.fixture
def api_schema(served: _Served) -> Any:
    return schemathesis.openapi.from_asgi(
        "/openapi.json", served, config=schemathesis.Config.from_dict(CONFIG)
    )


def _describe(exc: BaseException) -> str:
    """Schemathesis' report: each failure, the response, and a curl command that reproduces it."""
    report = exc.message if isinstance(exc, BaseExceptionGroup) else str(exc)
    return "\n".join([report, *getattr(exc, "__notes__", [])])


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_operation_answers_without_5xx_and_as_declared(api_schema: Any, mode: str) -> None:
    seen: Counter[tuple[str, int]] = Counter()
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @hypothesis.given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
        @SETTINGS
        def fuzz(case: Any) -> None:
            response = case.call_and_validate(headers=ADMIN, checks=CHECKS)
            seen[(case.operation.label, response.status_code)] += 1

        try:
            fuzz()
        except hypothesis.errors.Unsatisfiable:
            assert mode == "negative"  # nothing in this operation can be made invalid (GET /healthz)
        except (AssertionError, BaseExceptionGroup) as exc:
            failures.append(f"--- {operation.label}\n{_describe(exc)}")

    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
    if mode == "positive":
        # The fuzz reached the use cases, not only the auth and the validation layers.
        reached = {label for (label, status), _ in seen.items() if 200 <= status < 300}
        assert "POST /api/v1/instances" in reached, sorted(seen.items())
        assert len(reached) >= 10, sorted(seen.items())


def test_stateful_sequences_answer_without_5xx_and_as_declared(
    api_schema: Any, served: _Served, make_service: Callable[..., bootstrap.Service]
) -> None:
    seen: Counter[tuple[str, int]] = Counter()
    failures: dict[tuple[str, str], str] = {}

    # Links would hand the registered challenge's id to its DELETE and end the useful sequences early.
    machine = api_schema.exclude(name="DELETE /api/v1/challenges/{challenge_id}").as_state_machine()

    class AdminMachine(machine):  # type: ignore[misc, valid-type]
        # Every scenario starts from an empty database, so that what one scenario started does not
        # change what the next one can do.
        def setup(self) -> None:
            super().setup()
            self.client = TestClient(_fresh_app(make_service))
            self.client.__enter__()  # runs the app's lifespan, as a server would
            served.app = self.client.app

        def teardown(self) -> None:
            self.client.__exit__(None, None, None)
            super().teardown()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": ADMIN}

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            # Failures are collected here rather than raised, as Schemathesis' own runner does: its rule
            # choice adapts to what it has seen, which Hypothesis can take for a flaky test on a replay.
            seen[(case.operation.label, response.status_code)] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except BaseExceptionGroup as exc:
                titles = ", ".join(sorted(str(getattr(f, "title", f)) for f in exc.exceptions))
                failures.setdefault((case.operation.label, titles), _describe(exc))

    settings = hypothesis.settings(
        SETTINGS, max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS
    )
    for _ in range(3):
        try:
            AdminMachine.run(settings=settings)
            break
        except hypothesis.errors.FlakyStrategyDefinition:
            continue  # the adaptive rule choice again; the runs so far still count

    if failures:
        pytest.fail(
            "\n\n".join(f"--- {label}\n{report}" for (label, _), report in failures.items()), pytrace=False
        )
    # Some sequences went through a started instance (a link from POST /api/v1/instances was followed).
    followed = {label for (label, status), _ in seen.items() if status == 200 and "{instance_id}" in label}
    assert followed, sorted(seen.items())
