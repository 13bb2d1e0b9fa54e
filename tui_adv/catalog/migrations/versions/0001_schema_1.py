"""Schema version 1: the catalog as adv-tui wrote it before sweep readings and run ownership.

A catalog made before Alembic is recognised by its ``schema_info`` version (or, older still, by a
``runs`` table without it) and stamped with the matching revision instead of running this one.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("schema_info", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("version", sa.Integer(), nullable=False))
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("experiment", sa.String(), nullable=False),
        sa.Column("profile", sa.String(), nullable=True),
        sa.Column("claims", sa.String(), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(), nullable=True),
        sa.Column("device", sa.String(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("versions_json", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("checkpoint_path", sa.String(), nullable=True),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("phase", sa.String(), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("clean_error", sa.Float(), nullable=True),
        sa.Column("fgsm_error", sa.Float(), nullable=True),
        sa.Column("summary_json", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('queued','running','completed','failed','cancelled','interrupted')", name="ck_run_status"),
    )
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_created", "runs", ["created_at"])
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("run_id", "key", "step", name="uq_metric"),
    )
    op.create_index("ix_metrics_run_id_id", "metrics", ["run_id", "id"])
    op.create_table(
        "sweep_points",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("attack", sa.String(), nullable=False),
        sa.Column("labels", sa.String(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("error", sa.Float(), nullable=False),
        sa.Column("mean_confidence", sa.Float(), nullable=False),
        sa.Column("mean_confidence_wrong", sa.Float(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("n_wrong", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("run_id", "attack", "labels", "epsilon", name="uq_sweep_point"),
    )
    op.create_index("ix_sweep_run_id_id", "sweep_points", ["run_id", "id"])
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("clean", sa.LargeBinary(), nullable=False),
        sa.Column("sign", sa.LargeBinary(), nullable=False),
        sa.Column("adversarial", sa.LargeBinary(), nullable=False),
        sa.Column("clean_pred", sa.Integer(), nullable=False),
        sa.Column("clean_conf", sa.Float(), nullable=False),
        sa.Column("adv_pred", sa.Integer(), nullable=False),
        sa.Column("adv_conf", sa.Float(), nullable=False),
        sa.UniqueConstraint("run_id", "idx", "epsilon", name="uq_sample"),
    )
    op.create_index("ix_samples_run", "samples", ["run_id"])
    op.create_table(
        "logs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_logs_run_id_id", "logs", ["run_id", "id"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("run_id", "kind", name="uq_artifact"),
    )
    op.execute("INSERT INTO schema_info (id, version) VALUES (1, 1)")


def downgrade() -> None:
    for table in ("artifacts", "logs", "samples", "sweep_points", "metrics", "runs", "schema_info"):
        op.drop_table(table)
