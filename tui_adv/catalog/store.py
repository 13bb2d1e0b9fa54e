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
import types
import typing
import weakref
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

from sqlalchemy import delete, event, func, inspect, or_, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel, col, create_engine, select

from ..errors import NotFoundError, UserError
from ..safe import expand_user, printable, redact_url
from .schema import ACTIVE, RESUMABLE, SCHEMA_VERSION, STATUSES, Artifact, LogLine, Metric, Run, Sample, SchemaInfo, SweepPointRow, utcnow

ENV_DB = "ADV_TUI_DB"
DEFAULT_DB = "runs.db"
BUSY_TIMEOUT_MS = 30_000
HEARTBEAT_STALE_S = 120.0
WRITER_LOCK_WAIT_S = 300.0  # a run waits this long for a lock held by another process before it fails
READER_LOCK_WAIT_S = 10.0  # a command that only reads (runs list/show/export, the dashboard) waits this long

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


def _migrate_run_owner(conn) -> None:  # noqa: ANN001 - a SQLAlchemy Connection
    """Version 3: who owns a run row (claim token) and which process it is (pid + its start time)."""
    have = {c["name"] for c in inspect(conn).get_columns("runs")}
    for name, kind in (("pid_start", "BIGINT"), ("claim_token", "VARCHAR")):
        if name not in have:
            conn.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


# version -> SQL statements or callables (taking a Connection) that bring a catalog from version-1 to it
MIGRATIONS: dict[int, list[str | Callable[[Any], None]]] = {2: [_migrate_sweep_variants], 3: [_migrate_run_owner]}


class CatalogLocked(UserError):
    """Another process has held the catalog's write lock for longer than this process waits."""


class ClaimLost(UserError):
    """The run row is no longer this process's: another process resumed it, or it was marked interrupted."""

    exit_code = 1


def resolve_db_url(db: str | None = None) -> str:
    """``--db`` > ``$ADV_TUI_DB`` > ``./runs.db``. A plain path means a SQLite file."""
    value = db or os.environ.get(ENV_DB) or DEFAULT_DB
    if "://" in value:
        return value
    return f"sqlite:///{expand_user(value)}"


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_path(url: str) -> Path | None:
    rest = url.split("///", 1)[1] if "///" in url else ""
    rest = rest.split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def _friendly(url: str, e: Exception) -> UserError:
    text_ = str(getattr(e, "orig", e)).strip()
    msg = text_.splitlines()[0] if text_ else type(e).__name__
    where = _sqlite_path(url) or _redact(url)
    if "file is not a database" in msg or "malformed" in msg:
        return UserError(f"catalog {where} is corrupt or not a SQLite database ({msg}); move it aside or pass --db to use another")
    if "readonly" in msg or "unable to open" in msg:
        return UserError(f"cannot write the catalog {where} ({msg}); check the path and its permissions, or pass --db")
    return UserError(f"catalog {where}: {msg}")


def _redact(url: str) -> str:
    """The URL without its password, for every message that shows it."""
    return redact_url(url)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True
    return True


POINT_FIELDS = ("epsilon", "accuracy", "error", "mean_confidence", "mean_confidence_wrong", "n")  # of a sweep point, as read


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


_HAVE_PROC = os.path.exists("/proc/self/stat")


def process_start_time(pid: int | None) -> int | None:
    """When process ``pid`` started (field 22 of /proc/PID/stat: clock ticks since boot), or None when
    there is no such live process (a zombie counts as gone) or no /proc to ask."""
    if pid is None or not _HAVE_PROC:
        return None
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except (OSError, ValueError, OverflowError):
        return None
    # field 2 (the command name) is in parentheses and may itself hold spaces or ")"
    fields = raw[raw.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # fields[0] is field 3, the state
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def same_process(pid: int | None, start: int | None) -> bool:
    """Is the process a run row recorded (pid, and its start time when known) still the one running?

    A pid that now belongs to another process (its start time differs) or a zombie is not."""
    if pid is None or pid <= 0:
        return False
    if _HAVE_PROC:
        now = process_start_time(pid)
        return now is not None and (start is None or now == start)
    return pid_alive(pid)


# ------------------------------------------------------------------------------------------ damaged rows
def _field_kinds() -> dict[str, tuple[type, bool]]:
    """Run column → (python type, nullable), from the model's annotations."""
    out: dict[str, tuple[type, bool]] = {}
    hints = typing.get_type_hints(Run)
    for name in Run.model_fields:
        ann = hints.get(name)
        args = [a for a in typing.get_args(ann) if a is not type(None)] if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union else [ann]
        nullable = len(args) != len(typing.get_args(ann) or [ann]) or ann is None
        if len(args) == 1 and args[0] in (int, float, str, datetime):
            out[name] = (args[0], nullable)
    return out


_KINDS: dict[str, tuple[type, bool]] | None = None
_JSON_FIELDS = ("config_json", "summary_json", "versions_json")
_DEFAULTS = {int: 0, float: 0.0, str: ""}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _short(v: Any) -> str:
    return printable(repr(v), limit=40)


def _coerce(value: Any, kind: type) -> Any:
    """``value`` as ``kind``, or raise ValueError (SQLite stores whatever it was given)."""
    if kind is datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, str):
            dt = datetime.fromisoformat(value)
            return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
        raise ValueError("not a date")
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        raise ValueError("not text")
    if isinstance(value, bool):
        return kind(value)
    if kind is int:
        if isinstance(value, int) and -(2**63) <= value < 2**63:
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError("not an integer")
    if kind is float:
        if isinstance(value, (int, float)):
            return float(value)
        raise ValueError("not a number")
    return value


def sanitize_run(run: Run) -> Run:
    """Check every field of a run row read from the catalog; a field that is not what the schema says
    (text in a number column, an unparseable date, a JSON column that is not a JSON object) is replaced
    by an empty value and named in the row's damage list (:func:`~tui_adv.catalog.schema.damage_of`),
    so every reader can show the row as damaged instead of crashing on it."""
    global _KINDS
    if _KINDS is None:
        _KINDS = _field_kinds()
    damage: list[str] = []
    for name, (kind, nullable) in _KINDS.items():
        value = getattr(run, name, None)
        # what a damaged field reads as: empty where the column may be empty; a date that sorts first
        # for updated_at (pollers take the max of it); None for created_at (shown as "—")
        fallback = None if nullable or name == "created_at" else _EPOCH if kind is datetime else _DEFAULTS.get(kind)
        if value is None:
            if not nullable:
                damage.append(f"{name} is empty")
                setattr(run, name, fallback)
            continue
        try:
            good = _coerce(value, kind)
        except (ValueError, TypeError, OverflowError):
            damage.append(f"{name} {_short(value)} is {'not a date' if kind is datetime else 'not ' + ('text' if kind is str else 'a number')}")
            good = fallback
        if good is not value:
            setattr(run, name, good)
    for name in _JSON_FIELDS:
        value = getattr(run, name, None)
        if value is None:
            continue
        try:
            ok = isinstance(json.loads(value), dict)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            damage.append(f"{name} is not a JSON object")
            setattr(run, name, "{}" if name == "config_json" else None)
    if run.status not in STATUSES:
        damage.append(f"status {_short(run.status)} is unknown")
    if damage:
        run._damage = damage
    return run


_OPEN_STORES: "weakref.WeakSet[Store]" = weakref.WeakSet()


def close_all() -> None:
    """Close every store of this process (the CLI does it on exit): SQLite's last connection then
    folds the write-ahead log into the database file instead of leaving it in the -wal file."""
    for store in list(_OPEN_STORES):
        try:
            store.close()
        except Exception:  # noqa: BLE001 - closing is best effort on the way out
            pass


class Store:
    """All catalog access. Every write is its own short transaction, retried while the file is locked."""

    def __init__(self, url: str | None = None, *, create: bool = True, lock_wait_s: float = WRITER_LOCK_WAIT_S):
        self.url = resolve_db_url(url)
        _OPEN_STORES.add(self)
        self.lock_wait_s = float(lock_wait_s)
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
            busy_ms = int(min(BUSY_TIMEOUT_MS, max(self.lock_wait_s / 2, 0.1) * 1000))
            engine = create_engine(self.url, connect_args={"timeout": busy_ms / 1000, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn, _record):  # noqa: ANN001
                # text that is not UTF-8 (a damaged page, a foreign writer) is read with replacement
                # characters instead of failing the whole query
                dbapi_conn.text_factory = lambda b: b.decode("utf-8", "replace")
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
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
                f"catalog {self.safe_url} has schema version {stored}, newer than this adv-tui understands ({SCHEMA_VERSION}); upgrade adv-tui"
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
                if current < SCHEMA_VERSION and row:
                    conn.exec_driver_sql(f"UPDATE schema_info SET version = {SCHEMA_VERSION} WHERE id = 1")
                # no row yet: _stamp below inserts it, tolerating another process that opened a fresh catalog
                # at the same moment and inserted it first (found by test_many_processes_opening_a_fresh_catalog)

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

    def checkpoint_wal(self, mode: str = "PASSIVE") -> bool:
        """Copy the SQLite write-ahead log into the database file (``PRAGMA wal_checkpoint``; PASSIVE
        never waits, TRUNCATE also empties the log). The runner does this after every model checkpoint
        and at the end of a run, so what it wrote does not live only in the -wal file: a WAL deleted by
        accident then loses at most what came after the last checkpoint. Best effort: False when it
        could not (busy, not SQLite)."""
        if not _is_sqlite(self.url) or _sqlite_path(self.url) is None:
            return False
        try:
            with self.engine.connect() as conn:
                busy, _log, _done = conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})").first()
                return busy == 0
        except (SQLAlchemyError, OSError):
            return False

    @property
    def safe_url(self) -> str:
        """The catalog URL as every message shows it: without its password."""
        return _redact(self.url)

    # ------------------------------------------------------------------------------------ plumbing
    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (one transaction), retrying while another process holds the lock, for at most
        ``lock_wait_s`` in all; then one line saying the catalog is locked (a stopped writer can hold
        the lock forever: a reader must not wait for minutes)."""
        delay = 0.02
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            t0 = time.perf_counter()
            try:
                out = fn()
                self.slowest_write_s = max(self.slowest_write_s, time.perf_counter() - t0)
                return out
            except OperationalError as e:
                text_ = str(e).lower()
                if "locked" in text_ or "busy" in text_:
                    if time.monotonic() + delay < deadline:
                        self.lock_retries += 1
                        time.sleep(delay)
                        delay = min(delay * 2, 1.0)
                        continue
                    where = _sqlite_path(self.url) or self.safe_url
                    raise CatalogLocked(
                        f"catalog {where} is locked by another process for more than {self.lock_wait_s:.0f} s "
                        "(a stopped or hung adv-tui? `fuser` names it); try again once it is released"
                    ) from None
                raise _friendly(self.url, e) from None
            except DatabaseError as e:
                raise _friendly(self.url, e) from None

    def _write(self, fn: Callable[[Session], T], owner: tuple[int, str] | None = None) -> T:
        """One write transaction. With ``owner`` = (run id, claim token) it first checks, inside the same
        transaction and under the write lock, that the run row is still this process's and active;
        otherwise nothing is written and :class:`ClaimLost` is raised."""

        def tx() -> T:
            with Session(self.engine, expire_on_commit=False) as s:
                if owner is not None:
                    self._check_owner(s, *owner)
                out = fn(s)
                s.commit()
                return out

        return self._retry(tx)

    def _check_owner(self, s: Session, run_id: int, token: str) -> None:
        # a no-op UPDATE: it takes the write lock (so nobody can claim the row until this commits) and
        # its row count says whether the row is still ours
        guard = (
            update(Run)
            .where(col(Run.id) == run_id, col(Run.claim_token) == token, col(Run.status).in_(list(ACTIVE)))
            .values(claim_token=Run.claim_token)
        )
        if s.connection().execute(guard).rowcount == 1:
            return
        row = s.connection().execute(text("SELECT status, pid, host FROM runs WHERE id = :id"), {"id": run_id}).first()
        s.rollback()
        if row is None:
            raise ClaimLost(f"run {run_id} was deleted from the catalog while this process ran it; stopped")
        status, pid, host = row
        who = (f"pid {pid}" + (f" on {printable(host)}" if host else "")) if pid is not None else "another process"
        if status in ACTIVE:
            raise ClaimLost(f"run {run_id} was taken over by {who} (resumed there) while this process ran it; this process stopped without writing to it")
        raise ClaimLost(f"run {run_id} became {printable(status)} while this process ran it (marked by another reader); this process stopped without writing to it")

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

    def update_run(self, run_id: int, *, owner: str | None = None, **fields: Any) -> Run:
        """Set fields of a run row (one UPDATE; ``owner``: only while this claim token owns the row) and
        return the row as it is now."""

        def upd(s: Session) -> None:
            res = s.connection().execute(update(Run).where(col(Run.id) == run_id).values(**fields, updated_at=utcnow()))
            if res.rowcount != 1:
                raise NotFoundError(f"no run with id {run_id} in {self.safe_url}")

        self._write(upd, owner=(run_id, owner) if owner else None)
        return self.get_run(run_id)

    def claim_run(self, run_id: int, *, token: str, from_statuses: Sequence[str] = RESUMABLE, **fields: Any) -> bool:
        """Make run ``run_id`` this process's: ONE conditional UPDATE (status in ``from_statuses`` →
        running, with the new claim token and ``fields`` such as pid/host/pid_start). True when it took
        the row; False when another process claimed it first or its status changed meanwhile."""
        now = utcnow()

        def claim(s: Session) -> bool:
            stmt = (
                update(Run)
                .where(col(Run.id) == run_id, col(Run.status).in_(list(from_statuses)))
                .values(status="running", claim_token=token, heartbeat_at=now, updated_at=now, **fields)
            )
            return s.connection().execute(stmt).rowcount == 1

        return self._write(claim)

    def check_owner(self, run_id: int, token: str) -> None:
        """Raise :class:`ClaimLost` unless the row is still active and owned by ``token``."""
        self._write(lambda s: None, owner=(run_id, token))

    def _load_runs(self, s: Session, stmt) -> list[Run]:  # noqa: ANN001
        """Run rows for ``stmt``, each sanitized; a row the ORM cannot even load (an unparseable date)
        is read column by column instead, so one damaged row never takes a listing down."""
        # rows are detached before they are checked, so a repaired field is never flushed back
        try:
            rows = list(s.exec(stmt).all())
            s.expunge_all()
            return [sanitize_run(r) for r in rows]
        except (ValueError, TypeError, OverflowError, ArithmeticError):
            s.rollback()
            s.expunge_all()
        ids = [int(i) for i in s.connection().execute(stmt.with_only_columns(col(Run.id))).scalars()]
        out = []
        for rid in ids:
            try:
                run = s.exec(select(Run).where(col(Run.id) == rid)).one()
                s.expunge_all()
                out.append(sanitize_run(run))
                continue
            except (ValueError, TypeError, OverflowError, ArithmeticError):
                s.rollback()
                s.expunge_all()
            raw = s.connection().execute(text("SELECT * FROM runs WHERE id = :id"), {"id": rid}).mappings().first()
            if raw is None:
                continue
            # a table model is not validated on construction: the raw values go in, sanitize_run checks them
            out.append(sanitize_run(Run(**{k: v for k, v in raw.items() if k in Run.model_fields})))
        return out

    def get_run(self, run_id: int) -> Run:
        if not -(2**63) <= int(run_id) < 2**63:
            raise NotFoundError(f"no run with id {run_id} in {self.safe_url} (see `adv-tui runs list`)")
        runs = self._read(lambda s: self._load_runs(s, select(Run).where(col(Run.id) == run_id)))
        if not runs:
            raise NotFoundError(f"no run with id {run_id} in {self.safe_url} (see `adv-tui runs list`)")
        return runs[0]

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
            return self._load_runs(s, stmt)

        return self._read(q)

    def count_runs(self) -> int:
        return self._read(lambda s: s.exec(select(func.count()).select_from(Run)).one())

    def runs_updated_since(self, since: datetime) -> list[Run]:
        return self._read(lambda s: self._load_runs(s, select(Run).where(col(Run.updated_at) > since)))

    def heartbeat(self, run_id: int) -> None:
        def hb(s: Session) -> None:
            s.exec(update(Run).where(col(Run.id) == run_id).values(heartbeat_at=utcnow()))

        self._write(hb)

    def run_alive(self, run: Run, now: datetime | None = None) -> bool:
        """Is the process of an active run still running it?

        Same host: the recorded pid must exist *and* have the recorded start time (a reused pid is
        another process); its heartbeat does not matter (a process stopped with Ctrl-Z is alive). A row
        without a start time (older catalogs, no /proc) falls back to pid + a fresh heartbeat. Another
        host: the heartbeat must be younger than ``HEARTBEAT_STALE_S``."""
        now = now or utcnow()
        stale = run.heartbeat_at is not None and (now - run.heartbeat_at) > timedelta(seconds=HEARTBEAT_STALE_S)
        if run.host == self.host and run.pid is not None:
            if run.pid_start is not None:
                return same_process(run.pid, run.pid_start)
            return same_process(run.pid, None) and not (stale and run.pid != os.getpid())
        return not stale

    def refresh_liveness(self) -> list[int]:
        """Mark runs whose process is gone (same host) or whose heartbeat is stale as ``interrupted``.

        Each mark is one conditional UPDATE on the row as it was read (status, pid and claim token), so
        a run that a resume claimed in the meantime is left alone."""
        now = utcnow()
        dead: list[int] = []
        for r in self.list_runs(status=ACTIVE):
            if self.run_alive(r, now):
                continue

            def mark(s: Session, r: Run = r) -> bool:
                stmt = (
                    update(Run)
                    .where(
                        col(Run.id) == r.id,
                        col(Run.status).in_(list(ACTIVE)),
                        col(Run.pid).is_not_distinct_from(r.pid),
                        col(Run.claim_token).is_not_distinct_from(r.claim_token),
                    )
                    .values(
                        status="interrupted",
                        error=func.coalesce(Run.error, "the run's process is gone (killed, crashed or the machine restarted)"),
                        finished_at=func.coalesce(Run.finished_at, Run.heartbeat_at, now),
                        updated_at=now,
                    )
                )
                return s.connection().execute(stmt).rowcount == 1

            if self._write(mark):
                dead.append(int(r.id))
        return dead

    def delete_run(self, run_id: int) -> None:
        def rm(s: Session) -> None:
            for model in (Metric, SweepPointRow, Sample, LogLine, Artifact):
                s.exec(delete(model).where(model.run_id == run_id))
            s.exec(delete(Run).where(Run.id == run_id))

        self._write(rm)

    # ------------------------------------------------------------------------------------ metrics
    def add_metrics(self, run_id: int, rows: Iterable[tuple[str, int, float]], *, owner: str | None = None) -> None:
        rows = list(rows)
        if not rows:
            return

        def add(s: Session) -> None:
            keys = {(k, st) for k, st, _ in rows}
            # idempotent: a resumed run rewrites a step instead of duplicating it
            for k, st in keys:
                s.exec(delete(Metric).where(Metric.run_id == run_id, Metric.key == k, Metric.step == st))
            s.add_all([Metric(run_id=run_id, key=k, step=int(st), value=float(v)) for k, st, v in rows])

        self._write(add, owner=(run_id, owner) if owner else None)

    def delete_metrics_after(
        self,
        run_id: int,
        step: int,
        keys_prefix: str = "",
        *,
        keys: Sequence[str] | None = None,
        exclude_keys: Sequence[str] | None = None,
        owner: str | None = None,
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

        self._write(rm, owner=(run_id, owner) if owner else None)

    def delete_sweeps(self, run_id: int, *, owner: str | None = None) -> None:
        """Delete a run's sweep points and perturbation views (a resumed run redoes its sweep)."""

        def rm(s: Session) -> None:
            s.exec(delete(SweepPointRow).where(SweepPointRow.run_id == run_id))
            s.exec(delete(Sample).where(Sample.run_id == run_id))

        self._write(rm, owner=(run_id, owner) if owner else None)

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
        self, run_id: int, attack: str, labels: str, points: Iterable[dict], *, gradient: str = "eval", clip: bool = True, cost: str = "train", mask: int = 0,
        owner: str | None = None,
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

        self._write(add, owner=(run_id, owner) if owner else None)

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
                {k: getattr(p, k) for k in POINT_FIELDS}
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
    def add_samples(self, run_id: int, samples: Iterable[Sample], *, owner: str | None = None) -> None:
        rows = list(samples)

        def add(s: Session) -> None:
            for r in rows:
                r.run_id = run_id
                s.exec(delete(Sample).where(Sample.run_id == run_id, Sample.idx == r.idx, Sample.epsilon == r.epsilon))
            s.add_all(rows)

        self._write(add, owner=(run_id, owner) if owner else None)

    def samples(self, run_id: int) -> list[Sample]:
        return self._read(
            lambda s: list(s.exec(select(Sample).where(Sample.run_id == run_id).order_by(col(Sample.epsilon), col(Sample.idx))).all())
        )

    def log(self, run_id: int, message: str, level: str = "info", *, owner: str | None = None) -> None:
        self._write(lambda s: s.add(LogLine(run_id=run_id, message=message, level=level)), owner=(run_id, owner) if owner else None)

    def logs(self, run_id: int, *, after_id: int = 0, limit: int | None = None) -> list[LogLine]:
        def q(s: Session) -> list[LogLine]:
            stmt = select(LogLine).where(LogLine.run_id == run_id, col(LogLine.id) > after_id).order_by(col(LogLine.id))
            if limit:
                stmt = stmt.limit(limit)
            return list(s.exec(stmt).all())

        return self._read(q)

    def set_artifact(self, run_id: int, kind: str, data: Any, *, owner: str | None = None) -> None:
        payload = json.dumps(data)

        def put(s: Session) -> None:
            s.exec(delete(Artifact).where(Artifact.run_id == run_id, Artifact.kind == kind))
            s.add(Artifact(run_id=run_id, kind=kind, data_json=payload))

        self._write(put, owner=(run_id, owner) if owner else None)

    def artifacts(self, run_id: int) -> dict[str, Any]:
        rows = self._read(lambda s: list(s.exec(select(Artifact).where(Artifact.run_id == run_id)).all()))
        return {a.kind: json.loads(a.data_json) for a in rows}

    def integrity_ok(self) -> bool:
        if not _is_sqlite(self.url):
            return True
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"

    def check_integrity(self) -> None:
        """Before a command adds rows: one line (UserError) when the SQLite file has damaged pages, so a
        run fails before it writes anything rather than late, with a row half written."""
        if not _is_sqlite(self.url) or _sqlite_path(self.url) is None:
            return

        def check() -> list[str]:
            with self.engine.connect() as conn:
                return [str(r[0]) for r in conn.exec_driver_sql("PRAGMA quick_check(3)").fetchall()]

        problems = self._retry(check)
        if problems != ["ok"]:
            where = _sqlite_path(self.url)
            raise UserError(
                f"catalog {where} is damaged ({printable('; '.join(problems), limit=200)}); nothing was written: "
                f"restore a backup, or salvage it with `sqlite3 {where} .recover | sqlite3 recovered.db`, or pass --db to use another"
            )
