"""Deadline, extension and cooldown rules, with the time passed in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from instancer.domain import lifecycle
from instancer.domain.errors import Cooldown, ExtensionLimitReached, ExtensionTooSoon, InstanceNotRunning
from instancer.domain.model import Instance, State
from instancer.domain.spec import Lifetime

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LIFETIME = Lifetime(seconds=3600, extension_seconds=3600, max_extensions=2, max_remaining_seconds=7200)


def _instance(**changes: object) -> Instance:
    base = Instance(
        id="a" * 32,
        challenge_id="c",
        owner="o",
        state=State.RUNNING,
        generation=1,
        created_at=T0,
        expires_at=T0 + timedelta(seconds=3600),
        max_extensions=2,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_initial_deadline_is_now_plus_lifetime() -> None:
    assert lifecycle.initial_deadline(T0, LIFETIME) == T0 + timedelta(hours=1)


def test_extension_adds_the_step_capped_at_max_remaining() -> None:
    now = T0 + timedelta(minutes=30)  # 30 min left; +1 h = 1 h 30 left, under the 2 h cap
    assert lifecycle.extended_deadline(_instance(), LIFETIME, now, min_interval_s=0) == T0 + timedelta(
        hours=2
    )
    now = T0  # 1 h left; +1 h = 2 h, exactly the cap
    assert lifecycle.extended_deadline(_instance(), LIFETIME, now, min_interval_s=0) == T0 + timedelta(
        hours=2
    )


def test_extension_that_gains_nothing_is_refused_with_a_retry_time() -> None:
    inst = _instance(expires_at=T0 + timedelta(hours=2))  # already at the cap
    with pytest.raises(ExtensionTooSoon) as caught:
        lifecycle.extended_deadline(inst, LIFETIME, T0, min_interval_s=0)
    assert caught.value.details["retry_after_seconds"] == 1


@pytest.mark.parametrize(
    ("changes", "now_offset", "interval", "error"),
    [
        ({"state": State.STARTING}, 0, 0, InstanceNotRunning),
        ({"state": State.STOPPED}, 0, 0, InstanceNotRunning),
        ({"extensions_used": 2}, 0, 0, ExtensionLimitReached),
        ({"last_extended_at": T0}, 299, 300, ExtensionTooSoon),
    ],
)
def test_extension_truth_table(
    changes: dict[str, object], now_offset: int, interval: float, error: type
) -> None:
    with pytest.raises(error):
        lifecycle.extended_deadline(
            _instance(**changes), LIFETIME, T0 + timedelta(seconds=now_offset), min_interval_s=interval
        )


def test_extension_allowed_once_the_interval_passed() -> None:
    inst = _instance(last_extended_at=T0, expires_at=T0 + timedelta(seconds=600))
    got = lifecycle.extended_deadline(inst, LIFETIME, T0 + timedelta(seconds=300), min_interval_s=300)
    assert got == T0 + timedelta(seconds=4200)


def test_cooldown_reports_whole_seconds_to_wait() -> None:
    lifecycle.check_cooldown(None, T0, 5)
    lifecycle.check_cooldown(T0, T0 + timedelta(seconds=5), 5)
    with pytest.raises(Cooldown) as caught:
        lifecycle.check_cooldown(T0, T0 + timedelta(seconds=3.5), 5)
    assert caught.value.details["retry_after_seconds"] == 2
