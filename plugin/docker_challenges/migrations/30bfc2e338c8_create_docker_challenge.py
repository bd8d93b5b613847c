"""Create docker_challenge, the contract table the C application reads

Revision ID: 30bfc2e338c8
Revises:
Create Date: 2026-11-30

Run by CTFd's `CTFd.plugins.migrations.upgrade()` from the plugin's `load()` on MariaDB, MySQL
and PostgreSQL (on SQLite CTFd calls `create_all()` with models.DockerChallenge instead).
The columns are docs/schema.md's (and tests/fixtures/docker_challenge.sql's), in that order.
Idempotent: a table that already exists is left alone, so a restore (CTFd's import runs the
plugin's migrations from the base) and a second run are harmless.
"""

import sqlalchemy as sa

from CTFd.plugins.migrations import get_all_tables

revision = "30bfc2e338c8"
down_revision = None
branch_labels = None
depends_on = None

TABLE = "docker_challenge"


def upgrade(op=None):
    if TABLE in get_all_tables(op):
        return
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("image", sa.String(length=255), nullable=False),
        sa.Column("ports", sa.String(length=255), nullable=False),
        sa.Column("flag_template", sa.String(length=255), nullable=False),
        sa.Column("flag_env", sa.String(length=64), nullable=False, server_default="FLAG"),
        sa.Column("memory_mb", sa.Integer(), nullable=True),
        sa.Column("cpus", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("lifetime_seconds", sa.Integer(), nullable=True),
        sa.Column("max_renewals", sa.Integer(), nullable=True),
        sa.Column("backend", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(
            ["id"], ["challenges.id"], name="docker_challenge_ibfk_1", ondelete="CASCADE"
        ),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def downgrade(op=None):
    if TABLE in get_all_tables(op):
        op.drop_table(TABLE)
