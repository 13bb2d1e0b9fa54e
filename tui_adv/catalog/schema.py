"""Catalog tables (SQLModel).

Schema evolution goes through Alembic revisions (``catalog/migrations``; see :mod:`.migrate`).
``SchemaInfo`` keeps one row with the schema version, which is the number of the head revision: a
catalog written by a newer adv-tui is refused rather than misread. A change to these tables needs a
new revision, :data:`SCHEMA_VERSION` bumped and ``migrate.REVISIONS`` extended
(tests/test_migrations.py checks that the revisions build exactly these tables).
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import PrivateAttr
from sqlalchemy import BigInteger, CheckConstraint, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import AutoString, Field, SQLModel

from ..choices import ACTIVE, RESUMABLE, STATUSES, RunStatus  # noqa: F401 - re-exported: the catalog's vocabulary

SCHEMA_VERSION = 6


class StatusText(TypeDecorator):
    """The ``runs.status`` column: the same VARCHAR as before, but a :class:`RunStatus` is bound as its
    text (``"running"``) in writes and in ``WHERE status IN (…)`` alike. Without it a driver with enum
    adaptation (psycopg dumps an ``Enum`` as its *name*, ``RUNNING``) would store the wrong word."""

    impl = AutoString
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: ANN001, ANN201
        return None if value is None else str(value)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SchemaInfo(SQLModel, table=True):
    __tablename__ = "schema_info"
    id: int = Field(default=1, primary_key=True)
    version: int


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("status IN (" + ",".join(f"'{s.value}'" for s in RunStatus) + ")", name="ck_run_status"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_created", "created_at"),
        Index("ix_runs_identity", "identity"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str
    experiment: str
    profile: str | None = None
    claims: str = ""  # comma-separated claim ids, e.g. "P06,P09"
    config_json: str = Field(sa_column=Column(Text, nullable=False))
    # the experiment ``config_json`` describes (``config.identity.identity_key``) and the rule that
    # computed it; ``Store`` sets both on create and recomputes rows of another rule (schema 6)
    identity: str | None = Field(default=None, max_length=32)
    identity_rule: str | None = Field(default=None, max_length=12)
    status: str = Field(default=RunStatus.QUEUED.value, sa_column=Column(StatusText, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    pid: int | None = None
    pid_start: int | None = Field(default=None, sa_type=BigInteger)  # the process's start time (clock ticks since boot): a reused pid is not the run
    host: str | None = None
    claim_token: str | None = None  # who owns the row: set by the process that created or resumed it
    device: str | None = None
    # set by `adv-tui runs cancel` / the dashboard on any host; the runner polls it and stops (schema 4)
    cancel_requested_at: datetime | None = None
    # seconds spent stopped between a stop and the resume that continued the run (schema 5)
    paused_s: float | None = None
    seed: int | None = None
    versions_json: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    traceback: str | None = Field(default=None, sa_column=Column(Text))
    checkpoint_path: str | None = None
    parent_id: int | None = Field(default=None, foreign_key="runs.id")
    # live progress, kept on the row so a list view needs no joins
    phase: str | None = None  # "train" | "sweep" | None
    epoch: int = 0  # epochs finished
    epochs: int = 0
    batch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # batches done of the epoch under way (schema 6)
    batches: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # batches per epoch (0: not training)
    progress: float = 0.0  # 0..1 over the whole run (lifecycle.TRAIN_SHARE: how the phases share it)
    clean_error: float | None = None
    fgsm_error: float | None = None  # at ε = .25 when swept (else the largest ε ≤ .25 swept)
    summary_json: str | None = Field(default=None, sa_column=Column(Text))
    # what was wrong with the stored row when it was read (never stored; see Store._sanitize)
    _damage: list[str] | None = PrivateAttr(default=None)

    # the typed view of the text columns: every reader parses them here, never by hand
    def config(self) -> dict:
        """``config_json`` as a dict ({} when empty or damaged; ``Store`` already flagged a damaged one)."""
        return json_object(self.config_json)

    def summary(self) -> dict:
        """``summary_json`` (the run's final numbers) as a dict ({} while it runs or when damaged)."""
        return json_object(self.summary_json)

    def active_seconds(self, now: datetime | None = None) -> float | None:
        """How long the run has run: start to finish (or ``now`` while it runs), less the time it sat
        stopped before a resume (``paused_s``). None before it started."""
        start = as_utc(self.started_at)
        if start is None:
            return None
        end = as_utc(self.finished_at) or now or utcnow()
        return max(0.0, (end - start).total_seconds() - float(self.paused_s or 0.0))

    def claim_ids(self) -> list[str]:
        """The claims the run serves, e.g. ``["P06", "P09"]`` (stored comma-joined, see :func:`claims_text`)."""
        return [c for c in (self.claims or "").split(",") if c]


def as_utc(t: datetime | None) -> datetime | None:
    """A stored time as UTC-aware (SQLite hands back naive datetimes of the UTC times we wrote)."""
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=timezone.utc)


def json_object(text: str | None) -> dict:
    """A stored JSON column as a dict: {} when empty, not JSON, or not an object."""
    import json

    try:
        value = json.loads(text) if text else {}
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def claims_text(claims: list[str] | tuple[str, ...]) -> str:
    """How ``runs.claims`` stores a list of claim ids (read back with :meth:`Run.claim_ids`)."""
    return ",".join(claims)


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
