"""The store adapter: one `SqlTx` per transaction, over SQLite or PostgreSQL.

SQLite transactions begin with BEGIN IMMEDIATE, so writers queue on the database lock;
on PostgreSQL `lock_starts` takes a row lock. Either way every limit decision is made by
one writer at a time, across threads and replicas alike.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, delete, event, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from ..domain.capacity import Footprint, footprint_of
from ..domain.errors import PortsExhausted, StoreUnavailable
from ..domain.model import OCCUPYING_STATES, Allocation, FlagShare, Instance, Route, State, Version
from ..domain.ports import (
    FlagMatch,
    InstanceFilter,
    LiveInstanceExists,
    Page,
    RouteTarget,
    SealedFlag,
    ShareFilter,
    SharePage,
    Stats,
)
from ..domain.spec import ChallengeSpec, Expose, Protocol
from .tables import (
    AllocationRow,
    AuditRow,
    ChallengeRow,
    FlagRow,
    FlagShareRow,
    InstanceRow,
    LockRow,
    OwnerRow,
    ReplicaRow,
    RouteRow,
)

STARTS_LOCK = "starts"
#: states whose routes the proxy serves: pooled ones too, so a claim answers at once (decisions/0009)
_SERVED = sorted(s.value for s in (State.RUNNING, State.POOLED))
REASON_CHARS = 500
READ_ONLY = "instancer_read_only"
_INSTANCE_COLUMNS = {c.name for c in InstanceRow.__table__.columns}


def make_engine(url: str) -> Engine:
    """An engine tuned for instancer: SQLite in WAL mode with immediate transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # hide_parameters: a failing statement's values (flags, owners) never reach a log.
        return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=40, hide_parameters=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below be the only one
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        # WAL + NORMAL: commits survive a crash of the process, and a power cut can lose
        # only the last few; the database file itself is never corrupted.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock up front (no deadlock-prone lock upgrades); readers do not.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    @contextmanager
    def transaction(self) -> Iterator[SqlTx]:
        with self._session(self.engine) as tx:
            yield tx

    @contextmanager
    def read(self) -> Iterator[SqlTx]:
        """A transaction that only reads: it takes no write lock (SQLite) and so never
        queues behind writers."""
        with self._session(self._reader) as tx:
            yield tx

    @contextmanager
    def _session(self, bind: Engine) -> Iterator[SqlTx]:
        try:
            with Session(bind, expire_on_commit=False) as session, session.begin():
                yield SqlTx(session)
        except (OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable("the database cannot be reached or is overloaded") from exc

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise StoreUnavailable("the database cannot be reached") from exc


class SqlTx:
    def __init__(self, session: Session) -> None:
        self._s = session

    # --- locks and challenges ----------------------------------------------------

    def lock_starts(self) -> None:
        if self._s.get_bind().dialect.name == "sqlite":
            return  # BEGIN IMMEDIATE already holds the database write lock
        # scalar_one: a missing lock row must fail loudly, not lock nothing.
        self._s.execute(
            select(LockRow.name).where(LockRow.name == STARTS_LOCK).with_for_update()
        ).scalar_one()

    def challenge_exists(self, challenge_id: str) -> bool:
        return self._s.execute(_CHALLENGE_EXISTS, {"challenge_id": challenge_id}).first() is not None

    def get_challenge(self, challenge_id: str) -> ChallengeSpec | None:
        row = self._s.get(ChallengeRow, challenge_id)
        return None if row is None else ChallengeSpec.model_validate_json(row.spec)

    def put_challenge(self, spec: ChallengeSpec, now: datetime) -> bool:
        existed = self.challenge_exists(spec.id)
        # An upsert, so that two concurrent PUTs of a new challenge both succeed.
        dialect_insert = pg_insert if self._s.get_bind().dialect.name == "postgresql" else sqlite_insert
        q = dialect_insert(ChallengeRow).values(
            id=spec.id,
            spec=spec.model_dump_json(),
            after_solve_seconds=spec.lifetime.after_solve_seconds,
            created_at=now,
            updated_at=now,
        )
        changed = {"spec": q.excluded.spec, "after_solve_seconds": q.excluded.after_solve_seconds}
        q = q.on_conflict_do_update(index_elements=["id"], set_={**changed, "updated_at": now})
        self._s.execute(q)
        return not existed

    def delete_challenge(self, challenge_id: str) -> bool:
        result = self._s.execute(delete(ChallengeRow).where(ChallengeRow.id == challenge_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def list_challenges(self) -> list[ChallengeSpec]:
        rows = self._s.scalars(select(ChallengeRow).order_by(ChallengeRow.id))
        return [ChallengeSpec.model_validate_json(r.spec) for r in rows]

    # --- owners ------------------------------------------------------------------

    def owner_last_start(self, owner: str) -> datetime | None:
        row = self._s.get(OwnerRow, owner)
        return None if row is None else row.last_start_at

    def touch_owner(self, owner: str, now: datetime) -> None:
        row = self._s.get(OwnerRow, owner)
        if row is None:
            self._s.add(OwnerRow(owner=owner, last_start_at=now))
        else:
            row.last_start_at = now

    # --- instances ---------------------------------------------------------------

    def add_instance(self, instance: Instance, spec: ChallengeSpec, *, claimed_by: str | None = None) -> None:
        row = _to_row(instance)
        row.spec = spec.model_dump_json()
        row.claimed_by = claimed_by
        self._s.add(row)
        try:
            self._s.flush()
        except IntegrityError as exc:
            raise LiveInstanceExists(instance.challenge_id, instance.owner) from exc

    def instance_spec(self, instance_id: str) -> ChallengeSpec | None:
        body = self._s.scalar(select(InstanceRow.spec).where(InstanceRow.id == instance_id))
        return None if body is None else ChallengeSpec.model_validate_json(body)

    def versions(self, states: frozenset[State]) -> dict[str, Version]:
        q = select(
            InstanceRow.id, InstanceRow.state, InstanceRow.generation, InstanceRow.owner, InstanceRow.spec
        ).where(InstanceRow.state.in_(_names(states)))
        # Plain JSON, not a validated spec: the reconcile needs a count, every few seconds.
        return {
            i: Version(State(state), generation, owner, len(json.loads(spec).get("containers", ())) or 1)
            for i, state, generation, owner, spec in self._s.execute(q).tuples()
        }

    def get_instance(self, instance_id: str) -> Instance | None:
        row = self._s.execute(_GET_INSTANCE, {"id": instance_id}).first()
        return None if row is None else self._hydrate([row])[0]

    def live_instance(self, challenge_id: str, owner: str) -> Instance | None:
        rows = self._select(InstanceFilter(challenge_id, owner, frozenset({State.STARTING, State.RUNNING})))
        return rows[0] if rows else None

    def live_of_owner(self, owner: str) -> list[Instance]:
        return self._select(InstanceFilter(owner=owner, states=frozenset({State.STARTING, State.RUNNING})))

    def count_occupying(self, challenge_id: str | None = None) -> int:
        q = select(func.count()).select_from(InstanceRow)
        q = q.where(InstanceRow.state.in_(_names(OCCUPYING_STATES)))
        if challenge_id is not None:
            q = q.where(InstanceRow.challenge_id == challenge_id)
        return int(self._s.scalar(q) or 0)

    def pooled_ids(self, challenge_id: str, pool_key: str, limit: int) -> list[str]:
        q = (
            select(InstanceRow.id)
            .where(
                InstanceRow.state == State.POOLED.value,
                InstanceRow.challenge_id == challenge_id,
                InstanceRow.pool_key == pool_key,
            )
            .order_by(InstanceRow.state_changed_at, InstanceRow.id)
            .limit(limit)
        )
        return [str(i) for i in self._s.scalars(q)]

    def pool_members(self) -> list[Instance]:
        q = (
            select(InstanceRow)
            .where(
                InstanceRow.state.in_(_names(frozenset({State.STARTING, State.POOLED}))),
                InstanceRow.pool_key.is_not(None),
            )
            .order_by(InstanceRow.created_at, InstanceRow.id)
        )
        return self._hydrate(list(self._s.scalars(q)))

    def occupying_footprint(self) -> Footprint:
        # Summed here, from each instance's own spec: the spec it started from is what holds
        # the engine's memory, whatever the challenge's current one says.
        q = select(InstanceRow.spec).where(InstanceRow.state.in_(_names(OCCUPYING_STATES)))
        total = Footprint()
        for body in self._s.scalars(q):
            total += footprint_of(ChallengeSpec.model_validate_json(body))
        return total

    def find(self, flt: InstanceFilter, *, page: int = 1, per_page: int = 50) -> Page:
        offset = (page - 1) * per_page
        items = self._select(flt, offset=offset, limit=per_page)
        if len(items) < per_page and (items or offset == 0):
            # The last page tells the total: no count, which would scan the rows a second time
            # (the CTFd plugin's status poll asks for an owner's live instances, always one page).
            return Page(items=items, total=offset + len(items), page=page, per_page=per_page)
        total = int(self._s.scalar(_filtered(select(func.count()).select_from(InstanceRow), flt)) or 0)
        return Page(items=items, total=total, page=page, per_page=per_page)

    def due(self, now: datetime, limit: int) -> list[Instance]:
        q = (
            select(InstanceRow)
            .where(
                InstanceRow.state.in_(["starting", "running"]),
                InstanceRow.expires_at <= now,
                InstanceRow.pool_key.is_(None),  # an unclaimed pool start has no deadline yet
            )
            .order_by(InstanceRow.expires_at)
            .limit(limit)
        )
        return self._hydrate(list(self._s.scalars(q)))

    def heartbeat(self, replica_id: str, now: datetime) -> None:
        dialect_insert = pg_insert if self._s.get_bind().dialect.name == "postgresql" else sqlite_insert
        q = dialect_insert(ReplicaRow).values(id=replica_id, heartbeat_at=now)
        self._s.execute(q.on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now}))

    def forget_replica(self, replica_id: str) -> None:
        self._s.execute(delete(ReplicaRow).where(ReplicaRow.id == replica_id))

    def heartbeats(self) -> dict[str, datetime]:
        return {str(i): h for i, h in self._s.execute(select(ReplicaRow.id, ReplicaRow.heartbeat_at))}

    def abandoned(self, states: frozenset[State], alive: frozenset[str], limit: int) -> list[Instance]:
        q = (
            select(InstanceRow)
            .where(
                InstanceRow.state.in_(_names(states)),
                (InstanceRow.claimed_by.is_(None)) | (InstanceRow.claimed_by.not_in(sorted(alive))),
            )
            .order_by(InstanceRow.state_changed_at)
            .limit(limit)
        )
        return self._hydrate(list(self._s.scalars(q)))

    def stale(self, states: frozenset[State], before: datetime, limit: int) -> list[Instance]:
        q = (
            select(InstanceRow)
            .where(InstanceRow.state.in_(_names(states)), InstanceRow.state_changed_at <= before)
            .order_by(InstanceRow.state_changed_at)
            .limit(limit)
        )
        return self._hydrate(list(self._s.scalars(q)))

    def transition(
        self,
        instance_id: str,
        *,
        expect: frozenset[State],
        to: State,
        now: datetime,
        at_generation: int | None = None,
        expired_by: datetime | None = None,
        held_by: str | None = None,
        owned_by: str | None = None,
        **changes: object,
    ) -> bool:
        unknown = set(changes) - _INSTANCE_COLUMNS
        if unknown:
            raise ValueError(f"not instance columns: {sorted(unknown)}")
        if isinstance(changes.get("reason"), str):
            changes["reason"] = str(changes["reason"])[:REASON_CHARS]
        q = update(InstanceRow).where(InstanceRow.id == instance_id, InstanceRow.state.in_(_names(expect)))
        if at_generation is not None:
            q = q.where(InstanceRow.generation == at_generation)
        if expired_by is not None:
            q = q.where(InstanceRow.expires_at <= expired_by)
        if held_by is not None:  # take over another replica's claim only if it is still theirs
            q = q.where(InstanceRow.claimed_by == held_by)
        if owned_by is not None:  # e.g. a pool instance only while no start has claimed it
            q = q.where(InstanceRow.owner == owned_by)
        result = self._s.execute(q.values(state=to.value, state_changed_at=now, **changes))
        return int(result.rowcount) == 1  # type: ignore[attr-defined]

    def bring_deadline_in(self, instance_id: str, until: datetime) -> bool:
        q = update(InstanceRow).where(
            InstanceRow.id == instance_id,
            InstanceRow.state == State.RUNNING.value,
            InstanceRow.expires_at > until,
        )
        return int(self._s.execute(q.values(expires_at=until)).rowcount) == 1  # type: ignore[attr-defined]

    # --- ports -------------------------------------------------------------------

    def allocate_ports(
        self,
        instance_id: str,
        wanted: Sequence[tuple[str, int, str]],
        low: int,
        high: int,
        avoid: frozenset[int] = frozenset(),
    ) -> list[Allocation]:
        if not wanted:
            return []
        taken = set(self._s.scalars(select(AllocationRow.host_port))) | avoid
        free = _pick_free(taken, low, high, len(wanted))
        if free is None:
            raise PortsExhausted(f"no free host port left in {low}-{high}", low=low, high=high)
        allocations = [
            Allocation(c, cp, Protocol(proto), hp) for (c, cp, proto), hp in zip(wanted, free, strict=True)
        ]
        for a in allocations:
            self._s.add(
                AllocationRow(
                    host_port=a.host_port,
                    instance_id=instance_id,
                    container=a.container,
                    container_port=a.container_port,
                    protocol=a.protocol.value,
                )
            )
        self._s.flush()
        return allocations

    def release_ports(self, instance_id: str) -> None:
        self._s.execute(delete(AllocationRow).where(AllocationRow.instance_id == instance_id))

    # --- routes ------------------------------------------------------------------

    def add_routes(self, instance_id: str, routes: Sequence[Route]) -> None:
        for r in routes:
            self._s.add(
                RouteRow(
                    slug=r.slug,
                    instance_id=instance_id,
                    container=r.container,
                    container_port=r.container_port,
                    mode=r.mode.value,
                    target=r.target,
                )
            )
        self._s.flush()

    def set_route_targets(self, instance_id: str, targets: Sequence[RouteTarget]) -> None:
        for t in targets:
            self._s.execute(
                update(RouteRow)
                .where(
                    RouteRow.instance_id == instance_id,
                    RouteRow.container == t.container,
                    RouteRow.container_port == t.container_port,
                )
                .values(target=t.address)
            )

    def release_routes(self, instance_id: str) -> None:
        self._s.execute(delete(RouteRow).where(RouteRow.instance_id == instance_id))

    def routed(self) -> list[tuple[Instance, Route]]:
        q = (
            select(InstanceRow, RouteRow)
            .join(RouteRow, RouteRow.instance_id == InstanceRow.id)
            .where(InstanceRow.state.in_(_SERVED), RouteRow.target.is_not(None))
            .order_by(RouteRow.slug)
        )
        return [(_from_row(i, ()), _route(r)) for i, r in self._s.execute(q).tuples()]

    def stats(self) -> Stats:
        states = select(InstanceRow.state, func.count()).group_by(InstanceRow.state)
        by_state = {str(state): int(n) for state, n in self._s.execute(states)}
        occupying = (
            select(InstanceRow.challenge_id, func.count())
            .where(InstanceRow.state.in_(_names(OCCUPYING_STATES)))
            .group_by(InstanceRow.challenge_id)
        )
        by_challenge = {str(c): int(n) for c, n in self._s.execute(occupying)}
        ports = int(self._s.scalar(select(func.count()).select_from(AllocationRow)) or 0)
        routes = int(self._s.scalar(select(func.count()).select_from(RouteRow)) or 0)
        pooled = (
            select(InstanceRow.challenge_id, func.count())
            .where(InstanceRow.state == State.POOLED.value)
            .group_by(InstanceRow.challenge_id)
        )
        return Stats(
            by_state=by_state,
            by_challenge=by_challenge,
            ports_allocated=ports,
            routes=routes,
            pooled_by_challenge={str(c): int(n) for c, n in self._s.execute(pooled)},
        )

    # --- flags -------------------------------------------------------------------

    def add_flag(
        self, instance_id: str, challenge_id: str, owner: str, sealed: SealedFlag, now: datetime
    ) -> None:
        self._s.add(
            FlagRow(
                instance_id=instance_id,
                challenge_id=challenge_id,
                owner=owner,
                key_id=sealed.key_id,
                nonce=sealed.nonce,
                ciphertext=sealed.ciphertext,
                digest=sealed.digest,
                created_at=now,
            )
        )
        self._s.flush()

    def get_flag(self, instance_id: str) -> SealedFlag | None:
        row = self._s.get(FlagRow, instance_id)
        return None if row is None else _sealed(row)

    def set_flag_owner(self, instance_id: str, owner: str) -> None:
        self._s.execute(update(FlagRow).where(FlagRow.instance_id == instance_id).values(owner=owner))

    def find_flags(self, challenge_id: str, digests: Sequence[bytes]) -> list[FlagMatch]:
        rows = self._s.execute(_FIND_FLAGS, {"challenge_id": challenge_id, "digests": list(digests)})
        return [
            FlagMatch(
                r.instance_id,
                r.owner,
                SealedFlag(r.key_id, r.nonce, r.ciphertext, r.digest),
                r.retired,
                r.after_solve_seconds,
            )
            for r in rows
        ]

    def retire_flag(self, instance_id: str, now: datetime) -> None:
        q = update(FlagRow).where(FlagRow.instance_id == instance_id, FlagRow.retired_at.is_(None))
        self._s.execute(q.values(retired_at=now))

    def delete_flags(self, challenge_id: str) -> int:
        result = self._s.execute(delete(FlagRow).where(FlagRow.challenge_id == challenge_id))
        return int(result.rowcount)  # type: ignore[attr-defined]

    def flags_not_under(self, key_id: str, limit: int) -> list[tuple[str, SealedFlag]]:
        q = select(FlagRow).where(FlagRow.key_id != key_id).order_by(FlagRow.instance_id).limit(limit)
        return [(r.instance_id, _sealed(r)) for r in self._s.scalars(q)]

    def reseal_flag(self, instance_id: str, sealed: SealedFlag, *, was_key_id: str) -> bool:
        q = update(FlagRow).where(FlagRow.instance_id == instance_id, FlagRow.key_id == was_key_id)
        result = self._s.execute(
            q.values(
                key_id=sealed.key_id, nonce=sealed.nonce, ciphertext=sealed.ciphertext, digest=sealed.digest
            )
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]

    def count_flags(self) -> dict[str, int]:
        q = select(FlagRow.key_id, func.count()).group_by(FlagRow.key_id)
        return {str(k): int(n) for k, n in self._s.execute(q)}

    def add_share(self, share: FlagShare) -> None:
        # A Core insert: sharing attempts arrive in bursts, and the ORM's unit of work
        # would triple the cost of recording one.
        self._s.execute(
            insert(FlagShareRow),
            {
                "challenge_id": share.challenge_id,
                "submitter": share.submitter,
                "flag_owner": share.flag_owner,
                "instance_id": share.instance_id,
                "created_at": share.created_at,
            },
        )

    def find_shares(self, flt: ShareFilter, *, page: int = 1, per_page: int = 50) -> SharePage:
        q = select(FlagShareRow)
        for column, value in (
            (FlagShareRow.challenge_id, flt.challenge_id),
            (FlagShareRow.submitter, flt.submitter),
            (FlagShareRow.flag_owner, flt.flag_owner),
        ):
            if value is not None:
                q = q.where(column == value)
        total = int(self._s.scalar(select(func.count()).select_from(q.subquery())) or 0)
        rows = self._s.scalars(
            q.order_by(FlagShareRow.id.desc()).offset((page - 1) * per_page).limit(per_page)
        )
        items = [
            FlagShare(r.challenge_id, r.submitter, r.flag_owner, r.instance_id, r.created_at, id=r.id)
            for r in rows
        ]
        return SharePage(items=items, total=total, page=page, per_page=per_page)

    def audit(self, *, actor: str, action: str, target: str, now: datetime) -> None:
        self._s.add(AuditRow(at=now, actor=actor, action=action, target=target))

    # --- helpers -----------------------------------------------------------------

    def _select(self, flt: InstanceFilter, *, offset: int = 0, limit: int | None = None) -> list[Instance]:
        q = _filtered(select(InstanceRow), flt).order_by(InstanceRow.created_at.desc(), InstanceRow.id)
        rows = list(self._s.scalars(q.offset(offset).limit(limit)))
        return self._hydrate(rows)

    def _hydrate(self, rows: Sequence[Any]) -> list[Instance]:
        """Rows (ORM or plain) to domain instances, loading every row's port allocations and
        routes in one query each, with statements built once (status lookups run this)."""
        ids = [r.id for r in rows]
        allocs: dict[str, list[Allocation]] = {}
        routes: dict[str, list[Route]] = {}
        if ids:
            for a in self._s.execute(_ALLOCATIONS_OF, {"ids": ids}):
                allocs.setdefault(a.instance_id, []).append(
                    Allocation(a.container, a.container_port, Protocol(a.protocol), a.host_port)
                )
            for route in self._s.execute(_ROUTES_OF, {"ids": ids}):
                routes.setdefault(route.instance_id, []).append(_route(route))
        return [_from_row(r, tuple(allocs.get(r.id, ())), tuple(routes.get(r.id, ()))) for r in rows]


# The flag-verify and status paths run on every submission and poll: their statements are
# built once (so their cache keys are too) and return plain rows rather than ORM objects.
_GET_INSTANCE = select(*(c for c in InstanceRow.__table__.c if c.name != "spec")).where(
    InstanceRow.id == bindparam("id")
)
_ALLOCATIONS_OF = (
    select(AllocationRow.__table__)
    .where(AllocationRow.instance_id.in_(bindparam("ids", expanding=True)))
    .order_by(AllocationRow.host_port)
)
_ROUTES_OF = (
    select(RouteRow.__table__)
    .where(RouteRow.instance_id.in_(bindparam("ids", expanding=True)))
    .order_by(RouteRow.slug)
)
_CHALLENGE_EXISTS = select(ChallengeRow.id).where(ChallengeRow.id == bindparam("challenge_id"))
_FIND_FLAGS = (
    select(
        FlagRow.instance_id,
        FlagRow.owner,
        FlagRow.key_id,
        FlagRow.nonce,
        FlagRow.ciphertext,
        FlagRow.digest,
        FlagRow.retired_at.is_not(None).label("retired"),
        ChallengeRow.after_solve_seconds,
    )
    .join(ChallengeRow, ChallengeRow.id == FlagRow.challenge_id)
    .where(
        FlagRow.challenge_id == bindparam("challenge_id"),
        FlagRow.digest.in_(bindparam("digests", expanding=True)),
    )
    .order_by(FlagRow.created_at.desc())
)


def _filtered(q: Any, flt: InstanceFilter) -> Any:
    if flt.challenge_id is not None:
        q = q.where(InstanceRow.challenge_id == flt.challenge_id)
    if flt.owner is not None:
        q = q.where(InstanceRow.owner == flt.owner)
    if flt.states is not None:
        q = q.where(InstanceRow.state.in_(_names(flt.states)))
    return q


def _names(states: frozenset[State]) -> list[str]:
    return sorted(s.value for s in states)


def _pick_free(taken: set[int], low: int, high: int, n: int) -> list[int] | None:
    """`n` distinct free ports in [low, high], chosen at random so replicas rarely collide."""
    if high - low + 1 - len({p for p in taken if low <= p <= high}) < n:
        return None
    chosen: list[int] = []
    while len(chosen) < n:
        port = random.randint(low, high)
        if port not in taken:
            taken.add(port)
            chosen.append(port)
    return chosen


def _sealed(row: FlagRow) -> SealedFlag:
    return SealedFlag(row.key_id, bytes(row.nonce), bytes(row.ciphertext), bytes(row.digest))


def _to_row(i: Instance) -> InstanceRow:
    return InstanceRow(
        id=i.id,
        challenge_id=i.challenge_id,
        owner=i.owner,
        state=i.state.value,
        generation=i.generation,
        created_at=i.created_at,
        state_changed_at=i.created_at,
        expires_at=i.expires_at,
        started_at=i.started_at,
        ended_at=i.ended_at,
        extensions_used=i.extensions_used,
        max_extensions=i.max_extensions,
        last_extended_at=i.last_extended_at,
        reason=i.reason,
        pool_key=i.pool_key,
        public_host=i.public_host,
    )


def _route(r: Any) -> Route:
    return Route(r.slug, r.container, r.container_port, Expose(r.mode), r.target)


def _from_row(r: Any, allocations: tuple[Allocation, ...], routes: tuple[Route, ...] = ()) -> Instance:
    return Instance(
        id=r.id,
        challenge_id=r.challenge_id,
        owner=r.owner,
        state=State(r.state),
        generation=r.generation,
        created_at=r.created_at,
        expires_at=r.expires_at,
        extensions_used=r.extensions_used,
        max_extensions=r.max_extensions,
        last_extended_at=r.last_extended_at,
        started_at=r.started_at,
        ended_at=r.ended_at,
        reason=r.reason,
        allocations=allocations,
        routes=routes,
        claimed_by=r.claimed_by,
        pool_key=r.pool_key,
        public_host=r.public_host,
    )
