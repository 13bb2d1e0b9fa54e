"""Schema version 4: a cancel request stored on the run row (``cancel_requested_at``), which the
runner polls, so a run can be cancelled from any host that reaches the catalog; ``pid_start`` becomes
a BIGINT where the server distinguishes (clock ticks since boot pass 2^31 after months of uptime).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    cols = {c["name"]: c for c in sa.inspect(bind).get_columns("runs")}
    if "cancel_requested_at" not in cols:
        op.add_column("runs", sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True))
    if bind.dialect.name == "postgresql" and not isinstance(cols["pid_start"]["type"], sa.BigInteger):
        op.alter_column("runs", "pid_start", type_=sa.BigInteger(), existing_nullable=True)
    op.execute("UPDATE schema_info SET version = 4 WHERE id = 1")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("cancel_requested_at")
    op.execute("UPDATE schema_info SET version = 3 WHERE id = 1")
