"""The start order of a challenge's containers, from their `depends_on` lists.

A pure function over names, shared by the spec validator (which refuses unknown names,
self-dependencies and cycles) and the use cases (which hand the engine its containers
dependencies first). It knows nothing of containers or engines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class DependencyError(ValueError):
    """The dependency lists cannot be ordered; the message says why and names the containers."""


def start_order(depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """Every name, each after the names it depends on: repeatedly the first name (in the
    mapping's order) whose dependencies are all placed.

    | input                              | result                     |
    |------------------------------------|----------------------------|
    | {web: [db], db: []}                | [db, web]                  |
    | {a: [], b: []}                     | [a, b] (declaration order) |
    | {web: [db], db: [], cache: []}     | [db, web, cache]           |
    | {web: [cache]}, no `cache` key     | DependencyError (unknown)  |
    | {web: [web]}                       | DependencyError (self)     |
    | {a: [b], b: [a]}                   | DependencyError (cycle)    |

    Raises:
        DependencyError
    """
    _check_names(depends_on)
    ordered: list[str] = []
    waiting = list(depends_on)
    while waiting:
        ready = next((n for n in waiting if set(depends_on[n]) <= set(ordered)), None)
        if ready is None:
            raise DependencyError(f"depends_on has a cycle among {sorted(waiting)}")
        ordered.append(ready)
        waiting.remove(ready)
    return ordered


def _check_names(depends_on: Mapping[str, Sequence[str]]) -> None:
    for name, needs in depends_on.items():
        if name in needs:
            raise DependencyError(f"container {name!r} depends on itself")
        unknown = sorted(set(needs) - set(depends_on))
        if unknown:
            raise DependencyError(f"container {name!r} depends on unknown containers {unknown}")
