"""The isolation guard: what each INSTANCER_ISOLATION mode does at start and on each
reconcile, with a fake firewall (the real one is tested in tests/integration)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from instancer.domain.errors import IsolationUnavailable
from instancer.services.isolation import IsolationGuard


@dataclass
class FakeFirewall:
    """Rules that are in force once applied, until `drift` says otherwise."""

    in_force: bool = False
    broken: bool = False
    applied: int = field(default=0)

    def apply(self) -> list[str]:
        if self.broken:
            raise IsolationUnavailable("`iptables` is not installed here")
        self.applied += 1
        changed = [] if self.in_force else ["wrote chain INSTANCER-INPUT"]
        self.in_force = True
        return changed

    def problems(self) -> list[str]:
        if self.broken:
            raise IsolationUnavailable("`iptables` is not installed here")
        return [] if self.in_force else ["chain INSTANCER-INPUT is missing"]


def test_enforce_applies_at_start_and_repairs_drift_on_ticks(caplog: pytest.LogCaptureFixture) -> None:
    firewall = FakeFirewall()
    guard = IsolationGuard(firewall, "enforce")
    guard.at_start()
    assert firewall.in_force
    guard.tick()
    assert "drifted" not in caplog.text  # in force: nothing to say
    firewall.in_force = False  # another tool flushed the rules
    with caplog.at_level(logging.WARNING):
        guard.tick()
    assert firewall.in_force and "drifted" in caplog.text


def test_enforce_refuses_to_start_when_the_rules_cannot_be_applied() -> None:
    guard = IsolationGuard(FakeFirewall(broken=True), "enforce")
    with pytest.raises(IsolationUnavailable) as caught:
        guard.at_start()
    assert "not installed" in caught.value.message and "INSTANCER_ISOLATION=check" in caught.value.message
    guard.tick()  # a tick never raises: expiry must go on


def test_check_warns_and_never_applies(caplog: pytest.LogCaptureFixture) -> None:
    firewall = FakeFirewall()
    guard = IsolationGuard(firewall, "check")
    with caplog.at_level(logging.WARNING):
        guard.at_start()
        guard.tick()  # the same problems again: said once
    assert firewall.applied == 0
    assert caplog.text.count("not in force") == 1 and "instancer firewall apply" in caplog.text
    firewall.broken = True
    with caplog.at_level(logging.WARNING):
        guard.tick()
    assert "not installed" in caplog.text


def test_off_touches_nothing_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    firewall = FakeFirewall(broken=True)
    guard = IsolationGuard(firewall, "off")
    with caplog.at_level(logging.WARNING):
        guard.at_start()
        guard.tick()
    assert guard.problems() == [] and "isolation is off" in caplog.text
    assert IsolationGuard(None, "enforce").mode == "off"  # nothing to isolate (the fake backend)
