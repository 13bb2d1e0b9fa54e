"""Who owns a run row, and whether its process still lives: claims, owner checks, heartbeats, cancel
requests and liveness (the store's methods for them, mixed into :class:`~.store.Store`).

A process takes a run row with one conditional UPDATE (:meth:`~OwnershipMixin.claim_run`) and writes to
it only while its claim token still owns the row (:meth:`~OwnershipMixin._check_owner`, inside each
owner-checked write); it proves it is alive with heartbeats. Readers mark active rows whose process is
gone, or whose heartbeat is older than ``HEARTBEAT_STALE_S``, as interrupted
(:meth:`~OwnershipMixin.refresh_liveness`); a cancel request is a flag on the row that the runner polls.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any, Sequence

from sqlalchemy import func, text, update
from sqlmodel import Session, col

from ..choices import RunStatus
from ..safe import printable
from .rows import same_process
from .schema import ACTIVE, RESUMABLE, Run, utcnow
from .urls import ClaimLost

HEARTBEAT_STALE_S = 120.0


class OwnershipMixin:
    """Claiming, owning, heartbeating, cancelling and checking the liveness of run rows (mixed into
    :class:`~.store.Store`, whose ``_write``, ``list_runs`` and ``host`` it uses)."""

    def claim_run(self, run_id: int, *, token: str, from_statuses: Sequence[str] = RESUMABLE, **fields: Any) -> bool:
        """Make run ``run_id`` this process's: ONE conditional UPDATE (status in ``from_statuses`` →
        running, with the new claim token and ``fields`` such as pid/host/pid_start). True when it took
        the row; False when another process claimed it first or its status changed meanwhile."""
        now = utcnow()

        def claim(s: Session) -> bool:
            stmt = (
                update(Run)
                .where(col(Run.id) == run_id, col(Run.status).in_(list(from_statuses)))
                .values(status=RunStatus.RUNNING, claim_token=token, heartbeat_at=now, updated_at=now, **fields)
            )
            return s.connection().execute(stmt).rowcount == 1

        return self._write(claim)

    def check_owner(self, run_id: int, token: str) -> None:
        """Raise :class:`ClaimLost` unless the row is still active and owned by ``token``."""
        self._write(lambda s: None, owner=(run_id, token))

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

    def heartbeat(self, run_id: int) -> None:
        def hb(s: Session) -> None:
            s.exec(update(Run).where(col(Run.id) == run_id).values(heartbeat_at=utcnow()))

        self._write(hb)

    def request_cancel(self, run_id: int) -> bool:
        """Ask the run's process, on whichever host, to stop: one conditional UPDATE setting
        ``cancel_requested_at`` on an active row (the runner polls it with its heartbeat). A queued row
        with no process yet is cancelled at once. False when the run is not active (nothing to cancel)."""
        now = utcnow()

        def req(s: Session) -> bool:
            queued = s.connection().execute(
                update(Run).where(col(Run.id) == run_id, col(Run.status) == RunStatus.QUEUED, col(Run.pid).is_(None))
                .values(status=RunStatus.CANCELLED, cancel_requested_at=now, finished_at=now, error="cancelled by the user before it started", updated_at=now)
            ).rowcount
            if queued:
                return True
            stmt = update(Run).where(col(Run.id) == run_id, col(Run.status).in_(list(ACTIVE))).values(cancel_requested_at=now, updated_at=now)
            return s.connection().execute(stmt).rowcount == 1

        return self._write(req)

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
                        status=RunStatus.INTERRUPTED,
                        error=func.coalesce(Run.error, "the run's process is gone (killed, crashed or the machine restarted)"),
                        finished_at=func.coalesce(Run.finished_at, Run.heartbeat_at, now),
                        updated_at=now,
                    )
                )
                return s.connection().execute(stmt).rowcount == 1

            if self._write(mark):
                dead.append(int(r.id))
        return dead
