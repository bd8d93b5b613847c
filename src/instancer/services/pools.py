"""Warm pools: keep each challenge's unclaimed instances between `pool.min` and `pool.max`, and
drain those that no longer belong (docs/decisions/0009). Starts claim them in
`InstanceService.start`.

What to start and what to drain is decided in one transaction under the start lock, and the
starts are recorded in it, so replicas never over-fill a pool or exceed capacity. A pool start
is an ordinary start (`starting`, claimed by this replica, repaired by another if this one dies)
that ends `pooled` instead of `running`. No threads here: the worker runs the jobs a plan returns.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..domain import capacity, flags, lifecycle
from ..domain.errors import CapacityReached, InstancerError
from ..domain.model import Instance, State, pool_owner
from ..domain.ports import Clock, FlagVault, Store, Tx
from ..domain.spec import ChallengeSpec
from .instances import InstanceService
from .policy import Policy

log = logging.getLogger(__name__)

REASON_STALE = "pool drained: the challenge's spec changed"
REASON_SURPLUS = "pool drained: more idle than pool.max"
REASON_DELETED = "pool drained: the challenge is gone"


@dataclass(frozen=True)
class PoolStart:
    """A recorded pool start, for `PoolService.launch` to run."""

    spec: ChallengeSpec
    instance: Instance
    flag: str


@dataclass(frozen=True)
class PoolPlan:
    """What one pass decided: instances moved to `stopping` (by this replica) with the reason,
    and pool starts recorded as `starting`."""

    drained: tuple[tuple[str, str], ...] = ()
    starts: tuple[PoolStart, ...] = ()


@dataclass
class _Work:
    drain: list[tuple[Instance, str]] = field(default_factory=list)
    start: list[ChallengeSpec] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.drain or self.start)


class PoolService:
    def __init__(
        self, *, store: Store, clock: Clock, instances: InstanceService, vault: FlagVault, policy: Policy
    ) -> None:
        self._store = store
        self._clock = clock
        self._instances = instances
        self._vault = vault
        self._policy = policy
        #: challenge -> (pool starts failed in a row, no new one before): this replica's backoff
        self._failures: dict[str, tuple[int, datetime]] = {}
        self._lock = threading.Lock()

    def plan(self, budget: int) -> PoolPlan:
        """Drain what does not belong and record up to `budget` pool starts, in one transaction.

        Raises:
            BackendUnavailable: the engine does not answer (nothing is decided).
        """
        self._instances.ping()
        now = self._clock.now()
        with self._store.read() as tx:  # most passes have nothing to do: no write lock for them
            if not self._work(tx, now, budget):
                return PoolPlan()
        with self._store.transaction() as tx:
            tx.lock_starts()  # the counts below are what the inserts are made against
            work = self._work(tx, now, budget)
            drained = tuple((i.id, why) for i, why in work.drain if self._drain(tx, i, why, now))
            starts = tuple(self._record(tx, spec, now) for spec in work.start)
        return PoolPlan(drained, starts)

    def launch(self, start: PoolStart) -> str:
        """Run one recorded pool start: `started` when it ended `pooled`, `failed` when it failed
        (the challenge's pool backs off: 2, 4, 8 ... s; nothing is left behind, as for any start),
        `interrupted` when it was drained or stopped meanwhile."""
        challenge_id = start.spec.id
        try:
            self._instances.launch_pooled(start.spec, start.instance, start.flag)
        except Exception as exc:
            if not self._failed(start.instance.id):
                return "interrupted"
            pause = self._back_off(challenge_id)
            code = getattr(exc, "code", type(exc).__name__)
            log.warning("pool start of %s failed (%s); next try in %.0f s", challenge_id, code, pause)
            return "failed"
        with self._lock:
            self._failures.pop(challenge_id, None)
        return "started"

    def finish_drain(self, instance_id: str, reason: str) -> None:
        """Remove a drained instance; if the engine fails, the reaper retries the stop."""
        try:
            self._instances.finish_stop(instance_id, reason)
        except InstancerError as exc:
            log.warning("could not finish draining %s (%s); the reaper retries", instance_id, exc.code)

    def fill(self, budget: int = 1000) -> dict[str, int]:
        """One pass carried out here and now, one job after the other (tests, the CLI); the worker
        runs a plan's jobs in parallel instead."""
        plan = self.plan(budget)
        for instance_id, why in plan.drained:
            self.finish_drain(instance_id, why)
        outcomes = [self.launch(s) for s in plan.starts]
        return {
            "drained": len(plan.drained),
            "started": outcomes.count("started"),
            "failed": outcomes.count("failed"),
        }

    # --- decisions ---------------------------------------------------------------

    def _work(self, tx: Tx, now: datetime, budget: int) -> _Work:
        specs = {s.id: s for s in tx.list_challenges()}
        keys = {s.id: s.pool_key() for s in specs.values()}
        work = _Work()
        idle: dict[str, list[Instance]] = {}
        for member in tx.pool_members():  # oldest first
            if member.challenge_id not in specs:
                work.drain.append((member, REASON_DELETED))
            elif member.pool_key != keys[member.challenge_id]:
                work.drain.append((member, REASON_STALE))
            else:
                idle.setdefault(member.challenge_id, []).append(member)
        for challenge_id, members in idle.items():
            surplus = lifecycle.pool_surplus(len(members), specs[challenge_id].pool)
            work.drain += [(m, REASON_SURPLUS) for m in members[len(members) - surplus :]]
        wants = {
            s.id: lifecycle.pool_starts(len(idle.get(s.id, ())), s.pool)
            for s in specs.values()
            if s.pool.enabled and not self._backing_off(s.id, now)
        }
        granted = self._within_capacity(tx, {c: n for c, n in wants.items() if n > 0}, specs, budget)
        work.start = self._within_resources(tx, [specs[c] for c, n in granted.items() for _ in range(n)])
        return work

    def _within_capacity(
        self, tx: Tx, wants: dict[str, int], specs: dict[str, ChallengeSpec], budget: int
    ) -> dict[str, int]:
        """Pool starts obey the global capacity and each challenge's own, like any start."""
        if not wants:
            return {}
        capped = {}
        for challenge_id, n in wants.items():
            own = specs[challenge_id].limits.capacity
            capped[challenge_id] = n if own is None else min(n, own - tx.count_occupying(challenge_id))
        room = min(budget, self._policy.capacity - tx.count_occupying())
        return share({c: n for c, n in capped.items() if n > 0}, room)

    def _within_resources(self, tx: Tx, starts: list[ChallengeSpec]) -> list[ChallengeSpec]:
        """The starts that fit the caps on summed memory and CPU limits, when set, in order."""
        memory, cpus = self._policy.capacity_memory_mib, self._policy.capacity_cpus
        if not starts or (memory is None and cpus is None):
            return starts
        in_use, kept = tx.occupying_footprint(), []
        for spec in starts:
            wanted = capacity.footprint_of(spec)
            try:
                capacity.check_resources(in_use, wanted, memory_mib=memory, cpus=cpus)
            except CapacityReached:
                continue  # a smaller challenge's start may still fit
            in_use += wanted
            kept.append(spec)
        return kept

    def _drain(self, tx: Tx, instance: Instance, why: str, now: datetime) -> bool:
        # Compare-and-set on the sentinel owner too: a claimed instance is never drained.
        return tx.transition(
            instance.id,
            expect=frozenset({State.STARTING, State.POOLED}),
            to=State.STOPPING,
            now=now,
            owned_by=pool_owner(instance.id),
            reason=why,
            claimed_by=self._instances.replica_id,
        )

    def _record(self, tx: Tx, spec: ChallengeSpec, now: datetime) -> PoolStart:
        """A pool start recorded like a cold one, owned by nobody; no deadline counts until a claim."""
        instance_id = secrets.token_hex(16)
        instance = Instance(
            id=instance_id,
            challenge_id=spec.id,
            owner=pool_owner(instance_id),
            state=State.STARTING,
            generation=1,
            created_at=now,
            expires_at=lifecycle.initial_deadline(now, spec.lifetime),
            max_extensions=spec.lifetime.max_extensions,
            pool_key=spec.pool_key(),
        )
        tx.add_instance(instance, spec, claimed_by=self._instances.replica_id)
        flag = flags.parse(spec.flag.template).render()
        sealed = self._vault.seal(flag, instance_id=instance_id)
        tx.add_flag(instance_id, spec.id, instance.owner, sealed, now)
        routes = self._instances.new_routes(spec)  # proxied only: a pool's spec publishes no host port
        tx.add_routes(instance_id, routes)
        return PoolStart(spec, replace(instance, routes=tuple(routes)), flag)

    # --- backoff -----------------------------------------------------------------

    def _failed(self, instance_id: str) -> bool:
        try:
            with self._store.read() as tx:
                record = tx.get_instance(instance_id)
        except InstancerError:
            return True  # cannot tell: back off rather than loop
        return record is None or record.state is State.FAILED

    def _back_off(self, challenge_id: str) -> float:
        """Count one more failed attempt, unless this pass's failures are counted already."""
        now = self._clock.now()
        with self._lock:
            failures, until = self._failures.get(challenge_id, (0, now))
            if now < until:  # another start of the same pass failed first
                return (until - now).total_seconds()
            pause = lifecycle.pool_retry_seconds(failures + 1)
            self._failures[challenge_id] = (failures + 1, now + timedelta(seconds=pause))
        return pause

    def _backing_off(self, challenge_id: str, now: datetime) -> bool:
        with self._lock:
            entry = self._failures.get(challenge_id)
        return entry is not None and now < entry[1]


def share(wants: dict[str, int], room: int) -> dict[str, int]:
    """Split `room` starts between challenges one at a time, round robin in id order, so one large
    pool cannot take a whole pass from the others."""
    granted = dict.fromkeys(wants, 0)
    while room > 0 and any(granted[c] < n for c, n in wants.items()):
        for challenge_id in sorted(wants):
            if room > 0 and granted[challenge_id] < wants[challenge_id]:
                granted[challenge_id] += 1
                room -= 1
    return {c: n for c, n in granted.items() if n > 0}
