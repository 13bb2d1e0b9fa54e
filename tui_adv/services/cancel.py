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
        try:
            os.kill(int(run.pid), signal.SIGTERM)
            return f"run {run_id}: cancel requested and SIGTERM sent to pid {run.pid}; it stops after the current batch"
        except (ProcessLookupError, PermissionError):
            pass
    where = f"on {printable(run.host)}" if run.host else "on its host"
    return (f"run {run_id}: cancel requested in the catalog; its runner {where} stops within about {POLL_S:.0f} s "
            f"(if that host is down, the run is marked interrupted once its heartbeat is {HEARTBEAT_STALE_S:.0f} s old)")
