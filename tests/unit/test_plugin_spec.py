"""The plugin's form -> spec mapping of ports (pure standard library, loaded from its file so
that CTFd is not needed): exposure modes are passed on, bad syntax is refused."""

from __future__ import annotations

import importlib.util
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
