"""Resource-summed capacity: a start is refused when the summed limits would pass a cap."""

from __future__ import annotations

import pytest

from instancer.domain.capacity import Footprint, check_resources, footprint_of
from instancer.domain.errors import CapacityReached
from instancer.domain.spec import parse_spec


def test_an_instance_footprint_sums_its_containers() -> None:
    spec = parse_spec(
        {
            "id": "a",
            "containers": [
                {"name": "web", "image": "i", "resources": {"memory_mib": 100, "cpus": 0.1}},
                {"name": "db", "image": "i", "resources": {"memory_mib": 300, "cpus": 0.2}},
                {"name": "cache", "image": "i"},  # defaults: 256 MiB, 0.5 CPU
            ],
        }
    )
    assert footprint_of(spec) == Footprint(memory_mib=656, nano_cpus=800_000_000)


def _cores(cpus: float) -> Footprint:
    return Footprint(0, round(cpus * 1e9))


def test_no_cap_allows_anything() -> None:
    check_resources(Footprint(10**6, 10**15), Footprint(10**6, 10**15), memory_mib=None, cpus=None)


def test_reaching_a_cap_exactly_is_allowed_and_sums_are_exact() -> None:
    check_resources(Footprint(512, 0), Footprint(512, 0), memory_mib=1024, cpus=None)
    # 0.1 + 0.2 > 0.3 in floating point; in nano-cores it is exactly 0.3.
    check_resources(_cores(0.1), _cores(0.2), memory_mib=None, cpus=0.3)


@pytest.mark.parametrize(
    ("in_use", "wanted", "caps", "scope"),
    [
        (Footprint(768, 0), Footprint(512, 0), {"memory_mib": 1024, "cpus": None}, "memory"),
        (_cores(1.5), _cores(0.75), {"memory_mib": None, "cpus": 2.0}, "cpus"),
        (Footprint(0, 0), Footprint(2048, 0), {"memory_mib": 1024, "cpus": 8.0}, "memory"),
    ],
)
def test_passing_a_cap_is_refused_naming_the_resource(
    in_use: Footprint, wanted: Footprint, caps: dict, scope: str
) -> None:
    with pytest.raises(CapacityReached) as caught:
        check_resources(in_use, wanted, **caps)
    details = caught.value.details
    assert details["scope"] == scope
    expected = (in_use.memory_mib, wanted.memory_mib) if scope == "memory" else (in_use.cpus, wanted.cpus)
    assert (details["in_use"], details["requested"]) == expected
