"""Proxied exposures: one route (random slug) per http/tcp-tls port of an instance.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routes",
        sa.Column("slug", sa.String(32), nullable=False),
        sa.Column("instance_id", sa.String(32), nullable=False),
        sa.Column("container", sa.String(31), nullable=False),
        sa.Column("container_port", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("target", sa.String(80), nullable=True),
        sa.ForeignKeyConstraint(["instance_id"], ["instances.id"], name="fk_routes_instance_id_instances"),
        sa.PrimaryKeyConstraint("slug", name="pk_routes"),
    )
    op.create_index("ix_routes_instance_id", "routes", ["instance_id"])


def downgrade() -> None:
    op.drop_index("ix_routes_instance_id", table_name="routes")
    op.drop_table("routes")
