"""Add docker_challenge.warm_pool: how many containers the app keeps started ahead

Revision ID: 7c1e5a9b2d40
Revises: 30bfc2e338c8
Create Date: 2026-12-07

NULL or 0: no warm pool (the app starts each container when a player asks). The app's reaper
reads the column (docs/schema.md, docs/architecture.md "Warm pools"). Idempotent: a column
that already exists is left alone (a restore runs the revisions from the base, and the first
revision creates the table from the model's current columns only on SQLite).
"""

import sqlalchemy as sa

from CTFd.plugins.migrations import get_all_tables, get_columns_for_table

revision = "7c1e5a9b2d40"
down_revision = "30bfc2e338c8"
branch_labels = None
depends_on = None

TABLE = "docker_challenge"


def upgrade(op=None):
    if TABLE not in get_all_tables(op):
        return
    if "warm_pool" in get_columns_for_table(op, TABLE, names_only=True):
        return
    op.add_column(TABLE, sa.Column("warm_pool", sa.Integer(), nullable=True))


def downgrade(op=None):
    if TABLE in get_all_tables(op) and "warm_pool" in get_columns_for_table(
        op, TABLE, names_only=True
    ):
        op.drop_column(TABLE, "warm_pool")
