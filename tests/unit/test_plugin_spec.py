"""The plugin's form -> spec mapping (pure standard library, loaded from its file so
that CTFd is not needed): exposure modes are passed on, the advanced spec is merged over the
form's, bad syntax is refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "plugin/docker_challenges/spec.py"
_SPEC = importlib.util.spec_from_file_location("plugin_spec", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
plugin_spec = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(plugin_spec)


@pytest.mark.parametrize(
    ("text", "ports"),
    [
        ("8080/http", [{"port": 8080, "protocol": "http"}]),
        ("9000", [{"port": 9000, "protocol": "tcp"}]),
        ("8080/http@port, 9000/tcp@tcp-tls", [
            {"port": 8080, "protocol": "http", "expose": "port"},
            {"port": 9000, "protocol": "tcp", "expose": "tcp-tls"},
        ]),
        ("80@http", [{"port": 80, "protocol": "http", "expose": "http"}]),
        ("", []),
    ],
)  # fmt: skip
def test_ports_with_their_exposure(text: str, ports: list[dict]) -> None:
    assert plugin_spec.parse_ports(text) == ports


@pytest.mark.parametrize("text", ["80/udp", "80@https", "http", "80/http@", "80@tcp-tls/tcp"])
def test_bad_port_syntax_is_refused(text: str) -> None:
    with pytest.raises(plugin_spec.SpecError):
        plugin_spec.parse_ports(text)


class _Challenge:
    """The columns to_service_spec reads, with the form's defaults."""

    def __init__(self, extra: str | None = "", **columns: object) -> None:
        self.name, self.docker_image, self.docker_ports = "Web", "instancer/demo-web:latest", "8080/http"
        self.docker_memory_mib, self.docker_cpus, self.docker_pids = 256, 0.5, 256
        self.docker_lifetime, self.docker_extension = 3600, 3600
        self.docker_max_extensions, self.docker_max_remaining = 5, 7200
        self.docker_flag_template, self.docker_flag_env, self.docker_flag_file = (
            "flag{{{hex:32}}}",
            "FLAG",
            "",
        )
        self.docker_capacity, self.docker_spec_extra = 0, extra
        self.__dict__.update(columns)


@pytest.mark.parametrize("extra", ["", None, "  \n"])
def test_no_advanced_spec_leaves_the_forms_spec(extra: str | None) -> None:
    spec = plugin_spec.to_service_spec(_Challenge(extra))
    assert spec["image"] == "instancer/demo-web:latest" and "egress" not in spec


def test_the_advanced_spec_is_merged_object_by_object() -> None:
    extra = '{"egress": true, "lifetime": {"max_extensions": 1}, "flag": {"env": null}, "pool": {"min": 2}}'
    spec = plugin_spec.to_service_spec(_Challenge(extra))
    assert spec["egress"] is True and spec["pool"] == {"min": 2}
    assert spec["lifetime"] == {
        "seconds": 3600,
        "extension_seconds": 3600,
        "max_extensions": 1,
        "max_remaining_seconds": 7200,
    }
    assert spec["flag"] == {"template": "flag{{{hex:32}}}", "env": None, "file": None}


def test_containers_replace_the_forms_single_container() -> None:
    containers = [{"name": "web", "image": "instancer/demo-duo:latest"}]
    spec = plugin_spec.to_service_spec(_Challenge(json.dumps({"containers": containers})))
    assert spec["containers"] == containers
    assert not {"image", "ports", "resources"} & set(spec)
    assert spec["lifetime"]["seconds"] == 3600  # the rest of the form still counts


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("{egress: true}", "not valid JSON"),
        ('["egress"]', "must be a JSON object"),
        ("true", "must be a JSON object"),
        ('{"id": "other"}', "cannot set id"),
    ],
)
def test_a_bad_advanced_spec_is_refused_with_why(extra: str, says: str) -> None:
    with pytest.raises(plugin_spec.SpecError, match=says):
        plugin_spec.to_service_spec(_Challenge(extra))


def test_a_null_text_field_is_an_empty_one() -> None:
    _, docker = plugin_spec.split_form({"docker_spec_extra": None, "docker_flag_file": None, "name": "x"})
    assert docker == {"docker_spec_extra": "", "docker_flag_file": ""}
