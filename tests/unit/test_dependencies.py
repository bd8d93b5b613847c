"""Start order from `depends_on`, and the spec rules it enforces: known names, no self, no cycle."""

from __future__ import annotations

import pytest

from instancer.domain.dependencies import DependencyError, start_order
from instancer.domain.errors import ValidationFailed
from instancer.domain.spec import parse_spec


@pytest.mark.parametrize(
    ("graph", "order"),
    [
        ({"web": ["db"], "db": []}, ["db", "web"]),
        ({"a": [], "b": []}, ["a", "b"]),
        ({"web": ["db"], "db": [], "cache": []}, ["db", "web", "cache"]),
        ({"web": ["api", "db"], "api": ["db"], "db": []}, ["db", "api", "web"]),
        ({"only": []}, ["only"]),
    ],
)
def test_dependencies_come_first_and_declaration_order_breaks_ties(
    graph: dict[str, list[str]], order: list[str]
) -> None:
    assert start_order(graph) == order


@pytest.mark.parametrize(
    ("graph", "words"),
    [
        ({"web": ["cache"]}, ["unknown", "cache"]),
        ({"web": ["web"]}, ["itself", "web"]),
        ({"a": ["b"], "b": ["a"]}, ["cycle", "a", "b"]),
        ({"a": ["c"], "b": ["a"], "c": ["b"], "d": []}, ["cycle"]),
    ],
)
def test_unknown_names_self_dependencies_and_cycles_are_refused(
    graph: dict[str, list[str]], words: list[str]
) -> None:
    with pytest.raises(DependencyError) as caught:
        start_order(graph)
    assert all(w in str(caught.value) for w in words)


def _two(web: dict, db: dict | None = None) -> dict:
    return {
        "id": "app",
        "containers": [{"name": "web", "image": "a", **web}, {"name": "db", "image": "b", **(db or {})}],
    }


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (_two({"depends_on": ["cache"]}), "unknown containers ['cache']"),
        (_two({"depends_on": ["web"]}), "depends on itself"),
        (_two({"depends_on": ["db"]}, {"depends_on": ["web"]}), "cycle"),
        (_two({"depends_on": ["db", "db"]}), "twice"),
        (_two({"depends_on": "db"}), "depends_on"),
    ],
)
def test_the_spec_refuses_bad_dependencies_with_a_clear_message(document: dict, words: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_spec(document)
    assert any(words in f"{e['loc']} {e['message']}" for e in caught.value.details["errors"])


def test_a_valid_dependency_is_kept() -> None:
    spec = parse_spec(_two({"depends_on": ["db"]}))
    assert spec.containers[0].depends_on == ("db",) and spec.containers[1].depends_on == ()
