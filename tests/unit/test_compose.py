"""Docker Compose to challenge spec: the common subset converts into a valid spec, everything
else is named with why, and an unusable file is a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from instancer.compose import convert
from instancer.domain.errors import ValidationFailed
from instancer.domain.spec import parse_spec

SHOP = Path(__file__).parent / "data" / "compose-shop.yml"


def _convert(services: dict[str, Any], **top: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """(the first container, ignored keys -> why) of a converted document."""
    out = convert({"services": services, **top}, challenge_id="t")
    return out.spec["containers"][0], dict(out.ignored)


def test_a_two_service_file_with_a_healthcheck_and_depends_on_becomes_a_valid_spec() -> None:
    out = convert(yaml.safe_load(SHOP.read_text()))
    spec = parse_spec(out.spec)
    web, db = spec.containers
    assert spec.id == "shop" and [c.name for c in spec.containers] == ["web", "db"]
    assert (web.image, [p.port for p in web.ports], web.depends_on) == ("ctf/shop-web:1.2", [80], ("db",))
    assert web.env == {"DB_HOST": "db"}
    assert web.command == ("./serve", "--port", "80", "--title", "Web shop")
    assert web.cap_add == ("NET_BIND_SERVICE",)
    assert db.env == {"POSTGRES_PASSWORD": "example", "MAX_CONNECTIONS": "20"}
    assert db.healthcheck is not None
    assert db.healthcheck.command == ("/bin/sh", "-c", "pg_isready -U postgres")
    assert (db.healthcheck.interval_seconds, db.healthcheck.timeout_seconds) == (2.0, 90.0)
    assert (db.healthcheck.start_period_seconds, db.healthcheck.retries) == (0.5, 5)
    assert db.resources.memory_mib == 512
    ignored = dict(out.ignored)
    assert set(ignored) == {
        "version",
        "networks",
        "volumes",
        "services.web.build",
        "services.web.ports[0].host",
        "services.web.environment.DEBUG",
        "services.web.volumes",
        "services.web.cap_add.SYS_ADMIN",
        "services.web.restart",
        "services.db.networks",
    }
    assert "8080" in ignored["services.web.ports[0].host"]
    assert any("FLAG" in note for note in out.notes)


@pytest.mark.parametrize(
    ("ports", "kept", "dropped"),
    [
        (["8080:80"], [{"port": 80}], ["ports[0].host"]),
        (["127.0.0.1:8080:80/tcp"], [{"port": 80}], ["ports[0].host"]),
        (["80"], [{"port": 80}], []),
        ([80], [{"port": 80}], []),
        (
            [{"target": 80, "published": "8080", "protocol": "tcp", "app_protocol": "http"}],
            [{"port": 80, "protocol": "http"}],
            ["ports[0].published"],
        ),
        (["53:53/udp", "8000-8010:8000-8010"], None, ["ports[0]", "ports[1]"]),
    ],
)
def test_ports_keep_the_container_port_and_report_the_host_part(
    ports: list[Any], kept: list[dict[str, Any]] | None, dropped: list[str]
) -> None:
    container, ignored = _convert({"app": {"image": "i", "ports": ports}})
    assert container.get("ports") == kept
    assert sorted(ignored) == sorted(f"services.app.{d}" for d in dropped)


@pytest.mark.parametrize(
    "environment",
    [["A=1", "B=x=y", "C="], {"A": 1, "B": "x=y", "C": ""}],
)
def test_environment_as_a_list_or_a_mapping(environment: Any) -> None:
    container, _ = _convert({"app": {"image": "i", "environment": environment}})
    assert container["env"] == {"A": "1", "B": "x=y", "C": ""}


def test_booleans_in_the_environment_are_written_as_compose_writes_them() -> None:
    container, _ = _convert({"app": {"image": "i", "environment": {"ON": True, "OFF": False}}})
    assert container["env"] == {"ON": "true", "OFF": "false"}


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("sh -c 'echo hi'", ["sh", "-c", "echo hi"]),
        (["python", "-m", "http.server", 80], ["python", "-m", "http.server", "80"]),
    ],
)
def test_command_as_a_string_or_a_list(command: Any, argv: list[str]) -> None:
    container, _ = _convert({"app": {"image": "i", "command": command}})
    assert container["command"] == argv


@pytest.mark.parametrize(
    ("test", "command"),
    [
        (["CMD", "curl", "-f", "http://localhost/"], ["curl", "-f", "http://localhost/"]),
        (
            ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
            ["/bin/sh", "-c", "curl -f http://localhost/ || exit 1"],
        ),
        ("nc -z localhost 80", ["/bin/sh", "-c", "nc -z localhost 80"]),
    ],
)
def test_healthcheck_test_forms(test: Any, command: list[str]) -> None:
    container, _ = _convert({"app": {"image": "i", "healthcheck": {"test": test}}})
    assert container["healthcheck"] == {"command": command}


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("1.5s", 1.5), (15, 15.0)],
)
def test_durations(duration: Any, seconds: float) -> None:
    container, _ = _convert({"app": {"image": "i", "healthcheck": {"test": "true", "interval": duration}}})
    assert container["healthcheck"]["interval_seconds"] == seconds


def test_a_disabled_healthcheck_gives_none() -> None:
    for check in ({"disable": True}, {"test": ["NONE"]}):
        container, ignored = _convert({"app": {"image": "i", "healthcheck": check}})
        assert "healthcheck" not in container and ignored == {}


def test_depends_on_as_a_list_or_with_conditions() -> None:
    out = convert(
        {
            "services": {
                "web": {"image": "i", "depends_on": {"db": {"condition": "service_healthy"}, "job": None}},
                "api": {"image": "i", "depends_on": ["db"]},
                "db": {"image": "i"},
                "job": {"image": "i"},
            }
        },
        challenge_id="t",
    )
    assert [c.get("depends_on") for c in out.spec["containers"]] == [["db", "job"], ["db"], None, None]
    # db has no healthcheck: service_healthy cannot be honoured beyond the order.
    assert "no healthcheck" in dict(out.ignored)["services.web.depends_on.db.condition"]
    parse_spec(out.spec)


def test_resources_from_the_short_keys_and_from_deploy() -> None:
    container, ignored = _convert(
        {
            "app": {
                "image": "i",
                "cpus": "0.25",
                "pids_limit": 100,
                "deploy": {"replicas": 2, "resources": {"limits": {"memory": "1.5g"}, "reservations": {}}},
            }
        }
    )
    assert container["resources"] == {"cpus": 0.25, "pids": 100, "memory_mib": 1536}
    assert set(ignored) == {"services.app.deploy.replicas", "services.app.deploy.resources.reservations"}


def test_the_id_comes_from_the_option_then_the_compose_name_then_the_fallback() -> None:
    doc = {"name": "My Shop", "services": {"a": {"image": "i"}}}
    assert convert(doc, challenge_id="given").spec["id"] == "given"
    assert convert(doc, fallback_id="dir").spec["id"] == "my-shop"
    assert convert({"services": doc["services"]}, fallback_id="Some Dir").spec["id"] == "some-dir"


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ("just text", "no `services`"),
        ({"services": {}}, "empty"),
        ({"services": ["web"]}, "no `services`"),
        ({"services": {"web": {"build": "."}}}, "no `image`"),
        ({"services": {"my_db": {"image": "i"}}}, "rename"),
        ({"services": {"w": {"image": "i", "healthcheck": {"test": "true", "interval": "10x"}}}}, "duration"),
        ({"services": {"w": {"image": "i", "healthcheck": {"test": ["curl"]}}}}, "CMD"),
        ({"services": {"w": {"image": "i", "command": "echo 'unterminated"}}}, "command"),
        ({"services": {"w": {"image": "i", "mem_limit": "lots"}}}, "size"),
    ],
)
def test_an_unusable_file_is_a_clear_error(document: Any, words: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        convert(document, challenge_id="t")
    assert words in caught.value.message


def test_a_result_the_spec_refuses_is_refused_by_its_validator() -> None:
    out = convert(
        {"services": {"a": {"image": "i", "depends_on": ["b"]}, "b": {"image": "i", "depends_on": ["a"]}}},
        challenge_id="t",
    )
    with pytest.raises(ValidationFailed) as caught:
        parse_spec(out.spec)
    assert "cycle" in str(caught.value.details["errors"])
