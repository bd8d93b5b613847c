"""The host players reach an instance's ports at, when the engine chose it (a swarm node).

Revision ID: 0004
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("instances", sa.Column("public_host", sa.String(253), nullable=True))


def downgrade() -> None:
    op.drop_column("instances", "public_host")
