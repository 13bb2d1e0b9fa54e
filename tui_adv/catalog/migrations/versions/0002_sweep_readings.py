"""Schema version 2: sweep points record the attack's reading (gradient, clip, cost, mask draw), and
the unique key includes it. Every existing point becomes the default reading (eval-mode gradient,
clipped, training cost, draw 0); ids are kept, so a reader's incremental reads go on.

On SQLite the table is rebuilt through a copy (it cannot alter constraints); elsewhere it is altered.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

V1_KEY = ["run_id", "attack", "labels", "epsilon"]
V2_KEY = ["run_id", "attack", "labels", "gradient", "clip", "cost", "mask", "epsilon"]


def upgrade() -> None:
    insp = sa.inspect(op.get_bind())
    if "sweep_points" in insp.get_table_names() and "gradient" not in {c["name"] for c in insp.get_columns("sweep_points")}:
        with op.batch_alter_table("sweep_points", recreate="auto") as batch:
            batch.add_column(sa.Column("gradient", sa.String(), nullable=False, server_default="eval"))
            batch.add_column(sa.Column("clip", sa.Boolean(), nullable=False, server_default="1"))
            batch.add_column(sa.Column("cost", sa.String(), nullable=False, server_default="train"))
            batch.add_column(sa.Column("mask", sa.Integer(), nullable=False, server_default="0"))
            batch.drop_constraint("uq_sweep_point", type_="unique")
            batch.create_unique_constraint("uq_sweep_point", V2_KEY)
    op.execute("UPDATE schema_info SET version = 2 WHERE id = 1")


def downgrade() -> None:
    # points of a non-default reading have no place in a version-1 table
    op.execute("DELETE FROM sweep_points WHERE gradient <> 'eval' OR cost <> 'train' OR mask <> 0 OR clip = " + ("false" if op.get_bind().dialect.name == "postgresql" else "0"))
    with op.batch_alter_table("sweep_points", recreate="auto") as batch:
        batch.drop_constraint("uq_sweep_point", type_="unique")
        for name in ("mask", "cost", "clip", "gradient"):
            batch.drop_column(name)
        batch.create_unique_constraint("uq_sweep_point", V1_KEY)
    op.execute("UPDATE schema_info SET version = 1 WHERE id = 1")
