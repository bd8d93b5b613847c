"""Several containers per instance, through the use cases with the fake engine: the plan the
engine gets (start order, healthchecks, who gets the flag), a dependency that is not healthy,
and the resource-summed capacity decided in the start transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from instancer.backends.fake import FakeBackend
from instancer.bootstrap import Service
from instancer.domain.errors import BackendUnavailable, CapacityReached, ContainerUnhealthy, ImageMissing
from instancer.domain.model import State
from instancer.domain.ports import InstanceFilter, LaunchPlan

MakeService = Callable[..., Service]


def _spec(challenge_id: str = "shop", *, memory: int = 256, cpus: float = 0.5, **extra: Any) -> dict:
    """web depends on api and db; api depends on db; only db has a healthcheck and the flag."""
    resources = {"memory_mib": memory, "cpus": cpus}
    return {
        "id": challenge_id,
        "containers": [
            {"name": "web", "image": "w", "depends_on": ["api", "db"], "ports": [{"port": 80}]},
            {"name": "api", "image": "a", "depends_on": ["db"], "resources": resources},
            {
                "name": "db",
                "image": "d",
                "resources": resources,
                "healthcheck": {"command": ["pg_isready"], "interval_seconds": 0.5},
            },
        ],
        "flag": {"containers": ["db"]},
        **extra,
    }


def test_the_engine_gets_the_containers_dependencies_first_with_their_healthchecks(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend, ready_timeout_seconds=7)
    service.challenges.put(_spec())
    inst = service.instances.start("shop", "o").instance
    plan = fake_backend.running[inst.id]
    assert [c.name for c in plan.containers] == ["db", "api", "web"]
    web, db = plan.containers[2], plan.containers[0]
    assert web.depends_on == ("api", "db") and web.healthcheck is None
    assert db.healthcheck is not None and db.healthcheck.command == ("pg_isready",)
    assert plan.healthy_timeout_seconds == 7
    flag = service.flags.reveal(inst.id)
    assert [c.env.get("FLAG") for c in plan.containers] == [flag, None, None]


def test_a_dependency_that_is_not_healthy_fails_the_start_with_its_reason(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend)
    service.challenges.put(_spec())

    def unhealthy(plan: LaunchPlan) -> None:
        raise ContainerUnhealthy("container 'db' turned unhealthy", container="db")

    fake_backend.before_start = unhealthy
    with pytest.raises(ContainerUnhealthy):
        service.instances.start("shop", "o")
    (failed,) = service.instances.find(InstanceFilter()).items
    assert failed.state is State.FAILED
    assert failed.reason == "CONTAINER_UNHEALTHY: container 'db' turned unhealthy"
    assert fake_backend.running == {} and service.instances.stats().ports_allocated == 0


def test_summed_memory_refuses_a_start_that_would_pass_the_cap(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    # Each instance: web 256 (default) + api 300 + db 300 = 856 MiB; two fit in 1712.
    service = make_service(backend=fake_backend, capacity_memory_mib=1712, per_owner_limit=5)
    service.challenges.put(_spec(memory=300))
    first = service.instances.start("shop", "a").instance
    service.instances.start("shop", "b")
    with pytest.raises(CapacityReached) as caught:
        service.instances.start("shop", "c")
    assert caught.value.details == {"scope": "memory", "capacity": 1712, "in_use": 1712, "requested": 856}
    assert service.instances.find(InstanceFilter(owner="c")).total == 0  # nothing recorded
    service.instances.stop(first.id)
    assert service.instances.start("shop", "c").created  # an ended instance holds nothing


def test_summed_cpus_refuse_naming_the_cpus(make_service: MakeService, fake_backend: FakeBackend) -> None:
    # Each instance: web 0.5 (default) + api 0.1 + db 0.1 = 0.7 cores.
    service = make_service(backend=fake_backend, capacity_cpus=1.4)
    service.challenges.put(_spec(cpus=0.1))
    service.instances.start("shop", "a")
    service.instances.start("shop", "b")
    with pytest.raises(CapacityReached) as caught:
        service.instances.start("shop", "c")
    assert caught.value.details["scope"] == "cpus"
    assert caught.value.details["in_use"] == pytest.approx(1.4)


def test_an_instance_counts_with_the_spec_it_started_from(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend, capacity_memory_mib=1000)
    service.challenges.put(_spec(memory=100))  # 256 + 100 + 100 = 456
    service.instances.start("shop", "a")
    service.challenges.put(_spec(memory=16))  # 256 + 16 + 16 = 288: 456 + 288 <= 1000
    assert service.instances.start("shop", "b").created
    with pytest.raises(CapacityReached) as caught:
        service.instances.start("shop", "c")
    assert caught.value.details["in_use"] == 456 + 288


def test_failed_and_stopping_instances_count_as_they_occupy(
    make_service: MakeService, fake_backend: FakeBackend
) -> None:
    service = make_service(backend=fake_backend, capacity_memory_mib=856)
    service.challenges.put(_spec(memory=300))
    fake_backend.images = set()
    with pytest.raises(ImageMissing):
        service.instances.start("shop", "a")
    fake_backend.images = None
    inst = service.instances.start("shop", "b").instance  # the failed one holds nothing
    fake_backend.down = True
    with pytest.raises(BackendUnavailable):  # the record stays stopping
        service.instances.stop(inst.id)
    fake_backend.down = False
    assert service.instances.get(inst.id).state is State.STOPPING
    with pytest.raises(CapacityReached):
        service.instances.start("shop", "c")  # its containers may still exist
