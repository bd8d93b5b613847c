"""The pool filler loop: keeps warm pools filled, in a daemon thread beside the reaper.

Every tick (jittered, so replicas do not tick in lockstep) it asks the pools use case what to
start and drain, and hands those jobs to a small thread pool without waiting for them: at most
`parallel` jobs run at once, and a slow or broken challenge holds one slot, not the loop. Several
replicas may each run one: the decisions are made under the start lock (see services/pools.py).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from ..domain.errors import InstancerError
from ..services.pools import PoolService

log = logging.getLogger(__name__)


@dataclass
class PoolFillerConfig:
    interval_seconds: float = 1.0
    #: pool starts (and drains) this replica runs at once
    parallel: int = 4


class PoolFiller:
    def __init__(self, pools: PoolService, config: PoolFillerConfig) -> None:
        self._pools = pools
        self._config = config
        self._executor = ThreadPoolExecutor(config.parallel, thread_name_prefix="instancer-pool")
        self._jobs: set[Future[Any]] = set()
        self._jobs_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="instancer-pool-filler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop ticking; let the jobs under way finish (up to `timeout`), drop those not begun.
        A start dropped or cut short stays `starting`, claimed by this replica: once the replica
        retires, another one's reaper fails it and removes whatever it created."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.join(timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the jobs handed out so far."""
        with self._jobs_lock:
            jobs = set(self._jobs)
        wait(jobs, timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self._config.interval_seconds * random.uniform(0.8, 1.0))

    def tick(self) -> dict[str, int]:
        """One pass: plan within the free slots, hand out the jobs, return what was handed out."""
        with self._jobs_lock:
            free = self._config.parallel - len(self._jobs)
        try:
            plan = self._pools.plan(free)
        except InstancerError as exc:
            log.warning("pool pass failed (%s): %s; retrying next tick", exc.code, exc.message)
            return {}
        except Exception:
            log.exception("pool pass crashed; retrying next tick")
            return {}
        for instance_id, why in plan.drained:
            self._submit(self._pools.finish_drain, instance_id, why)
        for start in plan.starts:
            self._submit(self._pools.launch, start)
        report = {"pool_started": len(plan.starts), "pool_drained": len(plan.drained)}
        if any(report.values()):
            log.info("pool filler: %s", report)
        return report

    def _submit(self, job: Callable[..., Any], *args: Any) -> None:
        future = self._executor.submit(job, *args)
        with self._jobs_lock:
            self._jobs.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[Any]) -> None:
        with self._jobs_lock:
            self._jobs.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("pool job crashed", exc_info=future.exception())
