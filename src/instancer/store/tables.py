"""SQLAlchemy 2 table definitions. Migrations in `migrations/versions` must match them
(a test compares the two)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

LIVE_SQL = "state IN ('starting', 'running')"


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class ChallengeRow(Base):
    __tablename__ = "challenges"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    spec: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: the spec's lifetime.after_solve_seconds, for the flag check's one statement
    after_solve_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)


class InstanceRow(Base):
    __tablename__ = "instances"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    challenge_id: Mapped[str] = mapped_column(String(63))
    owner: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    generation: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    state_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    extensions_used: Mapped[int] = mapped_column(Integer)
    max_extensions: Mapped[int] = mapped_column(Integer)
    last_extended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    #: the challenge spec this instance was started from (reverts reuse it, whatever the PUTs since)
    spec: Mapped[str] = mapped_column(Text)
    #: the replica that recorded the intent now under way (starting/stopping); if its
    #: heartbeat stops, another replica finishes the work
    claimed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: set while the instance sits unclaimed in a warm pool: `ChallengeSpec.pool_key()` of its spec
    pool_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: where players reach its host ports, when the engine chose it (the swarm node running
    #: it); NULL: the deployment's INSTANCER_PUBLIC_HOST
    public_host: Mapped[str | None] = mapped_column(String(253), nullable=True)

    __table_args__ = (
        # The invariant "one live instance per (challenge, owner)", held by the database.
        Index(
            "uq_instances_live",
            "challenge_id",
            "owner",
            unique=True,
            sqlite_where=text(LIVE_SQL),
            postgresql_where=text(LIVE_SQL),
        ),
        Index("ix_instances_owner_state", "owner", "state"),
        # The plugin's status poll: an owner's instances of one challenge (migration 0003).
        Index("ix_instances_owner_challenge_id_state", "owner", "challenge_id", "state"),
        Index("ix_instances_state_expires_at", "state", "expires_at"),
        Index("ix_instances_challenge_id", "challenge_id"),
    )


class AllocationRow(Base):
    """A host port held by an instance; the primary key makes double allocation impossible."""

    __tablename__ = "allocations"
    host_port: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    instance_id: Mapped[str] = mapped_column(String(32), ForeignKey("instances.id"), index=True)
    container: Mapped[str] = mapped_column(String(31))
    container_port: Mapped[int] = mapped_column(Integer)
    protocol: Mapped[str] = mapped_column(String(8))


class RouteRow(Base):
    """A proxied port of an instance; the slug (primary key) is what the proxy routes by."""

    __tablename__ = "routes"
    slug: Mapped[str] = mapped_column(String(32), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(32), ForeignKey("instances.id"), index=True)
    container: Mapped[str] = mapped_column(String(31))
    container_port: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(8))
    #: `address:port` the proxy forwards to; known once the containers run
    target: Mapped[str | None] = mapped_column(String(80), nullable=True)


class OwnerRow(Base):
    __tablename__ = "owners"
    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_start_at: Mapped[datetime] = mapped_column(UtcDateTime)


class FlagRow(Base):
    """An instance's flag, encrypted; kept after the instance ends (for late submissions and
    sharing detection) until its challenge is deleted."""

    __tablename__ = "flags"
    instance_id: Mapped[str] = mapped_column(String(32), ForeignKey("instances.id"), primary_key=True)
    challenge_id: Mapped[str] = mapped_column(String(63))
    owner: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary(512))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (Index("ix_flags_challenge_id_digest", "challenge_id", "digest"),)


class FlagShareRow(Base):
    """A submission of one owner's flag by another owner: evidence for a person to judge."""

    __tablename__ = "flag_shares"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    challenge_id: Mapped[str] = mapped_column(String(63), index=True)
    submitter: Mapped[str] = mapped_column(String(128), index=True)
    flag_owner: Mapped[str] = mapped_column(String(128), index=True)
    instance_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditRow(Base):
    """Who did what sensitive thing (an admin revealing a flag), and when."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))


class ReplicaRow(Base):
    """One running service process, and when it last proved it is alive."""

    __tablename__ = "replicas"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LockRow(Base):
    """Rows locked with SELECT ... FOR UPDATE to serialise decisions across replicas."""

    __tablename__ = "locks"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
