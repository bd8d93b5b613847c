"""A challenge's `lifetime.after_solve_seconds` beside its spec, so that a flag check reads
it in the statement that finds the flag instead of parsing the spec.

Revision ID: 0006
Revises: 0005
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("challenges", sa.Column("after_solve_seconds", sa.Integer, nullable=True))
    challenges = sa.table(
        "challenges", sa.column("id", sa.String), sa.column("spec", sa.Text), sa.column("after_solve_seconds")
    )
    bind = op.get_bind()
    for challenge_id, spec in bind.execute(sa.select(challenges.c.id, challenges.c.spec)).all():
        value = json.loads(spec).get("lifetime", {}).get("after_solve_seconds")
        if value is not None:
            bind.execute(
                challenges.update().where(challenges.c.id == challenge_id).values(after_solve_seconds=value)
            )


def downgrade() -> None:
    op.drop_column("challenges", "after_solve_seconds")
