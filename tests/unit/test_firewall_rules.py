"""Bridge names and the firewall's rule set fit together; the firewall adapter turns a missing,
unprivileged or wrong-flavour `iptables` into our own error before writing anything (with
stub binaries: no root needed); and the `instancer firewall` commands report what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from instancer import bootstrap, cli
from instancer.backends import bridges
from instancer.backends.fake import FakeBackend
from instancer.backends.firewall import PRIVATE_RANGES, IptablesFirewall, SwarmNode
from instancer.domain.errors import IsolationUnavailable
from instancer.settings import Settings
from tests.conftest import ADMIN_TOKEN, FLAG_KEYS, PLATFORM_TOKEN

_NFT_LISTING = "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n"


def _stub(tmp_path: Path, script: str) -> str:
    """An `iptables` that logs its arguments to `calls` and runs `script`."""
    binary = tmp_path / "iptables"
    binary.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n{script}\n')
    binary.chmod(0o755)
    return str(binary)


@pytest.mark.parametrize("egress", [False, True])
def test_bridge_names_fit_linux_and_the_firewalls_wildcards(egress: bool) -> None:
    name = bridges.bridge_name(deployment="ctf", instance_id="a" * 32, generation=1, egress=egress)
    assert len(name) <= 15  # IFNAMSIZ - 1
    wildcard = bridges.EGRESS if egress else bridges.NO_EGRESS
    assert name.startswith(wildcard)
    rules = " ".join(r for chain in IptablesFirewall().rules().values() for r in chain)
    assert f"-i {wildcard}+ -j DROP" in rules
    others = {
        bridges.bridge_name(deployment="ctf", instance_id="a" * 32, generation=2, egress=egress),
        bridges.bridge_name(deployment="ctf2", instance_id="a" * 32, generation=1, egress=egress),
    }
    assert name not in others and len(others) == 2


def test_interface_wildcards_keep_clear_of_infiniband_devices() -> None:
    # `ib+` would also match InfiniBand's ib0: the dash keeps the host's own links out.
    assert bridges.NO_EGRESS.endswith("-") and bridges.EGRESS.endswith("-")


def test_egress_never_reaches_metadata_or_private_ranges() -> None:
    assert {"169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"} <= set(
        PRIVATE_RANGES
    )


def test_a_missing_iptables_is_our_error(tmp_path: Path) -> None:
    with pytest.raises(IsolationUnavailable, match="not installed"):
        IptablesFirewall(iptables=str(tmp_path / "nothing-here")).problems()


def test_no_privilege_says_what_is_needed(tmp_path: Path) -> None:
    binary = _stub(tmp_path, 'echo "iptables: Permission denied (you must be root)." >&2; exit 4')
    with pytest.raises(IsolationUnavailable, match="CAP_NET_ADMIN"):
        IptablesFirewall(iptables=binary).apply()


def test_a_table_without_dockers_hook_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """The engine's chains in another flavour (nft vs legacy), or no engine yet: our rules would
    be inert, so nothing is written and the message says why."""
    binary = _stub(tmp_path, f"printf -- '{_NFT_LISTING}'")
    firewall = IptablesFirewall(iptables=binary)
    with pytest.raises(IsolationUnavailable, match="DOCKER-USER"):
        firewall.apply()
    assert (tmp_path / "calls").read_text().splitlines() == ["-w 5 -v -S"]  # a read, no write
    assert any("DOCKER-USER" in p for p in firewall.problems())


class _Fake:
    def __init__(self, problems: list[str], changes: list[str]) -> None:
        self._problems, self._changes = problems, changes

    def problems(self) -> list[str]:
        return self._problems

    def apply(self) -> list[str]:
        return self._changes

    def remove(self) -> list[str]:
        return self._changes

    def dropped(self) -> dict[str, int]:
        return {"-A INSTANCER-INPUT -i ib-+ -j DROP": 7}


def test_firewall_commands_need_no_settings_and_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("INSTANCER_PLATFORM_TOKEN", "INSTANCER_ADMIN_TOKEN", "INSTANCER_FLAG_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(bootstrap, "host_firewall", lambda: _Fake(["chain X is missing"], ["wrote chain X"]))
    assert cli.main(["firewall", "check"]) == 1
    assert "not in force: chain X is missing" in capsys.readouterr().out
    assert cli.main(["firewall", "apply"]) == 0
    assert "wrote chain X" in capsys.readouterr().out
    monkeypatch.setattr(bootstrap, "host_firewall", lambda: _Fake([], []))
    assert cli.main(["firewall", "check"]) == 0
    out = capsys.readouterr().out
    assert "7 packets dropped by -A INSTANCER-INPUT -i ib-+ -j DROP" in out and "in force" in out
    assert cli.main(["firewall", "remove"]) == 0


def test_serve_refuses_to_start_when_isolation_cannot_be_enforced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in (
        ("INSTANCER_PLATFORM_TOKEN", PLATFORM_TOKEN),
        ("INSTANCER_ADMIN_TOKEN", ADMIN_TOKEN),
        ("INSTANCER_FLAG_KEYS", FLAG_KEYS),
        ("INSTANCER_DATABASE_URL", f"sqlite:///{tmp_path}/i.db"),
        ("INSTANCER_BACKEND", "docker"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("INSTANCER_ISOLATION", raising=False)  # the default: enforce
    monkeypatch.setattr(bootstrap, "backend_of", lambda _: FakeBackend())  # an engine that answers
    monkeypatch.setattr(bootstrap, "host_firewall", lambda: IptablesFirewall(iptables=str(tmp_path / "none")))
    assert cli.main(["serve", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "error ISOLATION_UNAVAILABLE" in err and "not installed" in err and "INSTANCER_ISOLATION" in err


def test_on_a_swarm_node_egress_is_the_nodes_policy() -> None:
    closed = IptablesFirewall(swarm=SwarmNode(egress=False, ports=(30000, 60000))).rules()
    opened = IptablesFirewall(swarm=SwarmNode(egress=True, ports=(30000, 60000))).rules()
    everything_else = "-A INSTANCER-FORWARD -i docker_gwbridge -j DROP"
    assert closed["INSTANCER-FORWARD"][-1] == everything_else
    assert everything_else not in opened["INSTANCER-FORWARD"]
    # Either way: other instances' ports and private ranges stay out of reach.
    for rules in (closed, opened):
        forward = " ".join(rules["INSTANCER-FORWARD"])
        assert "-i docker_gwbridge -p tcp -m tcp --dport 30000:60000 -j DROP" in forward
        assert "-d 10.0.0.0/8 -i docker_gwbridge -j DROP" in forward
        assert "-A INSTANCER-INPUT -i docker_gwbridge -j DROP" in rules["INSTANCER-INPUT"]


def test_firewall_commands_take_the_swarm_nodes_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[dict | None] = []

    def node(**policy: object) -> _Fake:
        asked.append(policy)
        return _Fake([], [])

    monkeypatch.setattr(bootstrap, "node_firewall", node)
    monkeypatch.setattr(bootstrap, "host_firewall", lambda: asked.append(None) or _Fake([], []))
    check = ["firewall", "check", "--swarm-node", "--egress", "--ports", "40000-41000"]
    assert cli.main([*check, "--deny", "203.0.113.0/24, 198.51.100.7"]) == 0
    assert cli.main(["firewall", "apply"]) == 0
    assert asked == [
        {"egress": True, "ports": (40000, 41000), "deny": ("203.0.113.0/24", "198.51.100.7/32")},
        None,
    ]
    for alone in (["--egress"], ["--deny", "203.0.113.0/24"]):  # a swarm node's policy only
        with pytest.raises(SystemExit, match="--swarm-node"):
            cli.main(["firewall", "apply", *alone])
    with pytest.raises(SystemExit):
        cli.main(["firewall", "apply", "--swarm-node", "--deny", "203.0.113.0/33"])
    for bad in ("40000", "2-1", "1-70000", "a-b"):
        with pytest.raises(SystemExit):
            cli.main(["firewall", "apply", "--swarm-node", "--ports", bad])
    assert "not LOW-HIGH" in capsys.readouterr().err


def test_a_swarm_service_keeps_its_hosts_node_rules_with_its_port_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[dict | None] = []
    monkeypatch.setattr(bootstrap, "node_firewall", lambda **policy: asked.append(policy) or _Fake([], []))
    monkeypatch.setattr(bootstrap, "host_firewall", lambda: asked.append(None) or _Fake([], []))
    common = {"platform_token": PLATFORM_TOKEN, "admin_token": ADMIN_TOKEN, "flag_keys": FLAG_KEYS}
    ports = {"port_range_start": 31000, "port_range_end": 32000}
    swarm = {"backend": "swarm", "swarm_node_egress": True, "swarm_node_deny": "203.0.113.9"}
    bootstrap.isolation_of(Settings(**common, **ports, **swarm, isolation="check"))
    bootstrap.isolation_of(Settings(**common, **ports, backend="docker", isolation="check"))
    assert asked == [{"egress": True, "ports": (31000, 32000), "deny": ("203.0.113.9/32",)}, None]
    with pytest.raises(ValueError, match="INSTANCER_SWARM_NODE_DENY"):
        Settings(**common, swarm_node_deny="10.0.0.0/8, nonsense")
