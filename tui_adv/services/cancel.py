"""Cancelling a run from anywhere: a cancel request stored on the run row (which its runner polls with
its heartbeat, on whichever host it runs), plus SIGTERM when the run's process is on this host (it then
stops after the current batch, without waiting for the next poll). Used by `adv-tui runs cancel` and
the dashboard's ``x``. No UI imports."""

from __future__ import annotations

import os
import signal
import socket

from ..catalog.schema import ACTIVE, Run
from ..choices import RunStatus
from ..catalog.store import HEARTBEAT_STALE_S, Store, same_process
from ..errors import UserError
from ..safe import printable

POLL_S = 5.0  # the runner reads the request at least this often (runner.HEARTBEAT_S)


def cancel_blocker(run: Run) -> str | None:
    """Why the run cannot be cancelled (None when it can): it is not active, or it ran on this host
    and its process is gone (then liveness marks it interrupted; its pid is never signalled: it may
    belong to another program now)."""
    if run.status not in ACTIVE:
        return f"run {run.id} is {printable(run.status)}, nothing to cancel"
    if run.host == socket.gethostname() and run.pid is not None and not same_process(run.pid, run.pid_start):
        return f"run {run.id}'s process (pid {run.pid}) is gone; its pid is not signalled (it may belong to another program now)"
    return None


def same_process_runs(store: Store, run: Run) -> list[Run]:
    """The other active runs of ``run``'s process (same host, pid and start time): a suite's or a stack's.
    Its SIGTERM stops them too (a stack's members share one fate; a suite stops at a cancelled step)."""
    if run.pid is None:
        return []
    return sorted((r for r in store.list_runs(status=list(ACTIVE)) if r.id != run.id and r.host == run.host and r.pid == run.pid
                   and r.pid_start == run.pid_start), key=lambda r: r.id)


def also_stops(others: list[Run]) -> str:
    """``its process also runs 2 other runs (3, 4: …), which stop with it``: what stopping a shared
    process takes along, or "" when it runs nothing else."""
    if not others:
        return ""
    ids = [str(r.id) for r in others]
    named = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
    n = len(ids)
    return f"its process also runs {n} other run{'s' if n > 1 else ''} ({named}: a suite's or a stack's), which stop{'' if n > 1 else 's'} with it"


def cancel_run(store: Store, run_id: int) -> str:
    """Request the cancel on the row; SIGTERM too when the process is here. One line saying what was done."""
    run = store.get_run(run_id)
    why = cancel_blocker(run)
    if why:
        raise UserError(why)
    if not store.request_cancel(run_id):
        raise UserError(f"run {run_id} ended meanwhile ({printable(store.get_run(run_id).status)}); nothing to cancel")
    after = store.get_run(run_id)
    if after.status == RunStatus.CANCELLED:
        return f"run {run_id} cancelled (it had not started)"
    local = run.host == socket.gethostname() and run.pid is not None
    if local and same_process(run.pid, run.pid_start):  # checked again at the moment of sending
        others = same_process_runs(store, run)
        try:
            os.kill(int(run.pid), signal.SIGTERM)
            return f"run {run_id}: cancel requested and SIGTERM sent to pid {run.pid}; it stops after the current batch" + (f"; {also_stops(others)}" if others else "")
        except (ProcessLookupError, PermissionError):
            pass
    where = f"on {printable(run.host)}" if run.host else "on its host"
    return (f"run {run_id}: cancel requested in the catalog; its runner {where} stops within about {POLL_S:.0f} s "
            f"(if that host is down, the run is marked interrupted once its heartbeat is {HEARTBEAT_STALE_S:.0f} s old)"
            + (f"; {also_stops(others)}" if (others := same_process_runs(store, run)) else ""))
