"""An index for the plugin's status poll: one owner's instances of one challenge.

Without it SQLite answers `owner = ? AND challenge_id = ?` through the challenge index,
reading every instance the challenge ever had (ended ones included) on each poll.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_instances_owner_challenge_id_state", "instances", ["owner", "challenge_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_instances_owner_challenge_id_state", table_name="instances")
