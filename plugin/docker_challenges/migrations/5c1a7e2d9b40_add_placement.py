"""Add docker_challenge.placement: swarm placement constraints per challenge

Revision ID: 5c1a7e2d9b40
Revises: 5e1f0c7a9b24
Create Date: 2026-12-07

The swarm backend reads it (src/placement.h: e.g. "node.labels.zone==a"); other backends
ignore it. NULL: no constraint of the challenge's own. Idempotent: a column that is already
there (a fresh table from a models.DockerChallenge create_all) is left alone.
"""

import sqlalchemy as sa

from CTFd.plugins.migrations import get_all_tables, get_columns_for_table

revision = "5c1a7e2d9b40"
down_revision = "5e1f0c7a9b24"
branch_labels = None
depends_on = None

TABLE = "docker_challenge"


def upgrade(op=None):
    if TABLE not in get_all_tables(op):
        return
    if "placement" in get_columns_for_table(op, TABLE, names_only=True):
        return
    op.add_column(TABLE, sa.Column("placement", sa.String(length=255), nullable=True))


def downgrade(op=None):
    if TABLE in get_all_tables(op) and "placement" in get_columns_for_table(op, TABLE, names_only=True):
        op.drop_column(TABLE, "placement")
