"""Alembic migrations build exactly the schema the tables declare, on SQLite and PostgreSQL,
and the live-instance invariant is held by the database itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from instancer.store import migrate
from instancer.store.sql import make_engine
from instancer.store.tables import Base


def test_migrations_match_the_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    migrate.upgrade(engine)  # idempotent: a second start changes nothing
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_the_database_refuses_a_second_live_instance_and_a_shared_port(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    row = (
        "INSERT INTO instances (id, challenge_id, owner, state, generation, created_at,"
        " state_changed_at, expires_at, extensions_used, max_extensions, spec)"
        " VALUES (:id, 'c', 'o', :state, 1, :t, :t, :t, 0, 0, '{}')"
    )
    with engine.begin() as conn:
        conn.execute(text(row), {"id": "a" * 32, "state": "running", "t": now})
        conn.execute(text(row), {"id": "b" * 32, "state": "stopped", "t": now})  # ended ones may repeat
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(row), {"id": "c" * 32, "state": "starting", "t": now})
    alloc = "INSERT INTO allocations VALUES (40000, :id, 'main', 80, 'http')"
    with engine.begin() as conn:
        conn.execute(text(alloc), {"id": "a" * 32})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(alloc), {"id": "b" * 32})
    engine.dispose()


def test_0006_fills_after_solve_seconds_from_the_stored_specs(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0005")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        for challenge_id, lifetime in (("solo", {"after_solve_seconds": 30}), ("plain", {})):
            conn.execute(
                text("INSERT INTO challenges (id, spec, created_at, updated_at) VALUES (:i, :s, :t, :t)"),
                {"i": challenge_id, "s": json.dumps({"id": challenge_id, "lifetime": lifetime}), "t": now},
            )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, after_solve_seconds FROM challenges")).all())
    engine.dispose()
    assert rows == {"solo": 30, "plain": None}
