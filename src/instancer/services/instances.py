"""Instance use cases: start (a claim from a warm pool, or a cold start), show, extend, revert,
stop, and the reaper's expiry pass and reconcile.

Each decision (limits, cooldown, capacity, state changes) happens in one short database
transaction; engine calls happen between transactions, after the intent is recorded,
so a crash leaves only states the reaper repairs (`starting`/`stopping` gone stale).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..domain import capacity, flags, lifecycle
from ..domain.dependencies import start_order
from ..domain.errors import (
    BackendError,
    BackendUnavailable,
    CapacityReached,
    ChallengeNotFound,
    InstanceLimitReached,
    InstanceNotFound,
    InstanceNotRunning,
    InstancerError,
    InstanceStartFailed,
    PortUnavailable,
)
from ..domain.model import (
    ENDED_STATES,
    LIVE_STATES,
    OCCUPYING_STATES,
    Allocation,
    Instance,
    Route,
    State,
    Version,
    new_slug,
    pool_owner,
)
from ..domain.ports import (
    Backend,
    Clock,
    ContainerPlan,
    FileInject,
    FlagVault,
    InstanceFilter,
    Launched,
    LaunchPlan,
    LiveInstanceExists,
    Observed,
    Page,
    PortBinding,
    SealedFlag,
    Stats,
    Store,
    Tx,
)
from ..domain.spec import ChallengeSpec, Expose
from .policy import Policy

log = logging.getLogger(__name__)

_PORT_RETRIES = 3
_RECREATE_PER_PASS = 8
#: pooled candidates a claim tries before it starts cold (each try is a compare-and-set that a
#: concurrent drain may win)
_CLAIM_TRIES = 3
REASON_EXPIRED = "lifetime over"
REASON_INTERRUPTED = "start interrupted"


@dataclass(frozen=True)
class Started:
    instance: Instance
    created: bool


class InstanceService:
    def __init__(
        self,
        *,
        store: Store,
        backend: Backend,
        clock: Clock,
        policy: Policy,
        vault: FlagVault,
        replica_id: str = "local",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._backend = backend
        self._clock = clock
        self._policy = policy
        self._vault = vault
        self.replica_id = replica_id
        #: running instances seen short of containers, and since when (the lost debounce)
        self._suspects: dict[str, datetime] = {}
        #: each replica's last heartbeat value, and when (by our clock) we saw it change
        self._beats_seen: dict[str, tuple[datetime, datetime]] = {}
        #: instances whose stop this process is carrying out right now
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="instancer-reap")

    # --- reads -------------------------------------------------------------------

    def get(self, instance_id: str, *, owner: str | None = None, admin: bool = False) -> Instance:
        """The instance; an unclaimed pool instance only for an admin (players never see one)."""
        with self._store.read() as tx:
            return _owned(tx, instance_id, owner, admin=admin)

    def find(self, flt: InstanceFilter, *, page: int = 1, per_page: int = 50) -> Page:
        with self._store.read() as tx:
            return tx.find(flt, page=page, per_page=per_page)

    def stats(self) -> Stats:
        with self._store.read() as tx:
            return tx.stats()

    def routes(self) -> list[Route]:
        """The proxied ports of running and pooled instances whose address is known: what the
        proxy serves."""
        with self._store.read() as tx:
            return [route for _, route in tx.routed()]

    # --- start -------------------------------------------------------------------

    def start(self, challenge_id: str, owner: str) -> Started:
        """Start the owner's instance of a challenge, or return the live one it has. A ready
        instance of the challenge's warm pool is claimed if there is one (it answers at once);
        otherwise one is started cold. Only a cold start calls the engine: it is pinged before
        anything is recorded.

        Raises:
            ChallengeNotFound, InstanceLimitReached, Cooldown, CapacityReached,
            PortsExhausted, BackendUnavailable, ImageMissing, InstanceStartFailed.
        """
        reserved = self._reserve_or_live(challenge_id, owner, cold=False)
        if reserved is None:  # nothing to hand over: a cold start
            self._backend.ping()  # fail fast, before anything is recorded
            reserved = self._reserve_or_live(challenge_id, owner, cold=True)
        if reserved is None:  # pragma: no cover - a cold reservation always decides
            raise AssertionError("a cold reservation returned nothing")
        if isinstance(reserved, Started):
            return reserved
        spec, instance, flag = reserved
        return Started(self._launch(spec, instance, flag), created=True)

    def _reserve_or_live(
        self, challenge_id: str, owner: str, *, cold: bool
    ) -> Started | tuple[ChallengeSpec, Instance, str] | None:
        try:
            return self._reserve(challenge_id, owner, cold=cold)
        except LiveInstanceExists:  # another replica won the race for this slot
            with self._store.transaction() as tx:
                live = tx.live_instance(challenge_id, owner)
            if live is None:
                raise
            return Started(live, created=False)

    def _reserve(
        self, challenge_id: str, owner: str, *, cold: bool
    ) -> Started | tuple[ChallengeSpec, Instance, str] | None:
        """Check every limit, then claim a pooled instance or (with `cold`) record a new one as
        `starting`, in one transaction. Without `cold`, None: a cold start is needed."""
        now = self._clock.now()
        with self._store.transaction() as tx:
            tx.lock_starts()
            spec = _challenge(tx, challenge_id)
            live = tx.live_instance(challenge_id, owner)
            if live is not None:
                return Started(live, created=False)
            self._check_owner_limits(tx, spec, owner, now)
            claimed = self._claim_pooled(tx, spec, owner, now)
            if claimed is not None:  # already counted against capacity while it waited
                tx.touch_owner(owner, now)
                return Started(claimed, created=True)
            if not cold:
                return None
            self._check_capacity(tx, spec)
            instance = Instance(
                id=secrets.token_hex(16),
                challenge_id=challenge_id,
                owner=owner,
                state=State.STARTING,
                generation=1,
                created_at=now,
                expires_at=lifecycle.initial_deadline(now, spec.lifetime),
                max_extensions=spec.lifetime.max_extensions,
            )
            tx.add_instance(instance, spec, claimed_by=self.replica_id)
            flag = flags.parse(spec.flag.template).render()
            tx.add_flag(
                instance.id, challenge_id, owner, self._vault.seal(flag, instance_id=instance.id), now
            )
            allocations = self._allocate(tx, spec, instance.id)
            routes = self.new_routes(spec)
            tx.add_routes(instance.id, routes)
            tx.touch_owner(owner, now)
        return spec, replace(instance, allocations=tuple(allocations), routes=tuple(routes)), flag

    def _claim_pooled(self, tx: Tx, spec: ChallengeSpec, owner: str, now: datetime) -> Instance | None:
        """Hand the owner a ready pooled instance of the current spec, if there is one: it becomes
        the owner's `running` instance, with a deadline from now and its own flag, now the owner's.

        Under the start lock, so two starts never take the same one; the compare-and-set (state
        and sentinel owner) keeps a drain from stopping it at the same moment."""
        if not spec.pool.enabled:
            return None
        for instance_id in tx.pooled_ids(spec.id, spec.pool_key(), _CLAIM_TRIES):
            if tx.transition(
                instance_id,
                expect=frozenset({State.POOLED}),
                to=State.RUNNING,
                now=now,
                owned_by=pool_owner(instance_id),
                owner=owner,
                pool_key=None,
                created_at=now,
                started_at=now,
                expires_at=lifecycle.initial_deadline(now, spec.lifetime),
                extensions_used=0,
                max_extensions=spec.lifetime.max_extensions,
                last_extended_at=None,
                reason=None,
                claimed_by=None,
            ):
                tx.set_flag_owner(instance_id, owner)
                return _reload(tx, instance_id)
        return None

    def _check_owner_limits(self, tx: Tx, spec: ChallengeSpec, owner: str, now: datetime) -> None:
        mine = tx.live_of_owner(owner)
        limit = self._policy.per_owner_for(spec)
        if len(mine) >= limit:
            raise InstanceLimitReached(
                f"this owner already has {len(mine)} live instance(s); the limit is {limit}",
                limit=limit,
                instances=[{"id": i.id, "challenge": i.challenge_id, "state": i.state.value} for i in mine],
            )
        lifecycle.check_cooldown(tx.owner_last_start(owner), now, self._policy.cooldown_for(spec))

    def _check_capacity(self, tx: Tx, spec: ChallengeSpec) -> None:
        """Room for one more occupying instance, globally and for the challenge (pooled ones count)."""
        if tx.count_occupying() >= self._policy.capacity:
            raise CapacityReached(
                "the event has reached its instance capacity; try again later",
                capacity=self._policy.capacity,
                scope="global",
            )
        own = spec.limits.capacity
        if own is not None and tx.count_occupying(spec.id) >= own:
            raise CapacityReached(
                "this challenge has reached its instance capacity; try again later",
                capacity=own,
                scope="challenge",
            )
        self._check_resources(tx, spec)

    def _check_resources(self, tx: Tx, spec: ChallengeSpec) -> None:
        """The summed resource caps, read under the start lock like the counts above."""
        memory, cpus = self._policy.capacity_memory_mib, self._policy.capacity_cpus
        if memory is None and cpus is None:
            return  # no cap: skip reading every occupying instance's spec
        capacity.check_resources(
            tx.occupying_footprint(), capacity.footprint_of(spec), memory_mib=memory, cpus=cpus
        )

    def _allocate(
        self, tx: Tx, spec: ChallengeSpec, instance_id: str, avoid: frozenset[int] = frozenset()
    ) -> list[Allocation]:
        # A proxied port needs a host port too when the proxy reaches it through one (swarm).
        every = self._backend.proxied_ports_need_host_ports
        wanted = [
            (c.name, p.port, p.protocol.value)
            for c, p in spec.exposed
            if every or p.mode(self._policy.expose_proxy) is Expose.PORT
        ]
        return tx.allocate_ports(instance_id, wanted, self._policy.port_low, self._policy.port_high, avoid)

    def new_routes(self, spec: ChallengeSpec) -> list[Route]:
        """One route with a fresh random slug per proxied port."""
        modes = [(c, p, p.mode(self._policy.expose_proxy)) for c, p in spec.exposed]
        return [Route(new_slug(), c.name, p.port, mode) for c, p, mode in modes if mode is not Expose.PORT]

    def launch_pooled(self, spec: ChallengeSpec, instance: Instance, flag: str) -> Instance:
        """Run a pool start recorded by the pool filler; it ends `pooled` (or `failed`, as a start)."""
        return self._launch(spec, instance, flag, ready=State.POOLED)

    def ping(self) -> None:
        """Raises BackendUnavailable when the engine does not answer."""
        self._backend.ping()

    def _launch(
        self,
        spec: ChallengeSpec,
        instance: Instance,
        flag: str,
        *,
        replace: bool = False,
        ready: State = State.RUNNING,
    ) -> Instance:
        """Run the recorded instance on the engine, wait until it answers, and record it `ready`
        (`running`, or `pooled` for a pool start). With `replace`, first remove the containers of
        its previous generation (a revert).

        Whatever goes wrong, the record ends `failed` with a reason and the engine holds
        nothing of it: no failure leaves an instance stuck in `starting`."""
        try:
            if replace:
                self._backend.stop(instance.id)
            launched = self._start_on_engine(spec, instance, flag)
            if not self._wait_ready(launched):
                timeout = self._policy.ready_timeout_seconds
                raise InstanceStartFailed(
                    f"the instance did not accept connections within {timeout:g} s",
                    instance_id=instance.id,
                )
        except BackendError as exc:
            self._fail(instance, exc.code, exc.message)
            raise
        except InstanceStartFailed as exc:
            self._fail(instance, "NOT_READY", exc.message)
            raise
        except Exception:
            self._fail(instance, "INTERNAL_ERROR", "an unexpected error interrupted the start")
            raise
        return self._mark_running(instance, launched, ready)

    def _start_on_engine(self, spec: ChallengeSpec, instance: Instance, flag: str) -> Launched:
        """Start, moving to other host ports if something outside instancer holds ours."""
        avoid: frozenset[int] = frozenset()
        for attempt in range(_PORT_RETRIES + 1):
            try:
                return self._backend.start(
                    _plan(spec, instance, flag, healthy_timeout=self._policy.ready_timeout_seconds)
                )
            except PortUnavailable:
                if attempt == _PORT_RETRIES:
                    raise
                self._backend.stop(instance.id)
                avoid |= {a.host_port for a in instance.allocations}
                instance = self._reallocate(spec, instance, avoid)
        raise AssertionError("unreachable")  # pragma: no cover

    def _reallocate(self, spec: ChallengeSpec, instance: Instance, avoid: frozenset[int]) -> Instance:
        with self._store.transaction() as tx:
            tx.lock_starts()
            current = tx.get_instance(instance.id)
            if current is None or (current.state, current.generation) != (
                State.STARTING,
                instance.generation,
            ):
                raise InstanceStartFailed(
                    "the instance was stopped while it was starting", instance_id=instance.id
                )
            tx.release_ports(instance.id)
            allocations = self._allocate(tx, spec, instance.id, avoid)
        return replace(instance, allocations=tuple(allocations))

    def _wait_ready(self, launched: Launched) -> bool:
        """Poll the exposed ports, quickly at first, then every 200 ms, until the timeout."""
        deadline = time.monotonic() + self._policy.ready_timeout_seconds
        pause = 0.01
        while not self._backend.probe(launched):
            if time.monotonic() >= deadline:
                return False
            self._sleep(pause)
            pause = min(pause * 2, 0.2)
        return True

    def _mark_running(self, instance: Instance, launched: Launched, ready: State) -> Instance:
        """Record `ready` (`running` or `pooled`) and where the proxy forwards to (its routes go
        live with it)."""
        now = self._clock.now()
        with self._store.transaction() as tx:
            ok = tx.transition(
                instance.id,
                expect=frozenset({State.STARTING}),
                to=ready,
                now=now,
                at_generation=instance.generation,
                started_at=now,
                public_host=launched.public_host,
            )
            if ok:
                tx.set_route_targets(instance.id, launched.targets)
            current = tx.get_instance(instance.id)
        assert current is not None
        if not ok:  # stopped while we were starting: leave no container and no port behind
            log.info("instance %s was stopped while starting; removing what this start created", instance.id)
            self._backend.stop(instance.id)
            with self._store.transaction() as tx:
                if (live := tx.get_instance(instance.id)) is not None and not live.live:
                    tx.release_ports(instance.id)
                    tx.release_routes(instance.id)
            raise InstanceStartFailed(
                "the instance was stopped while it was starting", instance_id=instance.id
            )
        return current

    def _fail(self, instance: Instance, code: str, message: str) -> None:
        """Record a failed start with its reason and remove whatever the engine holds of it."""
        log.warning("instance %s failed to start: %s", instance.id, code)
        now = self._clock.now()
        with self._store.transaction() as tx:
            tx.transition(
                instance.id,
                expect=frozenset({State.STARTING}),
                to=State.FAILED,
                now=now,
                at_generation=instance.generation,
                ended_at=now,
                reason=f"{code}: {message}",
            )
            tx.release_ports(instance.id)
            tx.release_routes(instance.id)
            tx.retire_flag(instance.id, now)
        try:
            self._backend.stop(instance.id)
        except BackendUnavailable:
            log.warning("engine unreachable while cleaning up %s; the reaper will retry", instance.id)

    # --- extend ------------------------------------------------------------------

    def extend(self, instance_id: str, *, owner: str | None = None) -> Instance:
        """A player extension: obeys the challenge's extension step, count and spacing.

        Raises:
            InstanceNotFound, InstanceNotRunning, ExtensionLimitReached, ExtensionTooSoon.
        """
        now = self._clock.now()
        with self._store.transaction() as tx:
            tx.lock_starts()
            instance = _owned(tx, instance_id, owner)
            spec = _challenge(tx, instance.challenge_id)
            deadline = lifecycle.extended_deadline(
                instance, spec.lifetime, now, min_interval_s=self._policy.extension_interval_for(spec)
            )
            extended = tx.transition(
                instance.id,
                expect=frozenset({State.RUNNING}),
                to=State.RUNNING,
                now=now,
                expires_at=deadline,
                extensions_used=instance.extensions_used + 1,
                last_extended_at=now,
            )
            if not extended:  # stopped or expired since we read it
                raise InstanceNotRunning("only a running instance can be extended")
            return _reload(tx, instance.id)

    def admin_extend(self, instance_id: str, *, seconds: int | None = None) -> Instance:
        """An admin extension: any live instance, by `seconds` (default: the challenge's step)."""
        now = self._clock.now()
        with self._store.transaction() as tx:
            instance = _owned(tx, instance_id, None, admin=True)
            if not instance.live:
                raise InstanceNotRunning("only a live instance can be extended", state=instance.state.value)
            spec = tx.get_challenge(instance.challenge_id)
            step = seconds if seconds is not None else (spec.lifetime.extension_seconds if spec else 3600)
            tx.transition(
                instance.id,
                expect=frozenset({instance.state}),
                to=instance.state,
                at_generation=instance.generation,
                now=now,
                expires_at=max(instance.expires_at, now) + timedelta(seconds=step),
            )
            return _reload(tx, instance.id)

    # --- revert ------------------------------------------------------------------

    def revert(self, instance_id: str, *, owner: str | None = None) -> Instance:
        """Replace the instance's containers with fresh ones; deadline, ports and flag stay.

        Raises:
            InstanceNotFound, InstanceNotRunning, Cooldown, BackendUnavailable, InstanceStartFailed.
        """
        self._backend.ping()
        now = self._clock.now()
        with self._store.transaction() as tx:
            tx.lock_starts()
            instance = _owned(tx, instance_id, owner)
            if instance.state is not State.RUNNING:
                raise InstanceNotRunning(
                    "only a running instance can be reverted", state=instance.state.value
                )
            # The spec the instance started from: its ports are the ones it holds.
            spec = tx.instance_spec(instance.id) or _challenge(tx, instance.challenge_id)
            lifecycle.check_cooldown(
                tx.owner_last_start(instance.owner), now, self._policy.cooldown_for(spec)
            )
            begun = self._next_generation(tx, instance, now, new_slugs=True)
            if begun is None:  # stopped since we read it
                raise InstanceNotRunning("only a running instance can be reverted")
            flag, instance = begun
            tx.touch_owner(instance.owner, now)
        return self._launch(spec, instance, flag, replace=True)

    def _next_generation(
        self, tx: Tx, instance: Instance, now: datetime, *, reason: str | None = None, new_slugs: bool = False
    ) -> tuple[str, Instance] | None:
        """Move a running instance to `starting` at its next generation, claimed by this replica,
        and return its flag and new record; None if it is no longer running at that generation.

        With `new_slugs` (a revert) its proxied ports get new addresses: whoever learnt the old
        ones (a teammate who shared a link too widely) loses them. A repair keeps them."""
        flag = self._vault.open(_must(tx.get_flag(instance.id), instance.id), instance_id=instance.id)
        if not tx.transition(
            instance.id,
            expect=frozenset({State.RUNNING}),
            to=State.STARTING,
            now=now,
            at_generation=instance.generation,
            generation=instance.generation + 1,
            claimed_by=self.replica_id,
            reason=reason,
        ):
            return None
        if new_slugs and instance.routes:
            tx.release_routes(instance.id)
            tx.add_routes(instance.id, [replace(r, slug=new_slug(), target=None) for r in instance.routes])
        return flag, _reload(tx, instance.id)

    # --- stop --------------------------------------------------------------------

    def stop(
        self,
        instance_id: str,
        *,
        owner: str | None = None,
        final: State = State.STOPPED,
        reason: str | None = None,
        admin: bool = False,
    ) -> Instance:
        """Stop an instance and free what it held. Stopping an ended instance is a no-op. Only an
        admin (`admin`) may stop an unclaimed pool instance; players do not see one.

        Raises:
            InstanceNotFound; BackendUnavailable (the record stays `stopping`; the reaper finishes).
        """
        now = self._clock.now()
        with self._store.transaction() as tx:
            instance = _owned(tx, instance_id, owner, admin=admin)
            if instance.state in ENDED_STATES or instance.state is State.STOPPING:
                return instance  # already ended, or already being stopped by whoever claimed it
            tx.transition(
                instance.id,
                expect=LIVE_STATES | {State.POOLED},
                to=State.STOPPING,
                now=now,
                reason=reason,
                claimed_by=self.replica_id,
            )
        return self._finish_stop(instance.id, final, reason)[0]

    def finish_stop(self, instance_id: str, reason: str) -> Instance:
        """Finish a stop already claimed (`stopping`, by this replica): remove, free, record."""
        return self._finish_stop(instance_id, State.STOPPED, reason)[0]

    def _finish_stop(self, instance_id: str, final: State, reason: str | None) -> tuple[Instance, bool]:
        """Remove what the engine holds, then record the end. True when this call recorded it
        (another replica finishing the same stop at the same time makes it False)."""
        with self._busy_lock:
            self._busy.add(instance_id)
        try:
            self._backend.stop(instance_id)
            now = self._clock.now()
            with self._store.transaction() as tx:
                won = tx.transition(
                    instance_id,
                    expect=frozenset({State.STOPPING}),
                    to=final,
                    now=now,
                    ended_at=now,
                    reason=reason,
                )
                tx.release_ports(instance_id)
                tx.release_routes(instance_id)
                tx.retire_flag(instance_id, now)
                return _reload(tx, instance_id), won
        finally:
            with self._busy_lock:
                self._busy.discard(instance_id)

    def stop_all(self, challenge_id: str | None = None) -> int:
        """Admin bulk stop; returns how many instances this call stopped."""
        flt = InstanceFilter(challenge_id=challenge_id, states=OCCUPYING_STATES)
        with self._store.transaction() as tx:
            targets = tx.find(flt, page=1, per_page=100_000).items
        stopped = 0
        for instance in targets:
            if self.stop(instance.id, reason="stopped by an admin", admin=True).state is State.STOPPED:
                stopped += 1
        return stopped

    # --- reaper ------------------------------------------------------------------

    def reap(self, *, batch: int = 200) -> dict[str, int]:
        """Expire instances past their deadline and finish starts/stops a dead process left.

        Safe to run from several replicas at once: each instance is claimed by a
        compare-and-set before anything is removed. Removals run in parallel so a wave
        of instances sharing one deadline is gone within a tick or two.
        Returns counts per kind of repair.
        """
        now = self._clock.now()
        with self._store.read() as tx:
            due = tx.due(now, batch)
            alive = self._alive_replicas(tx.heartbeats(), now)
            # A start belongs to the replica that recorded it; only a dead replica's are repaired.
            stale_starts = tx.abandoned(frozenset({State.STARTING}), alive, batch)
            # A stop whose engine call failed is retried soon by the replica that claimed it, or
            # by any replica once that one is dead; never twice at once by two live ones.
            retry_before = now - timedelta(seconds=self._policy.stop_retry_seconds)
            with self._busy_lock:
                busy = set(self._busy)
            stuck_stops = [
                i
                for i in tx.stale(frozenset({State.STOPPING}), retry_before, batch)
                if i.claimed_by == self.replica_id and i.id not in busy
            ]
            # A dead replica's stops: taken over by one live replica (compare-and-set on the claim).
            stuck_stops += [
                i for i in tx.abandoned(frozenset({State.STOPPING}), alive, batch) if self._take_over(i)
            ]
        jobs: list[tuple[str, str, State, str]] = [
            ("expired", i.id, State.EXPIRED, REASON_EXPIRED)
            for i in due
            if self._claim(i, LIVE_STATES, REASON_EXPIRED, expired_by=now)
        ]
        jobs += [
            ("stale_starting", i.id, State.FAILED, REASON_INTERRUPTED)
            for i in stale_starts
            if self._claim(i, frozenset({State.STARTING}), REASON_INTERRUPTED)
        ]
        # Were a stop finished twice all the same, it would be harmless: removal is idempotent
        # and the last step is a compare-and-set from `stopping`.
        jobs += [
            ("stale_stopping", i.id, _final_state_of(i), i.reason or REASON_INTERRUPTED) for i in stuck_stops
        ]
        report = {"expired": 0, "stale_starting": 0, "stale_stopping": 0}
        for kind, done in zip((j[0] for j in jobs), self._pool.map(self._try_finish, jobs), strict=True):
            report[kind] += done
        return report

    def _alive_replicas(self, beats: dict[str, datetime], now: datetime) -> frozenset[str]:
        """Replicas whose heartbeat changed within the timeout, as measured by this replica's
        own clock: each replica writes its heartbeat with its own clock, so comparing those
        values with ours would take a replica whose clock lags for dead."""
        timeout = self._policy.replica_timeout_seconds
        for replica, beat in beats.items():
            last = self._beats_seen.get(replica)
            if last is None or last[0] != beat:
                self._beats_seen[replica] = (beat, now)
        for gone in set(self._beats_seen) - set(beats):
            del self._beats_seen[gone]
        alive = {r for r, (_, seen) in self._beats_seen.items() if (now - seen).total_seconds() < timeout}
        return frozenset(alive | {self.replica_id})

    def _take_over(self, instance: Instance) -> bool:
        with self._store.transaction() as tx:
            return tx.transition(
                instance.id,
                expect=frozenset({State.STOPPING}),
                to=State.STOPPING,
                now=self._clock.now(),
                held_by=instance.claimed_by,
                claimed_by=self.replica_id,
            )

    def _try_finish(self, job: tuple[str, str, State, str]) -> bool:
        """Finish one claimed stop; an engine failure leaves it `stopping` for a later pass."""
        _, instance_id, final, reason = job
        try:
            return self._finish_stop(instance_id, final, reason)[1]
        except InstancerError as exc:
            log.warning("could not finish stopping %s (%s); retrying later", instance_id, exc.code)
            return False

    def _claim(
        self, instance: Instance, expect: frozenset[State], reason: str, *, expired_by: datetime | None = None
    ) -> bool:
        with self._store.transaction() as tx:
            return tx.transition(
                instance.id,
                expect=expect,
                to=State.STOPPING,
                now=self._clock.now(),
                at_generation=instance.generation,
                expired_by=expired_by,
                reason=reason,
                claimed_by=self.replica_id,
            )

    def heartbeat(self) -> None:
        """Prove this replica is alive, so that its claimed starts are left to it."""
        with self._store.transaction() as tx:
            tx.heartbeat(self.replica_id, self._clock.now())

    def retire(self) -> None:
        """A clean shutdown: whatever this replica still claims is for the others to finish."""
        with self._store.transaction() as tx:
            tx.forget_replica(self.replica_id)

    def reconcile(self, *, grace_seconds: float = 60.0, lost_after_seconds: float = 0.0) -> dict[str, int]:
        """Compare the records with what the engine holds (one labelled listing) and repair:

        | engine holds                          | record                    | repair            |
        |---------------------------------------|---------------------------|-------------------|
        | objects of an instance, older than    | none, or ended            | remove (orphan)   |
        |   the grace period                    |                           |                   |
        | fewer running containers than the     | running since before the  | mark `lost` with  |
        |   spec has (removed, exited, killed), |   listing                 |   a reason, free  |
        |   seen so for `lost_after_seconds`    |                           |   what it held    |

        The delay matters: an engine that is shutting down stops every container before its
        API goes away, and brings them back (restart policy) when it returns; an instance
        is lost only if it stays down for longer than such a blip.

        If the engine cannot be listed nothing is touched (BackendUnavailable is raised):
        an outage never marks an instance lost. Returns counts per kind of repair.
        """
        # Records first, then the engine: a revert that lands in between moves the instance to a
        # new generation, which the compare-and-set in _mark_lost/_recreate then refuses.
        # Ids and container counts only: the pass runs every few seconds beside status lookups,
        # and hydrating every live record was its cost (and a pause for those lookups). Whole
        # records are read below for the few confirmed short.
        with self._store.read() as tx:
            # Pooled instances too: one that died is no use to the next start (lost; the filler
            # replaces it).
            seen = tx.versions(frozenset({State.RUNNING, State.POOLED}))
        listed_at = self._clock.now()
        try:
            observed = self._backend.list_managed()
        except BackendError:
            self._suspects.clear()  # no sighting across an outage: after it, start counting again
            raise
        running: dict[str, int] = {}
        details: dict[str, set[str]] = {}
        for o in observed:
            if o.kind == "container":
                running[o.instance_id] = running.get(o.instance_id, 0) + int(o.running)
                if o.detail and not o.running:
                    details.setdefault(o.instance_id, set()).add(o.detail)
        report = {"orphans": self._remove_orphans(observed, listed_at, grace_seconds), "lost": 0}
        short = {i for i, v in seen.items() if running.get(i, 0) < v.containers}
        # Suspects: seen short now, and since when, without a healthy listing in between.
        self._suspects = {i: self._suspects.get(i, listed_at) for i in short}
        due = [
            i
            for i, since in self._suspects.items()
            if (listed_at - since).total_seconds() >= lost_after_seconds
        ]
        confirmed = [
            (i, _shortfall(running.get(i.id, 0), seen[i.id].containers, details.get(i.id, set())))
            for i in self._records(due, seen)
        ]
        # A pooled instance is never recreated: nobody owns it, and the pool filler replaces it.
        recreate = self._policy.lost_policy == "recreate"
        lost = [job for job in confirmed if not recreate or job[0].unclaimed]
        # In parallel and at most a pool's worth per pass: each waits for readiness, and a wave
        # of them must not hold up expiry for minutes (the rest go next pass).
        again = [job for job in confirmed if recreate and not job[0].unclaimed][:_RECREATE_PER_PASS]
        if recreate:
            done = self._pool.map(lambda job: self._recreate(job[0], listed_at, job[1]), again)
            report["recreated"] = sum(done)
        report["lost"] = sum(self._mark_lost(i, listed_at, why) for i, why in lost)
        for instance, _ in lost + again:
            self._suspects.pop(instance.id, None)
        return report

    def _records(self, ids: Sequence[str], seen: dict[str, Version]) -> list[Instance]:
        """The records of `ids` that are still the version seen before the engine was listed:
        one that moved on since (a revert, a claim, a stop) is not judged by that listing."""
        if not ids:
            return []
        with self._store.read() as tx:
            now = [tx.get_instance(i) for i in sorted(ids)]
        return [i for i in now if i is not None and seen[i.id] == _version(i, seen[i.id].containers)]

    def _recreate(self, instance: Instance, listed_at: datetime, why: str) -> bool:
        """Replace a lost instance's containers in place: same id, deadline, ports and flag."""
        now = self._clock.now()
        with self._store.transaction() as tx:
            current = tx.get_instance(instance.id)
            if current is None or (current.state, current.generation) != (State.RUNNING, instance.generation):
                return False
            spec = tx.instance_spec(instance.id) or _challenge(tx, instance.challenge_id)
            begun = self._next_generation(tx, instance, now, reason=f"recreated: {why}")
            if begun is None:
                return False
            flag, instance = begun
        log.warning("instance %s recreated: %s", instance.id, why)
        try:
            self._launch(spec, instance, flag, replace=True)
        except Exception as exc:  # _launch has recorded the failure and cleaned up
            log.warning(
                "recreating instance %s failed: %s", instance.id, getattr(exc, "code", type(exc).__name__)
            )
            return False
        return True

    def _remove_orphans(self, observed: list[Observed], now: datetime, grace_seconds: float) -> int:
        ids = {o.instance_id for o in observed if (now - o.created_at).total_seconds() > grace_seconds}
        removed = 0
        for instance_id in sorted(ids):
            with self._store.read() as tx:
                record = tx.get_instance(instance_id)
            if record is None or record.state in ENDED_STATES:
                self._backend.stop(instance_id)
                removed += 1
        return removed

    def _mark_lost(self, instance: Instance, listed_at: datetime, why: str) -> bool:
        """Record an instance whose containers vanished as `lost`, then free what it held."""
        now = self._clock.now()
        reason = f"LOST: {why}"
        with self._store.transaction() as tx:
            # Only if it is still the same running (or pooled) generation as when the engine was
            # listed, and a pooled one still unclaimed.
            current = tx.get_instance(instance.id)
            if current is None or (current.state, current.generation, current.owner) != (
                instance.state,
                instance.generation,
                instance.owner,
            ):
                return False
            if not tx.transition(
                instance.id,
                expect=frozenset({instance.state}),
                owned_by=instance.owner,
                to=State.LOST,
                now=now,
                at_generation=instance.generation,
                ended_at=now,
                reason=reason,
            ):
                return False
            tx.release_ports(instance.id)
            tx.release_routes(instance.id)
            tx.retire_flag(instance.id, now)
        log.warning("instance %s lost: %s", instance.id, reason)
        self._backend.stop(instance.id)  # whatever is left of it
        return True

    def remove_orphans(self, *, grace_seconds: float = 60.0) -> int:
        """Remove engine objects with our labels whose instance holds no live record."""
        return self._remove_orphans(self._backend.list_managed(), self._clock.now(), grace_seconds)


def _shortfall(running: int, expected: int, details: set[str]) -> str:
    """Why an instance counts as lost, with what the engine said (e.g. which node went down)."""
    why = f"{running} of {expected} container(s) running at the last reconcile"
    return f"{why} ({'; '.join(sorted(details))})" if details else why


def _final_state_of(stopping: Instance) -> State:
    """The state a `stopping` record ends in, from why it is being stopped."""
    return {REASON_EXPIRED: State.EXPIRED, REASON_INTERRUPTED: State.FAILED}.get(
        stopping.reason or "", State.STOPPED
    )


def _challenge(tx: Tx, challenge_id: str) -> ChallengeSpec:
    spec = tx.get_challenge(challenge_id)
    if spec is None:
        raise ChallengeNotFound(f"no challenge {challenge_id!r}", challenge=challenge_id)
    return spec


def _owned(tx: Tx, instance_id: str, owner: str | None, *, admin: bool = False) -> Instance:
    """The instance, if it exists and (when `owner` is given) belongs to that owner. An unclaimed
    pool instance is found only for an admin: to players it does not exist."""
    instance = tx.get_instance(instance_id)
    if instance is None or (owner is not None and instance.owner != owner):
        raise InstanceNotFound("no such instance", instance=instance_id)
    if instance.unclaimed and not admin:
        raise InstanceNotFound("no such instance", instance=instance_id)
    return instance


def _reload(tx: Tx, instance_id: str) -> Instance:
    instance = tx.get_instance(instance_id)
    if instance is None:  # pragma: no cover - rows are never deleted
        raise InstanceNotFound("no such instance", instance=instance_id)
    return instance


def _flag_file(spec: ChallengeSpec, container: str, flag: str) -> tuple[FileInject, ...]:
    if spec.flag.file is None or not spec.gets_flag(container):
        return ()
    # Read-only for everyone: any user the image runs as can read it; nobody can rewrite it.
    return (FileInject(path=spec.flag.file, content=flag.encode() + b"\n", mode=0o444),)


def _must(sealed: SealedFlag | None, instance_id: str) -> SealedFlag:
    if sealed is None:  # pragma: no cover - every instance is recorded with its flag
        raise InstanceNotFound("the instance has no flag record", instance=instance_id)
    return sealed


def _plan(spec: ChallengeSpec, instance: Instance, flag: str, *, healthy_timeout: float) -> LaunchPlan:
    """What the engine runs for this generation: containers in start order (dependencies
    first), the flag only in the containers that get it."""
    by_container: dict[str, list[PortBinding]] = {}
    for a in instance.allocations:
        by_container.setdefault(a.container, []).append(PortBinding(a.container_port, a.host_port))
    by_name = {c.name: c for c in spec.containers}
    order = start_order({c.name: c.depends_on for c in spec.containers})
    containers = tuple(
        ContainerPlan(
            name=c.name,
            image=c.image,
            env={**c.env, spec.flag.env: flag} if spec.flag.env and spec.gets_flag(c.name) else dict(c.env),
            command=c.command,
            memory_mib=c.resources.memory_mib,
            cpus=c.resources.cpus,
            pids=c.resources.pids,
            cap_add=c.cap_add,
            ports=tuple(by_container.get(c.name, ())),
            files=_flag_file(spec, c.name, flag),
            exposed=tuple(p.port for p in c.ports),
            depends_on=c.depends_on,
            healthcheck=c.healthcheck,
        )
        for c in (by_name[name] for name in order)
    )
    return LaunchPlan(
        instance_id=instance.id,
        generation=instance.generation,
        challenge_id=instance.challenge_id,
        owner=instance.owner,
        expires_at=instance.expires_at,
        containers=containers,
        healthy_timeout_seconds=healthy_timeout,
        egress=spec.egress,
        constraints=spec.placement.constraints,
    )


def _version(instance: Instance, containers: int) -> Version:
    return Version(instance.state, instance.generation, instance.owner, containers)
