"""Schema version 3: who owns a run row (claim token) and which process it is (pid + its start time).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("runs")}
    if "pid_start" not in have:
        op.add_column("runs", sa.Column("pid_start", sa.BigInteger(), nullable=True))
    if "claim_token" not in have:
        op.add_column("runs", sa.Column("claim_token", sa.String(), nullable=True))
    op.execute("UPDATE schema_info SET version = 3 WHERE id = 1")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("claim_token")
        batch.drop_column("pid_start")
    op.execute("UPDATE schema_info SET version = 2 WHERE id = 1")
