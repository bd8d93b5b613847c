"""The challenge spec: defaults, the short form, and every rule that refuses a bad spec."""

from __future__ import annotations

import pytest

from instancer.domain.errors import ValidationFailed
from instancer.domain.spec import Protocol, parse_spec


def test_short_form_becomes_one_container_with_documented_defaults() -> None:
    spec = parse_spec({"id": "web", "image": "img:1", "ports": [{"port": 80, "protocol": "http"}]})
    (c,) = spec.containers
    assert (c.name, c.image, c.ports[0].port, c.ports[0].protocol) == ("main", "img:1", 80, Protocol.HTTP)
    assert (c.resources.memory_mib, c.resources.cpus, c.resources.pids) == (256, 0.5, 256)
    lt = spec.lifetime
    assert (lt.seconds, lt.extension_seconds, lt.max_extensions, lt.max_remaining_seconds) == (
        3600,
        3600,
        5,
        7200,
    )
    assert spec.flag.env == "FLAG"
    assert c.cap_add == ()
    assert spec.egress is False  # no way out unless the organiser says so


def test_long_form_holds_several_containers() -> None:
    spec = parse_spec(
        {
            "id": "app",
            "containers": [
                {"name": "web", "image": "a", "ports": [{"port": 80}]},
                {"name": "db", "image": "b"},
            ],
        }
    )
    assert [c.name for c in spec.containers] == ["web", "db"]
    assert [(c.name, p.port) for c, p in spec.exposed] == [("web", 80)]


def test_url_id_fills_a_missing_id() -> None:
    assert parse_spec({"image": "a"}, challenge_id="x1").id == "x1"


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"id": "Bad Id", "image": "a"}, "id"),
        ({"id": "a", "image": "a", "unknown": 1}, "unknown"),
        ({"id": "a", "image": "a", "ports": [{"port": 0}]}, "port"),
        ({"id": "a", "image": "a", "ports": [{"port": 80, "protocol": "udp"}]}, "protocol"),
        ({"id": "a", "image": "a", "ports": [{"port": 80}, {"port": 80}]}, "twice"),
        ({"id": "a", "image": "a", "cap_add": ["SYS_ADMIN"]}, "cap_add"),
        ({"id": "a", "image": "a", "env": {"1BAD": "x"}}, "env"),
        ({"id": "a", "image": "a", "resources": {"memory_mib": 1}}, "memory_mib"),
        (
            {"id": "a", "image": "a", "lifetime": {"seconds": 7200, "max_remaining_seconds": 60}},
            "max_remaining",
        ),
        ({"id": "a", "image": "a", "containers": [{"image": "b"}]}, "not both"),
        ({"id": "a", "containers": [{"name": "x", "image": "a"}, {"name": "x", "image": "b"}]}, "unique"),
        ({"id": "a", "containers": []}, "containers"),
        ({"id": "a", "image": "a; rm -rf /"}, "image"),
        ({"id": "a", "image": "a", "egress": "yes"}, "egress"),  # a boolean, not something truthy
        ("not a mapping", "(root)"),
        ({"id": "a", "image": "a", "placement": {"constraints": ["node.id==abc"]}}, "placement"),
        ({"id": "a", "image": "a", "placement": {"constraints": ["engine.labels.x==y"]}}, "placement"),
        ({"id": "a", "image": "a", "placement": {"constraints": ["node.labels.a==b c"]}}, "placement"),
        ({"id": "a", "image": "a", "placement": {"constraints": ["node.labels.a=b"]}}, "placement"),
        ({"id": "a", "image": "a", "placement": {"constraints": ["node.role==boss"]}}, "node.role"),
        ({"id": "a", "image": "a", "placement": {"constraints": ["node.labels.a==b"] * 11}}, "placement"),
        ({"id": "a", "image": "a", "placement": {"spread": "x"}}, "placement"),
    ],
)
def test_invalid_specs_are_refused_with_the_place_named(document: object, where: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_spec(document)
    text = str(caught.value.details["errors"])
    assert where in text


def test_url_id_must_match_the_documents_id() -> None:
    with pytest.raises(ValidationFailed):
        parse_spec({"id": "a", "image": "x"}, challenge_id="b")


def test_errors_never_echo_the_input() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_spec({"id": "a", "image": "x", "env": {"K": 12345678}})
    assert "12345678" not in str(caught.value.details)


def test_healthcheck_has_quick_defaults_and_is_allowed_in_the_short_form() -> None:
    spec = parse_spec({"id": "a", "image": "i", "healthcheck": {"command": ["nc", "-z", "127.0.0.1", "80"]}})
    check = spec.containers[0].healthcheck
    assert check is not None and check.command == ("nc", "-z", "127.0.0.1", "80")
    assert (check.interval_seconds, check.timeout_seconds, check.start_period_seconds, check.retries) == (
        1.0,
        5.0,
        0.0,
        3,
    )
    assert parse_spec({"id": "a", "image": "i"}).containers[0].healthcheck is None


@pytest.mark.parametrize(
    ("check", "where"),
    [
        ({}, "command"),
        ({"command": []}, "command"),
        ({"command": ["true"], "interval_seconds": 0.01}, "interval_seconds"),
        ({"command": ["true"], "timeout_seconds": 0}, "timeout_seconds"),
        ({"command": ["true"], "start_period_seconds": -1}, "start_period_seconds"),
        ({"command": ["true"], "retries": 0}, "retries"),
        ({"command": ["true"], "retries": "3"}, "retries"),
        ({"command": ["true"], "shell": "x"}, "shell"),
        ({"command": ["a\0b"]}, "NUL"),
    ],
)
def test_bad_healthchecks_are_refused(check: dict, where: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_spec({"id": "a", "containers": [{"image": "i", "healthcheck": check}]})
    assert any(where in f"{e['loc']} {e['message']}" for e in caught.value.details["errors"])


def test_the_short_form_has_no_depends_on() -> None:
    with pytest.raises(ValidationFailed):
        parse_spec({"id": "a", "image": "i", "depends_on": []})


def test_placement_takes_node_labels_host_names_roles_and_platforms() -> None:
    wanted = (
        "node.labels.instancer.pool==pwn",
        "node.hostname != worker-3",
        "node.role==worker",
        "node.platform.arch==x86_64",
    )
    spec = parse_spec({"id": "a", "image": "a", "placement": {"constraints": list(wanted)}})
    assert spec.placement.constraints == wanted
    assert parse_spec({"id": "a", "image": "a"}).placement.constraints == ()
