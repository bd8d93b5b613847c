"""Instance use cases over a real database (SQLite, and PostgreSQL when configured) with the
in-package fake engine and a fake clock: limits, lifecycle and repair, without sleeping."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from instancer.backends.fake import FakeBackend
from instancer.bootstrap import Service
from instancer.domain.errors import (
    BackendRejected,
    BackendUnavailable,
    CapacityReached,
    ChallengeNotFound,
    Cooldown,
    ExtensionLimitReached,
    ExtensionTooSoon,
    ImageMissing,
    InstanceLimitReached,
    InstanceNotFound,
    InstanceNotRunning,
    InstanceStartFailed,
    PortsExhausted,
)
from instancer.domain.model import LIVE_STATES, State
from instancer.domain.ports import InstanceFilter, LaunchPlan
from tests.conftest import FakeClock, demo_spec

MakeService = Callable[..., Service]


@pytest.fixture
def svc(make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock) -> Service:
    service = make_service(backend=fake_backend, clock=clock)
    service.challenges.put(demo_spec("web"))
    service.challenges.put(demo_spec("other"))
    return service


def test_start_records_a_running_instance_with_a_port_and_flag(
    svc: Service, fake_backend: FakeBackend
) -> None:
    started = svc.instances.start("web", "team-1")
    inst = started.instance
    assert started.created and inst.state is State.RUNNING
    flag = svc.flags.reveal(inst.id)
    assert flag.startswith("flag{") and len(flag) == 38
    (alloc,) = inst.allocations
    assert 30000 <= alloc.host_port <= 60000 and alloc.container_port == 8080
    assert fake_backend.running[inst.id].containers[0].env["FLAG"] == flag


def test_the_plan_carries_the_specs_egress_and_a_revert_keeps_it(
    svc: Service, fake_backend: FakeBackend
) -> None:
    svc.challenges.put(demo_spec("open", egress=True))
    closed = svc.instances.start("web", "team-1").instance
    opened = svc.instances.start("open", "team-2").instance
    assert fake_backend.running[closed.id].egress is False
    assert fake_backend.running[opened.id].egress is True
    svc.challenges.put(demo_spec("open"))  # the instance keeps the spec it started from
    svc.instances.revert(opened.id, owner="team-2")
    assert fake_backend.running[opened.id].egress is True


def test_second_start_returns_the_live_instance(svc: Service, fake_backend: FakeBackend) -> None:
    first = svc.instances.start("web", "team-1").instance
    again = svc.instances.start("web", "team-1")
    assert not again.created and again.instance.id == first.id
    assert fake_backend.starts == 1


def test_unknown_challenge(svc: Service) -> None:
    with pytest.raises(ChallengeNotFound):
        svc.instances.start("nope", "team-1")


def test_per_owner_limit_names_the_running_instance(svc: Service) -> None:
    first = svc.instances.start("web", "team-1").instance
    with pytest.raises(InstanceLimitReached) as caught:
        svc.instances.start("other", "team-1")
    assert caught.value.details["instances"][0]["id"] == first.id
    assert svc.instances.start("other", "team-2").created  # other owners are not affected


def test_per_challenge_override_of_the_owner_limit(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend)
    service.challenges.put(demo_spec("a", limits={"per_owner": 2}))
    service.challenges.put(demo_spec("b", limits={"per_owner": 2}))
    service.instances.start("a", "o")
    assert service.instances.start("b", "o").created


def test_cooldown_between_starts_but_stop_is_always_allowed(
    make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    service = make_service(backend=fake_backend, clock=clock, cooldown_seconds=5)
    service.challenges.put(demo_spec("web"))
    inst = service.instances.start("web", "o").instance
    assert service.instances.stop(inst.id).state is State.STOPPED
    with pytest.raises(Cooldown) as caught:
        service.instances.start("web", "o")
    assert caught.value.details["retry_after_seconds"] == 5
    clock.advance(5)
    assert service.instances.start("web", "o").created


def test_capacity_counts_every_owner(make_service: MakeService, fake_backend: FakeBackend) -> None:
    service = make_service(backend=fake_backend, capacity=2)
    service.challenges.put(demo_spec("web"))
    service.instances.start("web", "a")
    service.instances.start("web", "b")
    with pytest.raises(CapacityReached):
        service.instances.start("web", "c")


def test_engine_down_fails_fast_and_records_nothing(svc: Service, fake_backend: FakeBackend) -> None:
    fake_backend.down = True
    with pytest.raises(BackendUnavailable):
        svc.instances.start("web", "o")
    assert svc.instances.find(InstanceFilter()).total == 0
    fake_backend.down = False
    assert svc.instances.start("web", "o").created  # and no cooldown was consumed


def test_missing_image_marks_the_instance_failed_and_frees_its_port(
    svc: Service, fake_backend: FakeBackend
) -> None:
    fake_backend.images = set()
    with pytest.raises(ImageMissing):
        svc.instances.start("web", "o")
    (failed,) = svc.instances.find(InstanceFilter()).items
    assert failed.state is State.FAILED and failed.reason and failed.reason.startswith("IMAGE_MISSING")
    assert failed.allocations == () and svc.instances.stats().ports_allocated == 0


def test_not_ready_in_time_fails_and_removes_the_container(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend, ready_timeout_seconds=0.05)
    service.challenges.put(demo_spec("web"))
    fake_backend.ready = False
    with pytest.raises(InstanceStartFailed):
        service.instances.start("web", "o")
    assert fake_backend.running == {}
    assert service.instances.find(InstanceFilter(states=frozenset({State.FAILED}))).total == 1


def test_a_port_held_outside_instancer_is_replaced(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend, port_range_start=40000, port_range_end=40001)
    service.challenges.put(demo_spec("web"))
    fake_backend.busy_ports = {40000}
    inst = service.instances.start("web", "o").instance
    assert [a.host_port for a in inst.allocations] == [40001]
    assert service.instances.stats().ports_allocated == 1


def test_ports_exhausted(make_service: MakeService, fake_backend: FakeBackend) -> None:
    service = make_service(backend=fake_backend, port_range_start=40000, port_range_end=40000)
    service.challenges.put(demo_spec("web"))
    service.instances.start("web", "a")
    with pytest.raises(PortsExhausted):
        service.instances.start("web", "b")


def test_extend_obeys_count_and_interval(
    make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    service = make_service(backend=fake_backend, clock=clock, extension_interval_seconds=300)
    service.challenges.put(
        demo_spec(
            "web",
            lifetime={
                "seconds": 600,
                "extension_seconds": 600,
                "max_extensions": 1,
                "max_remaining_seconds": 3600,
            },
        )
    )
    inst = service.instances.start("web", "o").instance
    extended = service.instances.extend(inst.id)
    assert (extended.expires_at - inst.expires_at).total_seconds() == 600
    assert extended.extensions_left == 0
    clock.advance(10)
    with pytest.raises(ExtensionLimitReached):
        service.instances.extend(inst.id)


def test_extend_too_soon(make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock) -> None:
    service = make_service(backend=fake_backend, clock=clock, extension_interval_seconds=300)
    service.challenges.put(
        demo_spec("web", lifetime={"seconds": 60, "extension_seconds": 60, "max_remaining_seconds": 3600})
    )
    inst = service.instances.start("web", "o").instance
    service.instances.extend(inst.id)
    with pytest.raises(ExtensionTooSoon):
        service.instances.extend(inst.id)
    clock.advance(300)
    service.instances.extend(inst.id)


def test_admin_extend_ignores_limits(svc: Service) -> None:
    inst = svc.instances.start("web", "o").instance
    for _ in range(10):
        svc.instances.admin_extend(inst.id, seconds=3600)
    assert (svc.instances.get(inst.id).expires_at - inst.expires_at).total_seconds() == 36000


def test_revert_replaces_the_containers_and_keeps_deadline_port_and_flag(
    svc: Service, fake_backend: FakeBackend
) -> None:
    inst = svc.instances.start("web", "o").instance
    flag = fake_backend.running[inst.id].containers[0].env["FLAG"]
    reverted = svc.instances.revert(inst.id)
    assert reverted.state is State.RUNNING and reverted.generation == 2
    assert (reverted.expires_at, reverted.allocations) == (inst.expires_at, inst.allocations)
    assert fake_backend.running[inst.id].containers[0].env["FLAG"] == flag
    assert fake_backend.running[inst.id].generation == 2 and fake_backend.starts == 2


def test_revert_obeys_the_cooldown(
    make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    service = make_service(backend=fake_backend, clock=clock, cooldown_seconds=5)
    service.challenges.put(demo_spec("web"))
    inst = service.instances.start("web", "o").instance
    with pytest.raises(Cooldown):
        service.instances.revert(inst.id)
    clock.advance(5)
    service.instances.revert(inst.id)


def test_stop_is_idempotent_and_frees_everything(svc: Service, fake_backend: FakeBackend) -> None:
    inst = svc.instances.start("web", "o").instance
    assert svc.instances.stop(inst.id).state is State.STOPPED
    assert svc.instances.stop(inst.id).state is State.STOPPED
    assert fake_backend.running == {} and svc.instances.stats().ports_allocated == 0
    with pytest.raises(InstanceNotRunning):
        svc.instances.extend(inst.id)
    with pytest.raises(InstanceNotRunning):
        svc.instances.revert(inst.id)


def test_owner_mismatch_looks_like_not_found(svc: Service) -> None:
    inst = svc.instances.start("web", "o").instance
    with pytest.raises(InstanceNotFound):
        svc.instances.stop(inst.id, owner="someone-else")
    assert svc.instances.get(inst.id).state is State.RUNNING


def test_reaper_expires_on_time_and_not_before(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    inst = svc.instances.start("web", "o").instance
    clock.advance(3599)
    assert svc.instances.reap()["expired"] == 0
    clock.advance(1)
    assert svc.instances.reap()["expired"] == 1
    ended = svc.instances.get(inst.id)
    assert ended.state is State.EXPIRED and ended.reason == "lifetime over"
    assert fake_backend.running == {}
    assert svc.instances.start("web", "o").created  # the slot is free again


def test_reaper_finishes_a_stop_the_engine_interrupted(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    inst = svc.instances.start("web", "o").instance
    fake_backend.down = True
    with pytest.raises(BackendUnavailable):
        svc.instances.stop(inst.id)
    assert svc.instances.get(inst.id).state is State.STOPPING
    fake_backend.down = False
    clock.advance(121)
    assert svc.instances.reap()["stale_stopping"] == 1
    assert svc.instances.get(inst.id).state is State.STOPPED and fake_backend.running == {}


def test_orphans_without_live_records_are_removed(svc: Service, fake_backend: FakeBackend) -> None:
    inst = svc.instances.start("web", "o").instance
    svc.instances.stop(inst.id)
    fake_backend.running["f" * 32] = LaunchPlan("f" * 32, 1, "web", "x", inst.expires_at, ())  # no record
    live = svc.instances.start("web", "p").instance
    assert svc.instances.remove_orphans(grace_seconds=0) == 1
    assert set(fake_backend.running) == {live.id}


def test_stop_all_of_a_challenge(svc: Service) -> None:
    for owner in ("a", "b", "c"):
        svc.instances.start("web", owner)
    svc.instances.start("other", "d")
    assert svc.instances.stop_all("web") == 3
    assert svc.instances.stats().by_challenge == {"other": 1}


def test_deleting_a_challenge_stops_its_instances(svc: Service) -> None:
    svc.instances.start("web", "a")
    assert svc.challenges.delete("web") == 1
    with pytest.raises(ChallengeNotFound):
        svc.challenges.get("web")


def test_per_challenge_capacity(make_service: MakeService, fake_backend: FakeBackend) -> None:
    service = make_service(backend=fake_backend)
    service.challenges.put(demo_spec("small", limits={"capacity": 1}))
    service.challenges.put(demo_spec("big"))
    service.instances.start("small", "a")
    with pytest.raises(CapacityReached) as caught:
        service.instances.start("small", "b")
    assert caught.value.details == {"capacity": 1, "scope": "challenge"}
    assert service.instances.start("big", "b").created


def test_an_extension_wins_over_a_reaper_that_read_the_old_deadline(svc: Service, clock: FakeClock) -> None:
    inst = svc.instances.start("web", "o").instance
    clock.advance(3600)  # the reaper reads `inst` as due ...
    svc.instances.admin_extend(inst.id, seconds=600)  # ... then the extension commits
    assert not svc.instances._claim(inst, LIVE_STATES, "lifetime over", expired_by=clock.now())
    assert svc.instances.reap()["expired"] == 0 and svc.instances.get(inst.id).state is State.RUNNING


def test_a_stop_during_the_start_leaves_no_container_and_no_port(
    svc: Service, fake_backend: FakeBackend
) -> None:
    def stop_it(plan: LaunchPlan) -> None:
        fake_backend.before_start = None
        svc.instances.stop(plan.instance_id)

    fake_backend.before_start = stop_it
    with pytest.raises(InstanceStartFailed):
        svc.instances.start("web", "o")
    (inst,) = svc.instances.find(InstanceFilter()).items
    assert inst.state is State.STOPPED and fake_backend.running == {}
    assert svc.instances.stats().ports_allocated == 0


def test_a_stop_during_a_port_retry_leaks_no_port(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend, port_range_start=40000, port_range_end=40001)
    service.challenges.put(demo_spec("web"))
    fake_backend.busy_ports = {40000, 40001}

    def stop_it(plan: LaunchPlan) -> None:
        fake_backend.before_start = None
        service.instances.stop(plan.instance_id)

    fake_backend.before_start = stop_it
    with pytest.raises(InstanceStartFailed):
        service.instances.start("web", "o")
    assert service.instances.stats().ports_allocated == 0 and fake_backend.running == {}


def test_an_unexpected_engine_error_fails_the_start_instead_of_leaving_it_starting(
    svc: Service, fake_backend: FakeBackend
) -> None:
    def boom(plan: LaunchPlan) -> None:
        raise KeyError("NetworkSettings")

    fake_backend.before_start = boom
    with pytest.raises(KeyError):
        svc.instances.start("web", "o")
    (inst,) = svc.instances.find(InstanceFilter()).items
    assert inst.state is State.FAILED and inst.reason and inst.reason.startswith("INTERNAL_ERROR")
    fake_backend.before_start = None
    assert svc.instances.start("web", "o").created  # the slot is free again


def test_a_long_engine_error_is_recorded_truncated(svc: Service, fake_backend: FakeBackend) -> None:
    def refuse(plan: LaunchPlan) -> None:
        raise BackendRejected("x" * 5000)

    fake_backend.before_start = refuse
    with pytest.raises(BackendRejected):
        svc.instances.start("web", "o")
    (inst,) = svc.instances.find(InstanceFilter()).items
    assert inst.state is State.FAILED and inst.reason is not None and len(inst.reason) == 500


def test_a_failed_stop_is_retried_within_seconds(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    inst = svc.instances.start("web", "o").instance
    clock.advance(3600)
    fake_backend.down = True
    assert svc.instances.reap()["expired"] == 0  # the engine blipped at the deadline
    fake_backend.down = False
    clock.advance(3)
    assert svc.instances.reap()["stale_stopping"] == 1
    assert svc.instances.get(inst.id).state is State.EXPIRED and fake_backend.running == {}


def test_revert_uses_the_spec_the_instance_started_from(svc: Service, fake_backend: FakeBackend) -> None:
    inst = svc.instances.start("web", "o").instance
    svc.challenges.put(demo_spec("web", image="other:2", ports=[{"port": 9090, "protocol": "tcp"}]))
    svc.instances.revert(inst.id)
    (container,) = fake_backend.running[inst.id].containers
    assert container.image == "instancer/demo-web:latest" and container.ports[0].container_port == 8080
    assert (
        svc.instances.start("web", "p").instance.allocations[0].container_port == 9090
    )  # new starts: new spec


def test_one_owner_racing_for_several_challenges_gets_one_instance(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend)
    for n in range(8):
        service.challenges.put(demo_spec(f"c{n}"))

    def start(n: int) -> str:
        try:
            service.instances.start(f"c{n}", "team")
            return "started"
        except InstanceLimitReached:
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(start, range(8)))
    assert outcomes == ["refused"] * 7 + ["started"]


def test_an_instance_whose_container_vanished_is_marked_lost_and_frees_its_slot(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    inst = svc.instances.start("web", "o").instance
    clock.advance(1)
    fake_backend.running.pop(inst.id)  # `docker rm -f` behind the service's back
    assert svc.instances.reconcile()["lost"] == 1
    lost = svc.instances.get(inst.id)
    assert (
        lost.state is State.LOST and lost.reason == "LOST: 0 of 1 container(s) running at the last reconcile"
    )
    assert svc.instances.stats().ports_allocated == 0
    assert svc.instances.start("web", "o").created
    assert svc.instances.reconcile()["lost"] == 0


def test_an_engine_outage_marks_nothing_lost(svc: Service, fake_backend: FakeBackend) -> None:
    inst = svc.instances.start("web", "o").instance
    fake_backend.down = True
    with pytest.raises(BackendUnavailable):
        svc.instances.reconcile()
    fake_backend.down = False
    assert svc.instances.reconcile() == {"orphans": 0, "lost": 0}
    assert svc.instances.get(inst.id).state is State.RUNNING


def test_a_start_left_by_a_dead_replica_is_failed_and_cleaned_up(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    mine = svc.instances.start("web", "a").instance
    theirs = svc.instances.start("web", "b").instance
    with svc.store.transaction() as tx:  # two starts in flight: one of a live replica, one of a dead one
        tx.heartbeat("alive", clock.now())
        for inst, replica in ((mine, "alive"), (theirs, "dead")):
            tx.transition(
                inst.id,
                expect=frozenset({State.RUNNING}),
                to=State.STARTING,
                now=clock.now(),
                claimed_by=replica,
            )
    assert svc.instances.reap()["stale_starting"] == 1
    failed = svc.instances.get(theirs.id)
    assert failed.state is State.FAILED and failed.reason == "start interrupted"
    assert theirs.id not in fake_backend.running and svc.instances.get(mine.id).state is State.STARTING
    clock.advance(16)  # the live replica falls silent too
    assert svc.instances.reap()["stale_starting"] == 1


def test_a_blip_shorter_than_the_lost_delay_is_no_loss(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    inst = svc.instances.start("web", "o").instance
    clock.advance(1)
    plan = fake_backend.running.pop(inst.id)  # the engine stops it (shutting down) ...
    assert svc.instances.reconcile(lost_after_seconds=20)["lost"] == 0
    clock.advance(10)
    fake_backend.running[inst.id] = plan  # ... and its restart policy brings it back
    assert svc.instances.reconcile(lost_after_seconds=20)["lost"] == 0
    fake_backend.running.pop(inst.id)  # gone for good this time
    clock.advance(10)
    assert svc.instances.reconcile(lost_after_seconds=20)["lost"] == 0  # the earlier blip does not count
    clock.advance(20)
    assert svc.instances.reconcile(lost_after_seconds=20)["lost"] == 1


def test_with_the_recreate_policy_a_lost_instance_comes_back_in_place(
    make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    service = make_service(backend=fake_backend, clock=clock, lost_policy="recreate")
    service.challenges.put(demo_spec("web"))
    inst = service.instances.start("web", "o").instance
    flag = fake_backend.running[inst.id].containers[0].env["FLAG"]
    clock.advance(1)
    fake_backend.running.pop(inst.id)
    assert service.instances.reconcile() == {"orphans": 0, "lost": 0, "recreated": 1}
    back = service.instances.get(inst.id)
    assert (back.state, back.generation, back.allocations, back.expires_at) == (
        State.RUNNING,
        2,
        inst.allocations,
        inst.expires_at,
    )
    assert back.reason == "recreated: 0 of 1 container(s) running at the last reconcile"
    assert fake_backend.running[inst.id].containers[0].env["FLAG"] == flag


def test_a_live_replica_whose_clock_lags_is_not_taken_for_dead(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    behind, ahead = FakeClock(), FakeClock()
    ahead.advance(60)  # a minute of skew between the two hosts
    one = make_service(backend=fake_backend, clock=behind)
    two = make_service(backend=fake_backend, clock=ahead)
    one.challenges.put(demo_spec("web"))
    inst = one.instances.start("web", "a").instance
    with one.store.transaction() as tx:  # `one` is mid-start
        tx.transition(
            inst.id,
            expect=frozenset({State.RUNNING}),
            to=State.STARTING,
            now=behind.now(),
            claimed_by=one.instances.replica_id,
        )
    for _ in range(5):  # `one` keeps beating; `two` watches with its own clock
        one.instances.heartbeat()
        assert two.instances.reap()["stale_starting"] == 0
        behind.advance(5)
        ahead.advance(5)
    ahead.advance(20)  # `one` falls silent for longer than the timeout, by `two`'s clock
    assert two.instances.reap()["stale_starting"] == 1


def test_a_dead_replicas_stop_is_taken_over_by_exactly_one_live_replica(
    make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    one = make_service(backend=fake_backend, clock=clock)
    two = make_service(backend=fake_backend, clock=clock)
    one.challenges.put(demo_spec("web"))
    inst = one.instances.start("web", "a").instance
    with one.store.transaction() as tx:  # a replica that died halfway through a stop
        tx.transition(
            inst.id,
            expect=frozenset({State.RUNNING}),
            to=State.STOPPING,
            now=clock.now(),
            claimed_by="dead-replica",
        )
    stale = one.instances.get(inst.id)
    assert one.instances._take_over(stale) and not two.instances._take_over(stale)


def test_a_revert_between_the_records_and_the_listing_is_not_taken_for_a_loss(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    inst = svc.instances.start("web", "o").instance
    clock.advance(1)
    real_list = fake_backend.list_managed

    def list_during_a_revert() -> list:
        fake_backend.running.pop(inst.id)  # generation 1 is going away ...
        observed = real_list()
        svc.instances.revert(inst.id)  # ... and generation 2 arrives after the listing
        return observed

    fake_backend.list_managed = list_during_a_revert  # type: ignore[method-assign]
    assert svc.instances.reconcile()["lost"] == 0
    assert svc.instances.get(inst.id).state is State.RUNNING


def test_an_outage_resets_the_lost_delay(svc: Service, fake_backend: FakeBackend, clock: FakeClock) -> None:
    inst = svc.instances.start("web", "o").instance
    clock.advance(1)
    fake_backend.running.pop(inst.id)  # the engine stops containers while shutting down ...
    assert svc.instances.reconcile(lost_after_seconds=20)["lost"] == 0
    fake_backend.down = True  # ... then is gone for longer than the delay
    clock.advance(30)
    with pytest.raises(BackendUnavailable):
        svc.instances.reconcile(lost_after_seconds=20)
    fake_backend.down = False  # back, with this container not restarted yet: one sighting only
    assert svc.instances.reconcile(lost_after_seconds=20)["lost"] == 0


def test_stopping_an_instance_already_stopping_leaves_its_claim_alone(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    inst = svc.instances.start("web", "o").instance
    clock.advance(3600)
    fake_backend.down = True
    svc.instances.reap()  # the expiry is claimed, the engine fails it
    fake_backend.down = False
    assert svc.instances.stop(inst.id).state is State.STOPPING
    assert svc.instances.get(inst.id).reason == "lifetime over"
