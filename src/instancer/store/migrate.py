"""Apply Alembic migrations programmatically (used by `instancer db upgrade` and at start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`. Safe on every start and from several replicas at once:
    on PostgreSQL an advisory lock lets one replica migrate while the others wait."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(74110001)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
