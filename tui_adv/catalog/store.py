"""The catalog store: engine set-up, short write transactions with retries, incremental reads.

SQLite (the default, ``./runs.db``) runs in WAL mode with ``synchronous=NORMAL`` and a busy timeout, so
several runners and the dashboard can share one file. Any SQLAlchemy URL works through ``--db`` or
``$ADV_TUI_DB``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

from sqlalchemy import delete, event, func, inspect, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel, col, create_engine, select

from ..errors import NotFoundError, UserError
from .schema import ACTIVE, SCHEMA_VERSION, Artifact, LogLine, Metric, Run, Sample, SchemaInfo, SweepPointRow, utcnow

ENV_DB = "ADV_TUI_DB"
DEFAULT_DB = "runs.db"
BUSY_TIMEOUT_MS = 30_000
HEARTBEAT_STALE_S = 120.0

T = TypeVar("T")

def _migrate_sweep_variants(conn) -> None:  # noqa: ANN001 - a SQLAlchemy Connection
    """Version 2: sweep points record the attack's reading (gradient, clip, cost, mask draw), and the
    unique key includes it. Rebuilt through a copy (SQLite cannot alter a table's constraints); every
    existing point becomes the default reading (eval-mode gradient, clipped, training cost)."""
    if "gradient" in {c["name"] for c in inspect(conn).get_columns("sweep_points")}:
        return  # already there (a catalog stamped with a stale version): nothing to rebuild, nothing to lose
    cols = "id, run_id, attack, labels, epsilon, accuracy, error, mean_confidence, mean_confidence_wrong, n, n_wrong, ts"
    conn.exec_driver_sql("DROP TABLE IF EXISTS sweep_points_v1")
    conn.exec_driver_sql(f"CREATE TABLE sweep_points_v1 AS SELECT {cols} FROM sweep_points")
    conn.exec_driver_sql("DROP TABLE sweep_points")
    SweepPointRow.__table__.create(conn)
    conn.exec_driver_sql(f"INSERT INTO sweep_points ({cols}) SELECT {cols} FROM sweep_points_v1")
    conn.exec_driver_sql("DROP TABLE sweep_points_v1")
    if conn.dialect.name == "postgresql":  # explicit ids were inserted: move the sequence past them
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('sweep_points', 'id'), COALESCE(MAX(id), 1)) FROM sweep_points")


# version -> SQL statements or callables (taking a Connection) that bring a catalog from version-1 to it
MIGRATIONS: dict[int, list[str | Callable[[Any], None]]] = {2: [_migrate_sweep_variants]}


def resolve_db_url(db: str | None = None) -> str:
    """``--db`` > ``$ADV_TUI_DB`` > ``./runs.db``. A plain path means a SQLite file."""
    value = db or os.environ.get(ENV_DB) or DEFAULT_DB
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser()}"


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_path(url: str) -> Path | None:
    rest = url.split("///", 1)[1] if "///" in url else ""
    rest = rest.split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def _friendly(url: str, e: Exception) -> UserError:
    text = str(getattr(e, "orig", e)).strip()
    msg = text.splitlines()[0] if text else type(e).__name__
    where = _sqlite_path(url) or _redact(url)
    if "file is not a database" in msg or "malformed" in msg:
        return UserError(f"catalog {where} is corrupt or not a SQLite database ({msg}); move it aside or pass --db to use another")
    if "readonly" in msg or "unable to open" in msg:
        return UserError(f"cannot write the catalog {where} ({msg}); check the path and its permissions, or pass --db")
    return UserError(f"catalog {where}: {msg}")


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def combine_draws(per_draw: list[list[dict]]) -> list[dict]:
    """Points of several mask draws of one reading → their mean at each ε (over the draws that have that
    ε), with ``*_spread`` = half the range of error and accuracy. One draw is returned as it is."""
    if len(per_draw) == 1:
        return per_draw[0]
    by_eps: dict[float, list[dict]] = {}
    for pts in per_draw:
        for p in pts:
            by_eps.setdefault(round(float(p["epsilon"]), 9), []).append(p)
    out = []
    for eps, ps in sorted(by_eps.items()):
        def mean(k: str) -> float | None:
            vals = [p[k] for p in ps if p.get(k) is not None]
            return sum(vals) / len(vals) if vals else None

        m = {k: mean(k) for k in ("accuracy", "error", "mean_confidence", "mean_confidence_wrong")}
        errs = [p["error"] for p in ps]
        accs = [p["accuracy"] for p in ps]
        out.append({"epsilon": ps[0]["epsilon"], **m, "n": ps[0]["n"], "draws": len(ps),
                    "error_spread": (max(errs) - min(errs)) / 2, "accuracy_spread": (max(accs) - min(accs)) / 2})
    return out


class Store:
    """All catalog access. Every write is its own short transaction, retried while the file is locked."""

    def __init__(self, url: str | None = None, *, create: bool = True):
        self.url = resolve_db_url(url)
        self.lock_retries = 0
        self.slowest_write_s = 0.0
        self.host = socket.gethostname()
        try:
            self.engine = self._make_engine()

            def ping() -> None:
                with self.engine.connect() as conn:  # the connect hook sets WAL, which needs the lock
                    conn.exec_driver_sql("SELECT 1")

            # several processes opening one (fresh) catalog at once can meet SQLITE_BUSY where SQLite does
            # not wait (switching to WAL, WAL recovery): the whole opening is retried like any write
            self._retry(ping)
            if create:
                self._retry(self._ensure_schema)
        except UserError:
            raise
        except (SQLAlchemyError, OSError) as e:
            raise _friendly(self.url, e) from None

    # ------------------------------------------------------------------------------------ set-up
    def _make_engine(self) -> Engine:
        if _is_sqlite(self.url):
            path = _sqlite_path(self.url)
            if path is not None and path.parent and not path.parent.exists():
                raise UserError(f"catalog directory {path.parent} does not exist; create it or pass another --db")
            engine = create_engine(self.url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn, _record):  # noqa: ANN001
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                if path is not None:
                    cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
                cur.execute("PRAGMA foreign_keys = ON")
                cur.close()

            return engine
        try:
            return create_engine(self.url, pool_pre_ping=True)
        except ImportError as e:
            scheme = self.url.split("://", 1)[0]
            raise UserError(
                f"cannot use database URL {_redact(self.url)}: its driver is not installed ({e}); "
                f"install the SQLAlchemy driver for {scheme} (e.g. pip install 'psycopg[binary]' for postgresql) or use a SQLite path"
            ) from None
        except (SQLAlchemyError, ValueError) as e:
            raise UserError(f"cannot use database URL {_redact(self.url)}: {e}") from None

    def _ensure_schema(self) -> None:
        insp = inspect(self.engine)
        existing = set(insp.get_table_names())
        stored: int | None = None
        if "schema_info" in existing:
            with Session(self.engine) as s:
                row = s.get(SchemaInfo, 1)
                stored = row.version if row else None
        if stored is not None and stored > SCHEMA_VERSION:
            raise UserError(
                f"catalog {self.url} has schema version {stored}, newer than this adv-tui understands ({SCHEMA_VERSION}); upgrade adv-tui"
            )
        if existing and "runs" in existing and stored is None:
            stored = 1  # written before the version table existed
        def _create_tables() -> None:
            # several processes may open a fresh catalog at once: one of them wins the CREATE TABLE race
            # and the others see "already exists"; a second pass (checkfirst) then finds every table
            for attempt in range(5):
                try:
                    SQLModel.metadata.create_all(self.engine)
                    return
                except OperationalError as e:
                    if "already exists" not in str(e).lower() or attempt == 4:
                        raise

        self._retry(_create_tables)
        if stored is not None and stored < SCHEMA_VERSION:
            with self.engine.begin() as conn:
                # read the version again inside the migrating transaction: another process opening the
                # same old catalog may have migrated it since (its commit makes this one retry or skip)
                row = conn.exec_driver_sql("SELECT version FROM schema_info WHERE id = 1").first()
                current = int(row[0]) if row else stored
                for v in range(current + 1, SCHEMA_VERSION + 1):
                    for stmt in MIGRATIONS.get(v, []):
                        stmt(conn) if callable(stmt) else conn.exec_driver_sql(stmt)
                if current < SCHEMA_VERSION:
                    if row:
                        conn.exec_driver_sql(f"UPDATE schema_info SET version = {SCHEMA_VERSION} WHERE id = 1")
                    else:
                        conn.exec_driver_sql(f"INSERT INTO schema_info (id, version) VALUES (1, {SCHEMA_VERSION})")

        def _stamp():
            with Session(self.engine) as s:
                row = s.get(SchemaInfo, 1)
                if row is None:
                    s.add(SchemaInfo(id=1, version=SCHEMA_VERSION))
                elif row.version != SCHEMA_VERSION:
                    row.version = SCHEMA_VERSION
                    s.add(row)
                else:
                    return
                try:
                    s.commit()
                except IntegrityError:  # another process opening the fresh catalog stamped it first
                    s.rollback()

        self._retry(_stamp)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------------------ plumbing
    def _retry(self, fn: Callable[[], T], attempts: int = 50) -> T:
        delay = 0.02
        for i in range(attempts):
            t0 = time.perf_counter()
            try:
                out = fn()
                self.slowest_write_s = max(self.slowest_write_s, time.perf_counter() - t0)
                return out
            except OperationalError as e:
                text_ = str(e).lower()
                if ("locked" in text_ or "busy" in text_) and i < attempts - 1:
                    self.lock_retries += 1
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                raise _friendly(self.url, e) from None
            except DatabaseError as e:
                raise _friendly(self.url, e) from None
        raise AssertionError("unreachable")

    def _write(self, fn: Callable[[Session], T]) -> T:
        def tx() -> T:
            with Session(self.engine, expire_on_commit=False) as s:
                out = fn(s)
                s.commit()
                return out

        return self._retry(tx)

    def _read(self, fn: Callable[[Session], T]) -> T:
        def tx() -> T:
            with Session(self.engine, expire_on_commit=False) as s:
                return fn(s)

        return self._retry(tx)

    # ------------------------------------------------------------------------------------ runs
    def create_run(self, **fields: Any) -> Run:
        run = Run(**fields)

        def add(s: Session) -> Run:
            s.add(run)
            s.flush()
            s.refresh(run)
            return run

        return self._write(add)

    def update_run(self, run_id: int, **fields: Any) -> Run:
        def upd(s: Session) -> Run:
            run = s.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"no run with id {run_id} in {self.url}")
            for k, v in fields.items():
                setattr(run, k, v)
            run.updated_at = utcnow()
            s.add(run)
            return run

        return self._write(upd)

    def get_run(self, run_id: int) -> Run:
        run = self._read(lambda s: s.get(Run, run_id))
        if run is None:
            raise NotFoundError(f"no run with id {run_id} in {self.url} (see `adv-tui runs list`)")
        return run

    def list_runs(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        status: Sequence[str] | None = None,
        text: str | None = None,
        ids: Sequence[int] | None = None,
        newest_first: bool = True,
    ) -> list[Run]:
        def q(s: Session) -> list[Run]:
            stmt = select(Run)
            if status:
                stmt = stmt.where(col(Run.status).in_(list(status)))
            if ids is not None:
                stmt = stmt.where(col(Run.id).in_(list(ids)))
            if text:
                like = f"%{text}%"
                stmt = stmt.where(or_(col(Run.name).like(like), col(Run.experiment).like(like), col(Run.claims).like(like)))
            stmt = stmt.order_by(col(Run.id).desc() if newest_first else col(Run.id))
            if offset:
                stmt = stmt.offset(offset)
            if limit is not None:
                stmt = stmt.limit(limit)
            return list(s.exec(stmt).all())

        return self._read(q)

    def count_runs(self) -> int:
        return self._read(lambda s: s.exec(select(func.count()).select_from(Run)).one())

    def runs_updated_since(self, since: datetime) -> list[Run]:
        return self._read(lambda s: list(s.exec(select(Run).where(col(Run.updated_at) > since)).all()))

    def heartbeat(self, run_id: int) -> None:
        def hb(s: Session) -> None:
            s.exec(update(Run).where(col(Run.id) == run_id).values(heartbeat_at=utcnow()))

        self._write(hb)

    def refresh_liveness(self) -> list[int]:
        """Mark runs whose process is gone (same host) or whose heartbeat is stale as ``interrupted``."""
        now = utcnow()
        active = self.list_runs(status=ACTIVE)
        dead: list[int] = []
        for r in active:
            stale = r.heartbeat_at is not None and (now - r.heartbeat_at) > timedelta(seconds=HEARTBEAT_STALE_S)
            if r.host == self.host and r.pid is not None:
                gone = not pid_alive(r.pid) or (stale and r.pid != os.getpid())
            else:
                gone = stale
            if gone:
                dead.append(int(r.id))
        for run_id in dead:
            def mark(s: Session, run_id: int = run_id) -> None:
                run = s.get(Run, run_id)
                if run is not None and run.status in ACTIVE:
                    run.status = "interrupted"
                    run.error = run.error or "the run's process is gone (killed, crashed or the machine restarted)"
                    run.finished_at = run.finished_at or run.heartbeat_at or now
                    run.updated_at = now
                    s.add(run)

            self._write(mark)
        return dead

    def delete_run(self, run_id: int) -> None:
        def rm(s: Session) -> None:
            for model in (Metric, SweepPointRow, Sample, LogLine, Artifact):
                s.exec(delete(model).where(model.run_id == run_id))
            s.exec(delete(Run).where(Run.id == run_id))

        self._write(rm)

    # ------------------------------------------------------------------------------------ metrics
    def add_metrics(self, run_id: int, rows: Iterable[tuple[str, int, float]]) -> None:
        rows = list(rows)
        if not rows:
            return

        def add(s: Session) -> None:
            keys = {(k, st) for k, st, _ in rows}
            # idempotent: a resumed run rewrites a step instead of duplicating it
            for k, st in keys:
                s.exec(delete(Metric).where(Metric.run_id == run_id, Metric.key == k, Metric.step == st))
            s.add_all([Metric(run_id=run_id, key=k, step=int(st), value=float(v)) for k, st, v in rows])

        self._write(add)

    def delete_metrics_after(
        self,
        run_id: int,
        step: int,
        keys_prefix: str = "",
        *,
        keys: Sequence[str] | None = None,
        exclude_keys: Sequence[str] | None = None,
    ) -> None:
        """Delete a run's metric rows with ``step > step`` (optionally only ``keys``, or all but
        ``exclude_keys``). A resume uses it to drop what was written after the checkpoint."""

        def rm(s: Session) -> None:
            stmt = delete(Metric).where(Metric.run_id == run_id, Metric.step > step)
            if keys_prefix:
                stmt = stmt.where(col(Metric.key).startswith(keys_prefix))
            if keys is not None:
                stmt = stmt.where(col(Metric.key).in_(list(keys)))
            if exclude_keys:
                stmt = stmt.where(col(Metric.key).not_in(list(exclude_keys)))
            s.exec(stmt)

        self._write(rm)

    def delete_sweeps(self, run_id: int) -> None:
        """Delete a run's sweep points and perturbation views (a resumed run redoes its sweep)."""

        def rm(s: Session) -> None:
            s.exec(delete(SweepPointRow).where(SweepPointRow.run_id == run_id))
            s.exec(delete(Sample).where(Sample.run_id == run_id))

        self._write(rm)

    def metrics(self, run_id: int, *, after_id: int = 0, keys: Sequence[str] | None = None) -> list[Metric]:
        def q(s: Session) -> list[Metric]:
            stmt = select(Metric).where(Metric.run_id == run_id, col(Metric.id) > after_id)
            if keys:
                stmt = stmt.where(col(Metric.key).in_(list(keys)))
            return list(s.exec(stmt.order_by(col(Metric.id))).all())

        return self._read(q)

    def latest_metrics(self, run_id: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in sorted(self.metrics(run_id), key=lambda m: (m.step, m.id)):
            out[m.key] = m.value
        return out

    # ------------------------------------------------------------------------------------ sweeps
    def add_sweep_points(
        self, run_id: int, attack: str, labels: str, points: Iterable[dict], *, gradient: str = "eval", clip: bool = True, cost: str = "train", mask: int = 0
    ) -> None:
        """Store points of one sweep, keyed by (attack, labels, gradient, clip, cost, mask draw, ε); a point
        written again replaces the old one (a resumed run redoes its sweep)."""
        pts = list(points)
        key = dict(attack=attack, labels=labels, gradient=gradient, clip=bool(clip), cost=cost, mask=int(mask))

        def add(s: Session) -> None:
            for p in pts:
                s.exec(delete(SweepPointRow).where(*(getattr(SweepPointRow, k) == v for k, v in key.items()), SweepPointRow.run_id == run_id,
                                                   SweepPointRow.epsilon == p["epsilon"]))
            s.add_all(
                [
                    SweepPointRow(
                        run_id=run_id,
                        **key,
                        **{k: p[k] for k in ("epsilon", "accuracy", "error", "mean_confidence", "mean_confidence_wrong", "n", "n_wrong")},
                    )
                    for p in pts
                ]
            )

        self._write(add)

    def sweep_points(self, run_id: int, *, after_id: int = 0) -> list[SweepPointRow]:
        return self._read(
            lambda s: list(
                s.exec(
                    select(SweepPointRow)
                    .where(SweepPointRow.run_id == run_id, col(SweepPointRow.id) > after_id)
                    .order_by(col(SweepPointRow.attack), col(SweepPointRow.labels), col(SweepPointRow.gradient), col(SweepPointRow.clip).desc(),
                              col(SweepPointRow.cost), col(SweepPointRow.mask), col(SweepPointRow.epsilon))
                ).all()
            )
        )

    def sweeps(self, run_id: int, *, draws: bool = False) -> list[dict]:
        """Sweeps of a run, one per (attack, labels, gradient, clip, cost), points sorted by ε.

        A dropout-gradient reading drawn with several masks is one sweep whose points are the mean over
        the draws, each with ``error_spread`` / ``accuracy_spread`` (half the range) and ``masks`` = the
        number of draws; ``draws=True`` adds each draw's own points under ``"draws"``."""
        groups: dict[tuple, dict[int, list[dict]]] = {}
        for p in self.sweep_points(run_id):
            groups.setdefault((p.attack, p.labels, p.gradient, bool(p.clip), p.cost), {}).setdefault(int(p.mask), []).append(
                {k: getattr(p, k) for k in ("epsilon", "accuracy", "error", "mean_confidence", "mean_confidence_wrong", "n")}
            )
        out = []
        # the default reading (true labels, eval-mode gradient, clipped, training cost) first
        order = sorted(groups, key=lambda k: (k[0], k[1] != "true", k[1], k[2] != "eval", k[2], not k[3], k[4] != "train", k[4]))
        for key in order:
            (attack, labels, gradient, clip, cost), by_mask = key, groups[key]
            per_draw = [sorted(pts, key=lambda d: d["epsilon"]) for _m, pts in sorted(by_mask.items())]
            entry = {"attack": attack, "labels": labels, "gradient": gradient, "clip": clip, "cost": cost, "masks": len(per_draw),
                     "points": combine_draws(per_draw)}
            if draws and len(per_draw) > 1:
                entry["draws"] = per_draw
            out.append(entry)
        return out

    # ------------------------------------------------------------------------------------ samples, logs, artifacts
    def add_samples(self, run_id: int, samples: Iterable[Sample]) -> None:
        rows = list(samples)

        def add(s: Session) -> None:
            for r in rows:
                r.run_id = run_id
                s.exec(delete(Sample).where(Sample.run_id == run_id, Sample.idx == r.idx, Sample.epsilon == r.epsilon))
            s.add_all(rows)

        self._write(add)

    def samples(self, run_id: int) -> list[Sample]:
        return self._read(
            lambda s: list(s.exec(select(Sample).where(Sample.run_id == run_id).order_by(col(Sample.epsilon), col(Sample.idx))).all())
        )

    def log(self, run_id: int, message: str, level: str = "info") -> None:
        self._write(lambda s: s.add(LogLine(run_id=run_id, message=message, level=level)))

    def logs(self, run_id: int, *, after_id: int = 0, limit: int | None = None) -> list[LogLine]:
        def q(s: Session) -> list[LogLine]:
            stmt = select(LogLine).where(LogLine.run_id == run_id, col(LogLine.id) > after_id).order_by(col(LogLine.id))
            if limit:
                stmt = stmt.limit(limit)
            return list(s.exec(stmt).all())

        return self._read(q)

    def set_artifact(self, run_id: int, kind: str, data: Any) -> None:
        payload = json.dumps(data)

        def put(s: Session) -> None:
            s.exec(delete(Artifact).where(Artifact.run_id == run_id, Artifact.kind == kind))
            s.add(Artifact(run_id=run_id, kind=kind, data_json=payload))

        self._write(put)

    def artifacts(self, run_id: int) -> dict[str, Any]:
        rows = self._read(lambda s: list(s.exec(select(Artifact).where(Artifact.run_id == run_id)).all()))
        return {a.kind: json.loads(a.data_json) for a in rows}

    def integrity_ok(self) -> bool:
        if not _is_sqlite(self.url):
            return True
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
