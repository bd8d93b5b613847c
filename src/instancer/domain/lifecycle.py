"""Lifecycle rules as pure functions of explicit inputs, `now` included.

Every rule here is deterministic so tests never sleep: pass the time in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .errors import Cooldown, ExtensionLimitReached, ExtensionTooSoon, InstanceNotRunning
from .model import Instance, State
from .spec import Lifetime, Pool

#: Pool starts of a challenge that keep failing are retried after 2, 4, 8 ... s, at most this.
POOL_RETRY_MAX_SECONDS = 300.0


def initial_deadline(now: datetime, lifetime: Lifetime) -> datetime:
    return now + timedelta(seconds=lifetime.seconds)


def extended_deadline(
    instance: Instance, lifetime: Lifetime, now: datetime, *, min_interval_s: float
) -> datetime:
    """The deadline after one player extension, or the error that forbids it.

    The new deadline is `expires_at + extension_seconds`, capped at
    `now + max_remaining_seconds`.

    | state    | extensions left | since last extension | result                     |
    |----------|-----------------|----------------------|----------------------------|
    | !running | any             | any                  | InstanceNotRunning         |
    | running  | 0               | any                  | ExtensionLimitReached      |
    | running  | > 0             | < min_interval_s     | ExtensionTooSoon           |
    | running  | > 0             | >= min_interval_s    | capped deadline            |
    | running  | > 0             | ok, cap <= current   | ExtensionTooSoon (no gain) |

    An extension that would not move the deadline is refused rather than spending one
    of the owner's extensions for nothing.
    """
    if instance.state is not State.RUNNING:
        raise InstanceNotRunning("only a running instance can be extended", state=instance.state.value)
    if instance.extensions_left <= 0:
        raise ExtensionLimitReached(
            "this instance has no extensions left", max_extensions=instance.max_extensions
        )
    wait = _remaining_wait(instance.last_extended_at, now, min_interval_s)
    if wait > 0:
        raise ExtensionTooSoon("extended too recently", retry_after_seconds=wait)
    cap = now + timedelta(seconds=lifetime.max_remaining_seconds)
    deadline = min(instance.expires_at + timedelta(seconds=lifetime.extension_seconds), cap)
    if deadline <= instance.expires_at:
        room = (instance.expires_at - now).total_seconds()
        raise ExtensionTooSoon(
            "the instance already has the most time it may have left",
            max_remaining_seconds=lifetime.max_remaining_seconds,
            retry_after_seconds=max(1, int(room - lifetime.max_remaining_seconds) + 1),
        )
    return deadline


def check_cooldown(last_start: datetime | None, now: datetime, cooldown_s: float) -> None:
    """Refuse a start or revert that comes less than `cooldown_s` after the owner's last one.

    Raises:
        Cooldown: with `retry_after_seconds`.
    """
    wait = _remaining_wait(last_start, now, cooldown_s)
    if wait > 0:
        raise Cooldown("wait a little before starting or reverting again", retry_after_seconds=wait)


def _remaining_wait(since: datetime | None, now: datetime, interval_s: float) -> int:
    """Whole seconds still to wait (rounded up), 0 when `interval_s` has passed."""
    if since is None:
        return 0
    left = interval_s - (now - since).total_seconds()
    return 0 if left <= 0 else int(left) + (left % 1 > 0)


def pool_starts(idle: int, pool: Pool) -> int:
    """How many instances the pool filler starts for a challenge with `idle` unclaimed ones
    (ready or starting): up to `pool.min` (see `spec.Pool`). A level, not an edge: every pass
    recomputes it from the database, so passes cut short by the start slots simply go on."""
    return max(0, pool.min - idle)


def pool_surplus(idle: int, pool: Pool) -> int:
    """How many idle instances the filler stops: those above `pool.max` (lowered, or disabled)."""
    return max(0, idle - pool.max)


def pool_retry_seconds(failures: int) -> float:
    """The pause before the next pool start after `failures` failed ones in a row (backoff, so a
    broken image does not loop hot)."""
    return min(2.0 ** min(failures, 16), POOL_RETRY_MAX_SECONDS)
