"""Catalog tables (SQLModel).

Schema evolution: ``SchemaInfo`` holds one row with the schema version. The store creates missing
tables on open and runs the migrations in ``store.MIGRATIONS`` for every version between the stored one
and :data:`SCHEMA_VERSION`; a catalog written by a newer adv-tui is refused rather than misread.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import PrivateAttr
from sqlalchemy import CheckConstraint, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 3

STATUSES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
RESUMABLE = ("interrupted", "cancelled", "failed")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SchemaInfo(SQLModel, table=True):
    __tablename__ = "schema_info"
    id: int = Field(default=1, primary_key=True)
    version: int


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("status IN ('queued','running','completed','failed','cancelled','interrupted')", name="ck_run_status"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_created", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str
    experiment: str
    profile: str | None = None
    claims: str = ""  # comma-separated claim ids, e.g. "P06,P09"
    config_json: str = Field(sa_column=Column(Text, nullable=False))
    status: str = "queued"
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    pid: int | None = None
    pid_start: int | None = None  # the process's start time (clock ticks since boot): a reused pid is not the run
    host: str | None = None
    claim_token: str | None = None  # who owns the row: set by the process that created or resumed it
    device: str | None = None
    seed: int | None = None
    versions_json: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    traceback: str | None = Field(default=None, sa_column=Column(Text))
    checkpoint_path: str | None = None
    parent_id: int | None = Field(default=None, foreign_key="runs.id")
    # live progress, kept on the row so a list view needs no joins
    phase: str | None = None  # "train" | "sweep" | None
    epoch: int = 0
    epochs: int = 0
    progress: float = 0.0  # 0..1 over the whole run
    clean_error: float | None = None
    fgsm_error: float | None = None  # at ε = .25 when swept (else the largest ε ≤ .25 swept)
    summary_json: str | None = Field(default=None, sa_column=Column(Text))
    # what was wrong with the stored row when it was read (never stored; see Store._sanitize)
    _damage: list[str] | None = PrivateAttr(default=None)


def damage_of(run: Run) -> list[str]:
    """Why a run row read from the catalog is damaged (empty for a sound row)."""
    try:
        return list(run._damage or [])
    except (AttributeError, TypeError):  # an ORM-loaded row has no private state until one is set
        return []


class Metric(SQLModel, table=True):
    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("run_id", "key", "step", name="uq_metric"), Index("ix_metrics_run_id_id", "run_id", "id"))

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    key: str
    step: int
    value: float
    ts: datetime = Field(default_factory=utcnow)


class SweepPointRow(SQLModel, table=True):
    __tablename__ = "sweep_points"
    __table_args__ = (
        UniqueConstraint("run_id", "attack", "labels", "gradient", "clip", "cost", "mask", "epsilon", name="uq_sweep_point"),
        Index("ix_sweep_run_id_id", "run_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    attack: str = "fgsm"
    labels: str = "true"
    # the attack's reading of what the paper leaves unstated (schema version 2; see core/attacks.py):
    gradient: str = Field(default="eval", sa_column_kwargs={"server_default": "eval"})  # eval | dropout
    clip: bool = Field(default=True, sa_column_kwargs={"server_default": "1"})  # clamped to [0, 1]
    cost: str = Field(default="train", sa_column_kwargs={"server_default": "train"})  # train | true_class
    mask: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # dropout mask draw (0 for eval)
    epsilon: float
    accuracy: float
    error: float
    mean_confidence: float
    mean_confidence_wrong: float | None = None
    n: int
    n_wrong: int
    ts: datetime = Field(default_factory=utcnow)


VARIANT_FIELDS = ("gradient", "clip", "cost", "mask")


def variant_label(gradient: str = "eval", clip: bool = True, cost: str = "train", mask: int | None = None) -> str:
    """A short name for a sweep's attack reading: "" for the default (eval-mode gradient, clipped, training
    cost), else e.g. "dropout gradient #1, unclipped"."""
    parts = []
    if gradient != "eval":
        parts.append(f"{gradient} gradient" + (f" #{mask}" if mask is not None else ""))
    if not clip:
        parts.append("unclipped")
    if cost != "train":
        parts.append(f"{cost.replace('_', '-')} cost")
    return ", ".join(parts)


class Sample(SQLModel, table=True):
    """A stored perturbation view: 28×28 images as 784 bytes (uint8 pixels; sign stored as 0/1/2)."""

    __tablename__ = "samples"
    __table_args__ = (UniqueConstraint("run_id", "idx", "epsilon", name="uq_sample"), Index("ix_samples_run", "run_id"))

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    idx: int
    epsilon: float
    label: int
    clean: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sign: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    adversarial: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    clean_pred: int
    clean_conf: float
    adv_pred: int
    adv_conf: float


class LogLine(SQLModel, table=True):
    __tablename__ = "logs"
    __table_args__ = (Index("ix_logs_run_id_id", "run_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    ts: datetime = Field(default_factory=utcnow)
    level: str = "info"
    message: str = Field(sa_column=Column(Text, nullable=False))


class Artifact(SQLModel, table=True):
    """Anything else a run measures, as JSON (e.g. the P20 logit curve, P21 weight images)."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "kind", name="uq_artifact"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    kind: str
    data_json: str = Field(sa_column=Column(Text, nullable=False))
    ts: datetime = Field(default_factory=utcnow)
