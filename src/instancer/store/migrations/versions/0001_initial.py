"""Initial schema: challenges, instances, port allocations, owners, flags, flag shares, audit, locks.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from instancer.store.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LIVE_SQL = "state IN ('starting', 'running')"


def upgrade() -> None:
    op.create_table(
        "challenges",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_challenges"),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("challenge_id", sa.String(63), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("state_changed_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("extensions_used", sa.Integer(), nullable=False),
        sa.Column("max_extensions", sa.Integer(), nullable=False),
        sa.Column("last_extended_at", UtcDateTime(), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("claimed_by", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
    )
    op.create_index(
        "uq_instances_live",
        "instances",
        ["challenge_id", "owner"],
        unique=True,
        sqlite_where=sa.text(LIVE_SQL),
        postgresql_where=sa.text(LIVE_SQL),
    )
    op.create_index("ix_instances_owner_state", "instances", ["owner", "state"])
    op.create_index("ix_instances_state_expires_at", "instances", ["state", "expires_at"])
    op.create_index("ix_instances_challenge_id", "instances", ["challenge_id"])
    op.create_table(
        "allocations",
        sa.Column("host_port", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("instance_id", sa.String(32), nullable=False),
        sa.Column("container", sa.String(31), nullable=False),
        sa.Column("container_port", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"], name="fk_allocations_instance_id_instances"
        ),
        sa.PrimaryKeyConstraint("host_port", name="pk_allocations"),
    )
    op.create_index("ix_allocations_instance_id", "allocations", ["instance_id"])
    op.create_table(
        "owners",
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("last_start_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("owner", name="pk_owners"),
    )
    op.create_table(
        "flags",
        sa.Column("instance_id", sa.String(32), nullable=False),
        sa.Column("challenge_id", sa.String(63), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("nonce", sa.LargeBinary(12), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(512), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("retired_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["instance_id"], ["instances.id"], name="fk_flags_instance_id_instances"),
        sa.PrimaryKeyConstraint("instance_id", name="pk_flags"),
    )
    op.create_index("ix_flags_challenge_id_digest", "flags", ["challenge_id", "digest"])
    op.create_index("ix_flags_key_id", "flags", ["key_id"])
    op.create_table(
        "flag_shares",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("challenge_id", sa.String(63), nullable=False),
        sa.Column("submitter", sa.String(128), nullable=False),
        sa.Column("flag_owner", sa.String(128), nullable=False),
        sa.Column("instance_id", sa.String(32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_flag_shares"),
    )
    for column in ("challenge_id", "submitter", "flag_owner"):
        op.create_index(f"ix_flag_shares_{column}", "flag_shares", [column])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_replicas"),
    )
    locks = op.create_table(
        "locks",
        sa.Column("name", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_locks"),
    )
    op.bulk_insert(locks, [{"name": "starts"}])


def downgrade() -> None:
    for table in (
        "locks",
        "replicas",
        "audit_log",
        "flag_shares",
        "flags",
        "owners",
        "allocations",
        "instances",
        "challenges",
    ):
        op.drop_table(table)
