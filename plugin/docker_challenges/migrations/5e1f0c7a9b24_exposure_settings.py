"""Exposure and hardening settings of a docker challenge (docs/exposure.md)

Revision ID: 5e1f0c7a9b24
Revises: 7c1e5a9b2d40
Create Date: 2026-12-07

Adds the nullable columns route_owner_only, connect, allow_internet, cap_add and read_only
to docker_challenge (NULL: off / the application's defaults). Chained after the
warm-pool revision (7c1e5a9b2d40). Idempotent: a column that already exists is
left alone.
"""

import sqlalchemy as sa

from CTFd.plugins.migrations import get_all_tables, get_columns_for_table

revision = "5e1f0c7a9b24"
down_revision = "7c1e5a9b2d40"
branch_labels = None
depends_on = None

TABLE = "docker_challenge"
COLUMNS = (
    ("route_owner_only", sa.Boolean()),
    ("connect", sa.String(length=16)),
    ("allow_internet", sa.Boolean()),
    ("cap_add", sa.String(length=255)),
    ("read_only", sa.Boolean()),
)


def upgrade(op=None):
    if TABLE not in get_all_tables(op):
        return
    have = set(get_columns_for_table(op, TABLE, names_only=True))
    for name, kind in COLUMNS:
        if name not in have:
            op.add_column(TABLE, sa.Column(name, kind, nullable=True))


def downgrade(op=None):
    if TABLE not in get_all_tables(op):
        return
    have = set(get_columns_for_table(op, TABLE, names_only=True))
    for name, _ in reversed(COLUMNS):
        if name in have:
            op.drop_column(TABLE, name)
