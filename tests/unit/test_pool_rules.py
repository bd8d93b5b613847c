"""Warm-pool rules: the spec's `pool` section, what makes a pooled instance stale, the water
marks, the backoff, and an owner sentinel that no real owner can be."""

from __future__ import annotations

import re
from typing import Any

import pytest

from instancer.api.schemas import OWNER_PATTERN
from instancer.domain import lifecycle
from instancer.domain.errors import ValidationFailed
from instancer.domain.model import is_pool_owner, pool_owner
from instancer.domain.spec import Pool, parse_spec
from instancer.services.pools import share

HTTP = [{"port": 80, "protocol": "http", "expose": "http"}]


def _spec(**extra: Any) -> dict[str, Any]:
    return {"id": "warm", "image": "img:1", "ports": HTTP, **extra}


def test_no_pool_by_default_and_max_defaults_to_min() -> None:
    assert not parse_spec(_spec()).pool.enabled
    assert parse_spec(_spec(pool={"min": 3})).pool == Pool(min=3, max=3)
    assert parse_spec(_spec(pool={"min": 1, "max": 4})).pool == Pool(min=1, max=4)
    winding_down = parse_spec(_spec(pool={"min": 0, "max": 4})).pool  # no refills; ready ones are kept
    assert winding_down.enabled and lifecycle.pool_starts(0, winding_down) == 0


@pytest.mark.parametrize(
    ("pool", "ports", "says"),
    [
        ({"min": 3, "max": 2}, HTTP, "pool.min must not be above pool.max"),
        ({"min": 1001}, HTTP, "less than or equal to 1000"),
        ({"min": -1}, HTTP, "greater than or equal to 0"),
        ({"min": 1}, [{"port": 80, "protocol": "http"}], "expose"),  # left to the default
        ({"min": 1}, [*HTTP, {"port": 81, "expose": "port"}], "expose"),  # one host port is one too many
    ],
)
def test_bad_pools_are_refused(pool: dict[str, int], ports: list[dict[str, Any]], says: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_spec(_spec(pool=pool, ports=ports))
    assert says in str(caught.value.details)


def test_tcp_tls_ports_and_portless_containers_may_be_pooled() -> None:
    spec = parse_spec(
        {
            "id": "warm",
            "containers": [
                {"name": "svc", "image": "a", "ports": [{"port": 9000, "expose": "tcp-tls"}]},
                {"name": "db", "image": "b"},
            ],
            "pool": {"min": 1},
        }
    )
    assert spec.pool.enabled


def test_the_pool_key_changes_with_what_runs_and_nothing_else() -> None:
    base = parse_spec(_spec(pool={"min": 1})).pool_key()
    same = [
        _spec(pool={"min": 2, "max": 5}),
        _spec(pool={"min": 1}, name="Renamed"),
        _spec(pool={"min": 1}, lifetime={"seconds": 60}, limits={"capacity": 3}),
    ]
    assert {parse_spec(s).pool_key() for s in same} == {base}
    other = [
        _spec(pool={"min": 1}, image="img:2"),
        _spec(pool={"min": 1}, env={"A": "1"}),
        _spec(pool={"min": 1}, flag={"template": "CTF{{{hex:32}}}"}),
        _spec(pool={"min": 1}, egress=True),
        _spec(
            pool={"min": 1},
            ports=[{"port": 80, "protocol": "http", "expose": "http"}, {"port": 81, "expose": "tcp-tls"}],
        ),
    ]
    assert base not in {parse_spec(s).pool_key() for s in other}


@pytest.mark.parametrize(
    ("idle", "starts", "surplus"),
    [(0, 2, 0), (1, 1, 0), (2, 0, 0), (4, 0, 0), (6, 0, 2)],
)
def test_water_marks(idle: int, starts: int, surplus: int) -> None:
    pool = Pool(min=2, max=4)
    assert (lifecycle.pool_starts(idle, pool), lifecycle.pool_surplus(idle, pool)) == (starts, surplus)


def test_backoff_doubles_up_to_five_minutes() -> None:
    assert [lifecycle.pool_retry_seconds(n) for n in (1, 2, 3, 8, 9, 10_000)] == [2, 4, 8, 256, 300, 300]


def test_the_pool_owner_is_no_owner_a_player_can_have() -> None:
    owner = pool_owner("a" * 32)
    assert is_pool_owner(owner) and re.fullmatch(OWNER_PATTERN, owner) is None and len(owner) <= 128
    assert not is_pool_owner("team-1")


def test_starts_are_shared_round_robin_within_the_room() -> None:
    assert share({"b": 5, "a": 1, "c": 2}, 4) == {"a": 1, "b": 2, "c": 1}
    assert share({"a": 2}, 10) == {"a": 2} and share({"a": 2}, 0) == {}
