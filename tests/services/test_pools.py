"""Warm pools over a real database (SQLite, and PostgreSQL when configured) with the fake engine
and a fake clock: claims, refills between the water marks, capacity, drains, backoff, repair,
and that nobody sees a pooled instance before a start claims it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from instancer.backends.fake import FakeBackend
from instancer.bootstrap import Service
from instancer.domain.errors import BackendUnavailable, CapacityReached, InstanceNotFound
from instancer.domain.model import Instance, State
from instancer.domain.ports import InstanceFilter, LaunchPlan
from instancer.worker.pools import PoolFiller, PoolFillerConfig
from tests.conftest import DEMO_WEB_IMAGE, FakeClock, demo_spec

MakeService = Callable[..., Service]
POOLED = frozenset({State.POOLED})


def pool_spec(challenge_id: str = "warm", pool: dict[str, int] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": challenge_id,
        "image": DEMO_WEB_IMAGE,
        "ports": [{"port": 8080, "protocol": "http", "expose": "http"}],
        "pool": pool or {"min": 2, "max": 2},
        **extra,
    }


@pytest.fixture
def svc(make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock) -> Service:
    service = make_service(backend=fake_backend, clock=clock)
    service.challenges.put(pool_spec())
    return service


def pooled(service: Service, challenge_id: str | None = None) -> list[Instance]:
    return service.instances.find(InstanceFilter(challenge_id=challenge_id, states=POOLED)).items


def test_a_start_claims_a_pooled_instance_with_its_own_flag_and_routes(
    svc: Service, fake_backend: FakeBackend
) -> None:
    assert svc.pools.fill() == {"drained": 0, "started": 2, "failed": 0}
    waiting = {i.id: i for i in pooled(svc)}
    flags = {i: svc.flags.reveal(i) for i in waiting}
    assert len(set(flags.values())) == 2 and all(f.startswith("flag{") for f in flags.values())
    started = svc.instances.start("warm", "team-1")
    claimed = started.instance
    assert started.created and claimed.id in waiting and fake_backend.starts == 2  # no engine call
    assert (claimed.owner, claimed.state, claimed.pool_key) == ("team-1", State.RUNNING, None)
    assert claimed.routes == waiting[claimed.id].routes and claimed.routes[0].target is not None
    assert svc.flags.verify("warm", "team-1", flags[claimed.id]).reason == "correct"
    assert svc.flags.verify("warm", "team-2", flags[claimed.id]).reason == "shared"
    (other,) = set(waiting) - {claimed.id}
    assert svc.flags.verify("warm", "team-1", flags[other]).reason == "shared"  # not hers either
    assert svc.instances.start("warm", "team-1").instance.id == claimed.id  # her live one, again


def test_the_pool_refills_to_min_and_never_holds_more_than_max(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend)
    service.challenges.put(pool_spec(pool={"min": 4, "max": 4}))
    assert service.pools.fill()["started"] == 4 and service.pools.fill()["started"] == 0
    service.instances.start("warm", "a")
    assert service.pools.fill()["started"] == 1 and len(pooled(service)) == 4  # refilled to min
    service.challenges.put(pool_spec(pool={"min": 1, "max": 3}))  # after the rush: lowered
    assert service.pools.fill() == {"drained": 1, "started": 0, "failed": 0}  # only above max
    for owner in ("b", "c"):
        service.instances.start("warm", owner)
    assert service.pools.fill()["started"] == 0  # one idle: at min, enough
    service.challenges.put(pool_spec(pool={"min": 0, "max": 3}))  # winding down: no refills
    service.instances.start("warm", "d")
    assert service.pools.fill()["started"] == 0 and pooled(service) == []
    assert service.instances.start("warm", "e").created  # cold, as without a pool
    assert service.instances.stats().pooled_by_challenge == {}


def test_passes_cut_short_by_the_start_slots_go_on_to_min(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend)
    service.challenges.put(pool_spec(pool={"min": 5, "max": 5}))
    assert [service.pools.fill(budget=2)["started"] for _ in range(4)] == [2, 2, 1, 0]


def test_pooled_instances_count_against_capacity_and_a_claim_is_not_counted_twice(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend, capacity=3)
    service.challenges.put(pool_spec())
    service.challenges.put(demo_spec("cold"))
    service.pools.fill()
    service.instances.start("cold", "a")  # 2 pooled + 1 running: full
    with pytest.raises(CapacityReached):
        service.instances.start("cold", "b")
    assert service.instances.start("warm", "b").created  # the claim takes no new room
    assert service.pools.fill()["started"] == 0  # and the refill obeys capacity
    stats = service.instances.stats()
    assert sum(stats.by_challenge.values()) == 3 and stats.pooled_by_challenge == {"warm": 1}


def test_a_pool_obeys_its_challenges_own_capacity(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend)
    service.challenges.put(pool_spec(pool={"min": 3, "max": 3}, limits={"capacity": 2}))
    assert service.pools.fill()["started"] == 2
    service.instances.start("warm", "a")
    assert service.pools.fill()["started"] == 0  # 1 running + 1 pooled: the challenge is full
    assert service.instances.start("warm", "b").created  # the last pooled one
    with pytest.raises(CapacityReached):
        service.instances.start("warm", "c")


def test_pool_starts_obey_the_summed_memory_cap(make_service: MakeService, fake_backend: FakeBackend) -> None:
    service = make_service(backend=fake_backend, capacity_memory_mib=1000)
    service.challenges.put(pool_spec(pool={"min": 5}, resources={"memory_mib": 300}))
    service.challenges.put(demo_spec("cold", resources={"memory_mib": 300}))
    assert service.pools.fill()["started"] == 3  # 900 MiB; a fourth would be 1200
    with pytest.raises(CapacityReached) as caught:
        service.instances.start("cold", "a")
    assert caught.value.details["scope"] == "memory"
    assert service.instances.start("warm", "a").created  # a claim takes no new memory


def test_concurrent_starts_claim_distinct_pooled_instances(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend)
    service.challenges.put(pool_spec(pool={"min": 4, "max": 4}))
    service.pools.fill()
    waiting = {i.id for i in pooled(service)}
    with ThreadPoolExecutor(10) as threads:
        started = list(threads.map(lambda n: service.instances.start("warm", f"team-{n}"), range(10)))
    ids = [s.instance.id for s in started]
    assert len(set(ids)) == 10 and all(s.created and s.instance.state is State.RUNNING for s in started)
    assert set(ids) & waiting == waiting and fake_backend.starts == 4 + 6  # 4 claims, 6 cold
    owners = {s.instance.id: s.instance.owner for s in started}
    assert len(set(owners.values())) == 10 and pooled(service) == []


def test_a_spec_change_drains_stale_pooled_instances_and_they_are_never_claimed(
    svc: Service, fake_backend: FakeBackend
) -> None:
    svc.pools.fill()
    stale = {i.id for i in pooled(svc)}
    svc.challenges.put(pool_spec(name="renamed", lifetime={"seconds": 60}))  # runs the same: kept
    assert svc.pools.fill()["drained"] == 0
    svc.challenges.put(pool_spec(env={"MODE": "hard"}))
    fresh = svc.instances.start("warm", "team-1").instance  # cold: no stale one is handed out
    assert fresh.id not in stale and fake_backend.running[fresh.id].containers[0].env["MODE"] == "hard"
    assert svc.pools.fill() == {"drained": 2, "started": 2, "failed": 0}
    for instance_id in stale:
        drained = svc.instances.get(instance_id, admin=True)
        assert (
            drained.state is State.STOPPED and drained.reason == "pool drained: the challenge's spec changed"
        )
        assert instance_id not in fake_backend.running
    assert all(fake_backend.running[i.id].containers[0].env["MODE"] == "hard" for i in pooled(svc))


def test_a_pool_start_drained_while_starting_leaves_nothing_and_does_not_back_off(
    svc: Service, fake_backend: FakeBackend
) -> None:
    def change_the_spec_midway(plan: LaunchPlan) -> None:
        fake_backend.before_start = None
        svc.challenges.put(pool_spec(env={"V": "2"}))
        assert svc.pools.fill(budget=0)["drained"] == 2  # both are starting: drained all the same

    fake_backend.before_start = change_the_spec_midway
    assert svc.pools.fill() == {"drained": 0, "started": 0, "failed": 0}  # both interrupted
    assert pooled(svc) == [] and fake_backend.running == {}
    stopped = svc.instances.find(InstanceFilter(states=frozenset({State.STOPPED}))).items
    assert len(stopped) == 2 and svc.instances.stats().routes == 0
    assert svc.pools.fill()["started"] == 2  # no backoff: nothing failed


def test_a_pooled_instance_is_never_shown_to_a_player(svc: Service) -> None:
    svc.pools.fill()
    waiting = pooled(svc)[0]
    for call in (svc.instances.get, svc.instances.extend, svc.instances.revert, svc.instances.stop):
        with pytest.raises(InstanceNotFound):
            call(waiting.id)
    assert svc.instances.get(waiting.id, admin=True).state is State.POOLED
    assert svc.instances.find(InstanceFilter(owner=waiting.owner, states=POOLED)).total == 1  # admins
    assert waiting.owner.startswith("~pool:")  # an owner no player can be (the API's pattern)
    assert svc.instances.stop(waiting.id, admin=True).state is State.STOPPED


def test_the_proxy_serves_pooled_routes_before_the_claim(svc: Service) -> None:
    svc.pools.fill()
    served = {r.slug for r in svc.instances.routes()}
    assert served == {r.slug for i in pooled(svc) for r in i.routes} and len(served) == 2


def test_a_claimed_instance_expires_from_its_claim_and_stops_like_any_other(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    svc.pools.fill()
    clock.advance(5000)  # it waited in the pool longer than a lifetime: no matter
    assert svc.instances.reap()["expired"] == 0 and len(pooled(svc)) == 2
    claimed = svc.instances.start("warm", "a").instance
    assert claimed.created_at == claimed.started_at == clock.now()
    assert (claimed.expires_at - clock.now()).total_seconds() == 3600 and claimed.extensions_left == 5
    other = svc.instances.start("warm", "b").instance
    assert svc.instances.stop(other.id, owner="b").state is State.STOPPED
    clock.advance(3600)
    assert svc.instances.reap()["expired"] == 1
    assert svc.instances.get(claimed.id).state is State.EXPIRED
    assert fake_backend.running == {} and svc.instances.routes() == []


def test_a_claimed_instance_reverts_to_new_slugs(svc: Service) -> None:
    svc.pools.fill()
    claimed = svc.instances.start("warm", "a").instance
    reverted = svc.instances.revert(claimed.id, owner="a")
    assert reverted.state is State.RUNNING and reverted.routes[0].slug != claimed.routes[0].slug


def test_deleting_a_challenge_stops_its_pool(svc: Service, fake_backend: FakeBackend) -> None:
    svc.pools.fill()
    svc.instances.start("warm", "a")
    assert svc.challenges.delete("warm") == 2  # the claimed one and the one still pooled
    assert fake_backend.running == {} and svc.instances.stats().pooled_by_challenge == {}
    assert svc.pools.fill() == {"drained": 0, "started": 0, "failed": 0}


def test_a_failing_pool_start_backs_off_and_leaks_nothing(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    fake_backend.images = set()  # the image is missing
    assert svc.pools.fill() == {"drained": 0, "started": 0, "failed": 2}
    assert svc.pools.fill()["failed"] == 0  # backing off: no hot loop
    clock.advance(2)
    assert svc.pools.fill()["failed"] == 2  # retried after 2 s; next after 4 s
    clock.advance(2)
    assert svc.pools.fill()["failed"] == 0
    clock.advance(2)
    fake_backend.images = None  # the image arrives
    assert svc.pools.fill()["started"] == 2
    failed = svc.instances.find(InstanceFilter(states=frozenset({State.FAILED}))).items
    assert len(failed) == 4 and all(i.reason and i.reason.startswith("IMAGE_MISSING") for i in failed)
    assert svc.instances.stats().routes == 2  # only the two pooled ones hold routes


def test_a_claim_needs_no_engine_call(svc: Service, fake_backend: FakeBackend) -> None:
    svc.pools.fill()
    fake_backend.down = True  # the engine's API blips: the pooled containers still run
    assert svc.instances.start("warm", "a").instance.state is State.RUNNING
    assert svc.instances.start("warm", "b").created
    with pytest.raises(BackendUnavailable):  # the pool is empty: a cold start needs the engine
        svc.instances.start("warm", "c")
    assert svc.instances.find(InstanceFilter(owner="c")).total == 0  # and nothing was recorded


def test_an_engine_outage_decides_nothing(svc: Service, fake_backend: FakeBackend) -> None:
    fake_backend.down = True
    with pytest.raises(BackendUnavailable):
        svc.pools.fill()
    fake_backend.down = False
    assert svc.instances.find(InstanceFilter()).total == 0 and svc.pools.fill()["started"] == 2


def test_a_lost_pooled_instance_is_replaced(
    make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    service = make_service(backend=fake_backend, clock=clock, lost_policy="recreate")
    service.challenges.put(pool_spec())
    service.pools.fill()
    gone = pooled(service)[0]
    fake_backend.running.pop(gone.id)  # removed behind our back
    assert service.instances.reconcile() == {"orphans": 0, "lost": 1, "recreated": 0}  # never recreated
    assert service.instances.get(gone.id, admin=True).state is State.LOST
    assert service.pools.fill()["started"] == 1 and len(pooled(service)) == 2


def test_a_pool_start_left_by_a_dead_replica_is_repaired(
    make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    alive = make_service(backend=fake_backend, clock=clock)
    dying = make_service(backend=fake_backend, clock=clock)
    alive.challenges.put(pool_spec())
    plan = dying.pools.plan(budget=10)  # recorded, then the replica dies before launching them
    assert len(plan.starts) == 2 and alive.pools.fill()["started"] == 0  # counted: no over-fill
    assert alive.instances.reap()["stale_starting"] == 2
    assert alive.pools.fill()["started"] == 2


def test_two_replicas_filling_at_once_never_over_fill(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    replicas = [make_service(backend=fake_backend) for _ in range(3)]
    replicas[0].challenges.put(pool_spec(pool={"min": 5, "max": 5}))
    with ThreadPoolExecutor(3) as threads:
        started = sum(r["started"] for r in threads.map(lambda s: s.pools.fill(), replicas))
    assert started == 5 and len(pooled(replicas[0])) == 5


def test_the_filler_loop_fills_in_the_background_within_its_parallel_slots(
    svc: Service, fake_backend: FakeBackend
) -> None:
    svc.challenges.put(pool_spec(pool={"min": 3, "max": 3}))
    filler = PoolFiller(svc.pools, PoolFillerConfig(parallel=2))
    try:
        assert filler.tick()["pool_started"] == 2  # two slots
        filler.join()
        assert filler.tick()["pool_started"] == 1
        filler.join()
    finally:
        filler.stop()
    assert len(pooled(svc)) == 3
