"""The host players reach an instance's ports at, when the engine chose it (a swarm node).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("instances", sa.Column("public_host", sa.String(253), nullable=True))


def downgrade() -> None:
    op.drop_column("instances", "public_host")
