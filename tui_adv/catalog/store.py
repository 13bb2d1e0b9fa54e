"""The catalog store: engine set-up, short write transactions with retries, run rows.

SQLite (the default, ``./runs.db``) runs in WAL mode with ``synchronous=NORMAL`` and a busy timeout, so
several runners and the dashboard can share one file. Any SQLAlchemy URL works through ``--db`` or
``$ADV_TUI_DB``; PostgreSQL (``postgresql+psycopg://…``) is the one tested besides SQLite. The schema is
kept by Alembic (:mod:`.migrate`); a run's series (metrics, sweeps, …) live in :mod:`.series`, row checks
in :mod:`.rows`, claims, heartbeats, cancel requests and liveness in :mod:`.ownership`, look-ups by
experiment identity in :mod:`.lookup`.
"""

from __future__ import annotations

import socket
import sys
import time
import weakref
from datetime import datetime
from typing import Any, Callable, Sequence, TypeVar

from sqlalchemy import delete, event, func, or_, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, OperationalError, SQLAlchemyError
from sqlmodel import Session, col, create_engine, select

from ..errors import NotFoundError, UserError
from ..safe import printable
from .lookup import LookupMixin, identity_fields
from .migrate import ensure_schema
from .rows import POINT_FIELDS, combine_draws, pid_alive, process_start_time, same_process, sanitize_run  # noqa: F401 - re-exported
from .ownership import HEARTBEAT_STALE_S, OwnershipMixin  # noqa: F401 - HEARTBEAT_STALE_S re-exported
from .schema import Artifact, LogLine, Metric, Run, Sample, SweepPointRow, utcnow
from .series import SeriesMixin
from .urls import DEFAULT_DB, ENV_DB, CatalogLocked, ClaimLost, _friendly, _is_sqlite, _redact, _sqlite_path, resolve_db_url  # noqa: F401

BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10  # a catalog server that does not answer
WRITER_LOCK_WAIT_S = 300.0  # a run waits this long for a lock held by another process before it fails
READER_LOCK_WAIT_S = 10.0  # a command that only reads (runs list/show/export, the dashboard) waits this long

T = TypeVar("T")

_OPEN_STORES: "weakref.WeakSet[Store]" = weakref.WeakSet()


def close_all() -> None:
    """Close every store of this process (the CLI does it on exit): SQLite's last connection then
    folds the write-ahead log into the database file instead of leaving it in the -wal file."""
    for store in list(_OPEN_STORES):
        try:
            store.close()
        except Exception:  # noqa: BLE001 - closing is best effort on the way out
            pass


def announce(line: str) -> None:
    """One line on stderr (the headless core has no console): e.g. that a catalog was upgraded."""
    try:
        sys.stderr.write(f"adv-tui: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # no stderr to write to (a detached child): the notice is not needed
        pass


def dataset_clause(dataset: str):  # noqa: ANN201 - a SQLAlchemy clause
    """Runs of one dataset, read from the stored config (``json.dumps(..., sort_keys=True)`` writes
    ``"dataset": "NAME"``); MNIST also matches every config without the key."""
    key = '%"dataset": "'
    literal = dataset.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    named = col(Run.config_json).like(f'{key}{literal}"%', escape="\\")
    if dataset != "mnist":
        return named
    return or_(named, col(Run.config_json).is_(None), ~col(Run.config_json).like(f"{key}%"))


class Store(OwnershipMixin, SeriesMixin, LookupMixin):
    """All catalog access. Every write is its own short transaction, retried while the file is locked."""

    def __init__(self, url: str | None = None, *, create: bool = True, lock_wait_s: float = WRITER_LOCK_WAIT_S, auto_upgrade: bool | None = None):
        self.url = resolve_db_url(url)
        _OPEN_STORES.add(self)
        self.lock_wait_s = float(lock_wait_s)
        self.lock_retries = 0
        self.slowest_write_s = 0.0
        self.host = socket.gethostname()
        self.notice: str | None = None  # one line when opening upgraded the schema in place
        try:
            self.engine = self._make_engine()

            def ping() -> None:
                with self.engine.connect() as conn:  # the connect hook sets WAL, which needs the lock
                    conn.exec_driver_sql("SELECT 1")

            # several processes opening one (fresh) catalog at once can meet SQLITE_BUSY where SQLite does
            # not wait (switching to WAL, WAL recovery): the whole opening is retried like any write
            self._retry(ping)
            if create:
                self.notice = ensure_schema(self, auto_upgrade=auto_upgrade)
                if self.notice:
                    announce(self.notice)
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
            # a server that does not answer is one line after CONNECT_TIMEOUT_S, not a hang
            args = {"connect_timeout": CONNECT_TIMEOUT_S} if self.url.startswith("postgresql") else {}
            return create_engine(self.url, pool_pre_ping=True, connect_args=args)
        except ImportError as e:
            scheme = self.url.split("://", 1)[0]
            raise UserError(
                f"cannot use database URL {_redact(self.url)}: its driver is not installed ({e}); "
                f"install the SQLAlchemy driver for {scheme} (e.g. pip install 'psycopg[binary]' for postgresql) or use a SQLite path"
            ) from None
        except (SQLAlchemyError, ValueError) as e:
            raise UserError(f"cannot use database URL {_redact(self.url)}: {e}") from None

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

    def _read(self, fn: Callable[[Session], T]) -> T:
        def tx() -> T:
            with Session(self.engine, expire_on_commit=False) as s:
                return fn(s)

        return self._retry(tx)

    # ------------------------------------------------------------------------------------ runs
    def create_run(self, **fields: Any) -> Run:
        """A new run row; its experiment identity is computed from ``config_json`` (:mod:`.lookup`)."""
        run = Run(**{**identity_fields(fields.get("config_json")), **fields})

        def add(s: Session) -> Run:
            s.add(run)
            s.flush()
            s.refresh(run)
            return run

        return self._write(add)

    def update_run(self, run_id: int, *, owner: str | None = None, **fields: Any) -> Run:
        """Set fields of a run row (one UPDATE; ``owner``: only while this claim token owns the row) and
        return the row as it is now. A new ``config_json`` gets its experiment identity with it."""
        if "config_json" in fields:
            fields = {**identity_fields(fields["config_json"]), **fields}

        def upd(s: Session) -> None:
            res = s.connection().execute(update(Run).where(col(Run.id) == run_id).values(**fields, updated_at=utcnow()))
            if res.rowcount != 1:
                raise NotFoundError(f"no run with id {run_id} in {self.safe_url}")

        self._write(upd, owner=(run_id, owner) if owner else None)
        return self.get_run(run_id)

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
        experiment: str | None = None,
        newest_first: bool = True,
        dataset: str | None = None,
    ) -> list[Run]:
        """``dataset``: only the runs whose stored config names that dataset (``data.dataset``; a config
        without the key, stored before it existed, or an analysis run, is MNIST)."""

        def q(s: Session) -> list[Run]:
            stmt = select(Run)
            if experiment is not None:  # exactly (a grid's group is its runs' experiment)
                stmt = stmt.where(col(Run.experiment) == experiment)
            if status:
                stmt = stmt.where(col(Run.status).in_(list(status)))
            if ids is not None:
                stmt = stmt.where(col(Run.id).in_(list(ids)))
            if text:
                like = f"%{text}%"
                stmt = stmt.where(or_(col(Run.name).like(like), col(Run.experiment).like(like), col(Run.claims).like(like)))
            if dataset:
                stmt = stmt.where(dataset_clause(dataset))
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

    def delete_run(self, run_id: int) -> None:
        def rm(s: Session) -> None:
            for model in (Metric, SweepPointRow, Sample, LogLine, Artifact):
                s.exec(delete(model).where(model.run_id == run_id))
            s.exec(delete(Run).where(Run.id == run_id))

        self._write(rm)

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
