"""The firewall adapter on this host's real iptables, under chain names of the test's own
(so the real INSTANCER-* chains, which other tests rely on, are never disturbed): applying
is idempotent, drift is reported and repaired, removing leaves nothing."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest

from instancer.backends.firewall import IptablesFirewall

pytestmark = pytest.mark.docker


def _table() -> list[str]:
    return subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout.splitlines()


def _ours(firewall: IptablesFirewall) -> list[str]:
    """Our lines only: other people's Docker networks come and go in the table meanwhile."""
    return [line for line in _table() if firewall.input_chain in line or firewall.forward_chain in line]


def _iptables(*args: str) -> None:
    subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, check=True)


@pytest.fixture
def firewall(firewall_restored: IptablesFirewall) -> Iterator[IptablesFirewall]:
    made = IptablesFirewall(chain_prefix="IT" + secrets.token_hex(3).upper())
    yield made
    made.remove()


def test_apply_puts_each_rule_in_force_once_and_reapplying_changes_nothing(
    firewall: IptablesFirewall,
) -> None:
    assert firewall.problems() != []
    assert firewall.apply() != []
    once = _ours(firewall)
    assert firewall.apply() == []  # idempotent: no duplicate, no rewrite (counters survive)
    assert _ours(firewall) == once and firewall.problems() == []
    for chain, rules in firewall.rules().items():
        assert [line for line in once if line.startswith(f"-A {chain} ")] == list(rules)
    for parent, chain in firewall.jumps():
        parent_rules = [line for line in _table() if line.startswith(f"-A {parent} ")]
        assert parent_rules[0] == f"-A {parent} -j {chain}" and parent_rules.count(parent_rules[0]) == 1


def test_drift_is_reported_and_repaired(firewall: IptablesFirewall) -> None:
    firewall.apply()
    dropped_rule = firewall.rules()[firewall.forward_chain][3]
    _iptables(*dropped_rule.replace("-A ", "-D ", 1).split())
    # A rule with no target changes no verdict, yet pushes our jump from the top of INPUT.
    _iptables("-I", "INPUT", "1", "-p", "udp", "--dport", "9")
    try:
        assert firewall.problems() == [
            f"chain {firewall.forward_chain} differs from instancer's rules",
            f"the first rule of INPUT is not a jump to {firewall.input_chain}",
        ]
        assert sorted(firewall.apply()) == [
            f"made INPUT jump to {firewall.input_chain} first",
            f"wrote chain {firewall.forward_chain}",
        ]
        assert firewall.problems() == []
        assert _table().count(f"-A INPUT -j {firewall.input_chain}") == 1
    finally:
        _iptables("-D", "INPUT", "-p", "udp", "--dport", "9")


def test_remove_leaves_nothing_and_removing_again_is_success(firewall: IptablesFirewall) -> None:
    firewall.apply()
    assert firewall.remove() != []
    assert _ours(firewall) == []
    assert firewall.remove() == []
