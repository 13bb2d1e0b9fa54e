"""Schema version 5: ``paused_s`` on the run row, the seconds a resumed run spent stopped (cancelled,
interrupted or failed) before it was resumed, so its duration counts only the time it ran.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    cols = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("runs")}
    if "paused_s" not in cols:
        op.add_column("runs", sa.Column("paused_s", sa.Float(), nullable=True))
    op.execute("UPDATE schema_info SET version = 5 WHERE id = 1")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("paused_s")
    op.execute("UPDATE schema_info SET version = 4 WHERE id = 1")
