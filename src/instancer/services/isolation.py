"""Keeps the host firewall that isolates instances in force, as `INSTANCER_ISOLATION` says.

| mode      | at service start                              | on every reconcile           |
|-----------|-----------------------------------------------|------------------------------|
| `enforce` | apply the rules; refuse to start if it cannot | re-apply what drifted, warn  |
| `check`   | warn when the rules are not in force          | warn when that changes       |
| `off`     | nothing (one warning)                         | nothing                      |

Knows the firewall only through the `HostFirewall` port; never raises from a tick.
"""

from __future__ import annotations

import logging
from typing import Literal

from ..domain.errors import IsolationUnavailable
from ..domain.ports import HostFirewall

log = logging.getLogger(__name__)

Mode = Literal["enforce", "check", "off"]
_FIX = "run `instancer firewall apply` as root on the engine's host (docs/operations.md, Isolation)"
_REFUSED = (
    "instancer does not serve without isolation (INSTANCER_ISOLATION=enforce): run it as root or with "
    "CAP_NET_ADMIN, or apply the rules with `instancer firewall apply` as root and set "
    "INSTANCER_ISOLATION=check"
)


class IsolationGuard:
    def __init__(self, firewall: HostFirewall | None, mode: Mode) -> None:
        self.mode: Mode = mode if firewall is not None else "off"
        self._firewall = firewall
        self._last_problems: list[str] = []

    def at_start(self) -> None:
        """Raises IsolationUnavailable in `enforce` mode when the rules cannot be put in force."""
        if self._firewall is None or self.mode == "off":
            log.warning(
                "isolation is off (INSTANCER_ISOLATION=off, or the fake backend): instances can reach "
                "the host, each other and the internet"
            )
        elif self.mode == "enforce":
            try:
                changes = self._firewall.apply()
            except IsolationUnavailable as exc:
                raise IsolationUnavailable(f"{exc.message}. {_REFUSED}") from exc
            for change in changes:
                log.info("isolation: %s", change)
        else:
            self._warn_if_not_in_force(self._firewall, always=True)

    def problems(self) -> list[str]:
        """What keeps the rules from being in force now; [] when they are, or when off.

        Raises:
            IsolationUnavailable: the rules cannot be read here.
        """
        return [] if self._firewall is None or self.mode == "off" else self._firewall.problems()

    def tick(self) -> None:
        """Keep the rules in force (`enforce`) or say when they are not (`check`)."""
        if self._firewall is None or self.mode == "off":
            return
        if self.mode == "check":
            self._warn_if_not_in_force(self._firewall, always=False)
            return
        try:
            repaired = self._firewall.apply()
        except IsolationUnavailable as exc:
            log.error("isolation rules could not be re-applied: %s", exc.message)
            return
        if repaired:
            log.warning("isolation rules had drifted (another tool changed them); repaired: %s", repaired)

    def _warn_if_not_in_force(self, firewall: HostFirewall, *, always: bool) -> None:
        try:
            problems = firewall.problems()
        except IsolationUnavailable as exc:
            problems = [exc.message]
        if problems and (always or problems != self._last_problems):
            log.warning("isolation rules are not in force: %s; %s", "; ".join(problems), _FIX)
        self._last_problems = problems
