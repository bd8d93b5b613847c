"""Resource-summed capacity: what instances hold of the engine host's memory and CPUs.

An instance counts once against `INSTANCER_CAPACITY` whatever its size; these rules add
caps on the sum of the resource limits of occupying instances, so that ten-container
challenges cannot crowd the host while counting as ten single ones. Pure functions of
their inputs; the use case calls them inside the start transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CapacityReached
from .spec import ChallengeSpec

NANO = 1_000_000_000


@dataclass(frozen=True)
class Footprint:
    """Summed resource limits. CPUs in nano-cores (as the engine counts them), so sums are exact."""

    memory_mib: int = 0
    nano_cpus: int = 0

    def __add__(self, other: Footprint) -> Footprint:
        return Footprint(self.memory_mib + other.memory_mib, self.nano_cpus + other.nano_cpus)

    @property
    def cpus(self) -> float:
        return self.nano_cpus / NANO


def footprint_of(spec: ChallengeSpec) -> Footprint:
    """The limits of every container of one instance, summed."""
    total = Footprint()
    for c in spec.containers:
        total += Footprint(c.resources.memory_mib, round(c.resources.cpus * NANO))
    return total


def check_resources(
    in_use: Footprint, wanted: Footprint, *, memory_mib: int | None, cpus: float | None
) -> None:
    """Refuse a start whose footprint would take the sum past a configured cap (`None`: no cap).

    | cap set | in_use + wanted <= cap | result                                  |
    |---------|------------------------|-----------------------------------------|
    | no      | -                      | allowed                                 |
    | yes     | yes                    | allowed                                 |
    | yes     | no                     | CapacityReached, `scope` names the cap  |

    Raises:
        CapacityReached: details `scope` (`"memory"` or `"cpus"`), `capacity`, `in_use`, `requested`.
    """
    total = in_use + wanted
    if memory_mib is not None and total.memory_mib > memory_mib:
        raise CapacityReached(
            "the event's instances hold all the memory they may; try again later",
            scope="memory",
            capacity=memory_mib,
            in_use=in_use.memory_mib,
            requested=wanted.memory_mib,
        )
    if cpus is not None and total.nano_cpus > round(cpus * NANO):
        raise CapacityReached(
            "the event's instances hold all the CPU they may; try again later",
            scope="cpus",
            capacity=cpus,
            in_use=in_use.cpus,
            requested=wanted.cpus,
        )
