"""The reaper loop: expires instances on time and sweeps orphans, in a daemon thread.

Several replicas may each run one: the use cases it calls decide by compare-and-set,
so no instance is handled twice. A failing pass is logged and retried next tick.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..domain.errors import InstancerError
from ..services.instances import InstanceService

log = logging.getLogger(__name__)


@dataclass
class ReaperConfig:
    interval_seconds: float = 1.0
    #: a full reconcile (orphans, lost instances) every this many ticks
    reconcile_every_ticks: int = 10
    orphan_grace_seconds: float = 120.0
    #: a running instance short of containers this long is lost
    lost_after_seconds: float = 20.0
    #: period of the heartbeat, on its own thread so that a long pass never silences it
    heartbeat_seconds: float = 5.0


class Reaper:
    def __init__(
        self,
        instances: InstanceService,
        config: ReaperConfig,
        *,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self._instances = instances
        self._config = config
        #: called on every reconcile tick: keeps the host's isolation rules in force
        self._guard = guard
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        #: (when, counts) of the last full reconcile, for admins
        self.last_reconcile: tuple[datetime, dict[str, int]] | None = None
        #: repairs by kind since this replica started (what it, and no other replica, did)
        self.totals: dict[str, int] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="instancer-reaper", daemon=True)
        self._beat = threading.Thread(target=self._heartbeat, name="instancer-heartbeat", daemon=True)
        self._thread.start()
        self._beat.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loops to stop and wait for the pass under way to finish."""
        self._stop.set()
        for thread in (self._thread, getattr(self, "_beat", None)):
            if thread is not None:
                thread.join(timeout)

    def _keep_guard(self) -> None:
        """Apart from the pass: a firewall problem must not stop expiry, nor the reverse."""
        if self._guard is None:
            return
        try:
            self._guard()
        except Exception:
            log.exception("isolation check crashed; retrying at the next reconcile")

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._config.heartbeat_seconds):
            try:
                self._instances.heartbeat()
            except InstancerError as exc:
                log.warning("heartbeat failed (%s); retrying", exc.code)
            except Exception:
                log.exception("heartbeat crashed; retrying")

    def _run(self) -> None:
        ticks = 0
        while not self._stop.is_set():
            self.tick(reconcile=ticks % self._config.reconcile_every_ticks == 0)
            ticks += 1
            # A little jitter keeps replicas from ticking in lockstep.
            self._stop.wait(self._config.interval_seconds * random.uniform(0.8, 1.0))

    def tick(self, *, reconcile: bool = False) -> dict[str, int]:
        report: dict[str, int] = {}
        try:
            report = self._instances.reap()
            if reconcile:
                repairs = self._instances.reconcile(
                    grace_seconds=self._config.orphan_grace_seconds,
                    lost_after_seconds=self._config.lost_after_seconds,
                )
                self.last_reconcile = (datetime.now(UTC), repairs)
                report.update(repairs)
        except InstancerError as exc:
            log.warning("reaper pass failed (%s): %s; retrying next tick", exc.code, exc.message)
        except Exception:
            log.exception("reaper pass crashed; retrying next tick")
        if reconcile:
            self._keep_guard()
        self.passes += 1
        for kind, count in report.items():
            self.totals[kind] = self.totals.get(kind, 0) + count
        if any(report.values()):
            log.info("reaper: %s", report)
        return report
