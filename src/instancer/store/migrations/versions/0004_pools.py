"""Warm pools: the spec key of an unclaimed pool instance (its state `pooled` needs no schema).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("instances", sa.Column("pool_key", sa.String(64), nullable=True))


def downgrade() -> None:
    # batch: older SQLite cannot drop a column in place.
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("pool_key")
