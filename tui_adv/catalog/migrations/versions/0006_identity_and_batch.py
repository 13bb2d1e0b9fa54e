"""Schema version 6: the run row says which experiment it is and where in its epoch it stands.

- ``identity`` (indexed) and ``identity_rule``: the key of the experiment its config describes
  (``tui_adv.config.identity``) and the rule that computed it, so finding the newest completed run of
  an experiment is one query. Left NULL here: the store computes them (a migration does not import the
  config model, which changes after it), the first time it looks a run up.
- ``batch`` and ``batches``: the batch position of the epoch under way, stored as such rather than
  decoded from ``progress``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    cols = {c["name"] for c in sa.inspect(bind).get_columns("runs")}
    if "identity" not in cols:
        op.add_column("runs", sa.Column("identity", sa.String(32), nullable=True))
    if "identity_rule" not in cols:
        op.add_column("runs", sa.Column("identity_rule", sa.String(12), nullable=True))
    for name in ("batch", "batches"):
        if name not in cols:
            op.add_column("runs", sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    if "ix_runs_identity" not in {i["name"] for i in sa.inspect(bind).get_indexes("runs")}:
        op.create_index("ix_runs_identity", "runs", ["identity"])
    op.execute("UPDATE schema_info SET version = 6 WHERE id = 1")


def downgrade() -> None:
    op.drop_index("ix_runs_identity", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        for name in ("batches", "batch", "identity_rule", "identity"):
            batch.drop_column(name)
    op.execute("UPDATE schema_info SET version = 5 WHERE id = 1")
