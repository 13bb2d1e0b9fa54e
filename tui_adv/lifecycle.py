"""One run's life in the catalog, the same for a training run and an analysis step:

row (created by the caller) → ``running`` with this process's pid, start time, host and versions →
heartbeats and batched writes from a background thread while the work runs → the final status
(completed / cancelled / failed, with the error and the traceback tail), written only while this
process still owns the row.

:class:`RunRecorder` does all of it around a callable; :class:`CatalogWriter` is its background writer.
Every write carries the run's claim token when it has one, so a row another process took over (a
resume, or a reader that marked it ``interrupted``) is never overwritten. No torch import at module
level: the dashboard reads :data:`TRAIN_SHARE` from here.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import socket
import threading
import time
import traceback
from typing import Any, Callable

from .catalog.schema import utcnow
from .catalog.store import ClaimLost, Store, process_start_time
from .choices import RunStatus
from .errors import UserError

Emit = Callable[[dict[str, Any]], None]
HEARTBEAT_S = 5.0  # well inside the readers' liveness window (catalog.ownership.HEARTBEAT_STALE_S)
FLUSH_S = 0.5
TRACEBACK_TAIL = 4000  # characters of a crash's traceback kept on the row

# A run's ``progress`` (0..1) folds its phases into one number: training fills the first TRAIN_SHARE
# when a sweep follows, the sweep the rest. Where an epoch stands is stored as such (``batch`` of
# ``batches``), so no reader decodes ``progress``.
TRAIN_SHARE = 0.9


def train_share(sweep_enabled: bool, epochs: int) -> float:
    """How much of ``progress`` training takes: all of it without a sweep, none without epochs."""
    if not epochs:
        return 0.0
    return TRAIN_SHARE if sweep_enabled else 1.0


def versions() -> dict[str, str]:
    import torch

    from . import __version__

    return {"adv_tui": __version__, "torch": torch.__version__, "python": platform.python_version()}


def this_process() -> dict[str, Any]:
    """The row fields that say which process runs it (liveness reads them)."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": process_start_time(pid), "host": socket.gethostname()}


class CatalogWriter:
    """Writes metrics, sweep points, logs and progress from a background thread, so the work never waits
    on the database. Batches whatever arrived in the last ``flush_s`` seconds into one transaction, and
    touches the heartbeat at least every ``heartbeat_s`` even when nothing else arrived."""

    def __init__(
        self,
        store: Store,
        run_id: int,
        owner: str | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_cancel: Callable[[], None] | None = None,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        flush_s: float = FLUSH_S,
    ):
        self.store, self.run_id, self.owner = store, run_id, owner
        self.on_error = on_error
        self.on_cancel = on_cancel  # called once a cancel request is seen on the run row (any host may set it)
        self.cancel_requested = False
        self.heartbeat_s, self.flush_s = heartbeat_s, flush_s
        self.q: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self._progress: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # the writer thread and sync() never flush at the same time
        self._stop = threading.Event()
        self._last_hb = 0.0
        self.thread = threading.Thread(target=self._loop, name=f"catalog-writer-{run_id}", daemon=True)
        self.thread.start()

    def metrics(self, rows: list[tuple[str, int, float]]) -> None:
        self.q.put(("metrics", rows))

    def sweep_point(self, attack: str, labels: str, point: dict, **reading: Any) -> None:
        """``reading``: gradient, clip, cost, mask (the sweep_points key beyond attack and labels)."""
        self.q.put(("sweep", (attack, labels, point, tuple(sorted(reading.items())))))

    def log(self, message: str, level: str = "info") -> None:
        self.q.put(("log", (message, level)))

    def progress(self, **fields: Any) -> None:
        with self._lock:
            self._progress = {**(self._progress or {}), **fields}

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(min(self.flush_s, self.heartbeat_s))
            self._flush()

    def sync(self) -> None:
        """Write everything queued so far, now, from the calling thread. The runner calls this before it
        writes a checkpoint, so every metric row up to a checkpoint is in the catalog when the checkpoint
        exists (a resume then only has to delete the rows after it)."""
        self._flush()
        if self.error is not None:
            raise self.error

    def _flush(self) -> None:
        with self._flush_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        try:
            items = []
            while True:
                try:
                    items.append(self.q.get_nowait())
                except queue.Empty:
                    break
            if self.error is not None:  # after a failed write (e.g. the claim was lost) nothing more is written
                return
            metrics = [r for kind, rows in items if kind == "metrics" for r in rows]
            own = self.owner
            if metrics:
                self.store.add_metrics(self.run_id, metrics, owner=own)
            sweeps: dict[tuple, list[dict]] = {}
            for kind, payload in items:
                if kind == "sweep":
                    attack, labels, point, reading = payload
                    sweeps.setdefault((attack, labels, reading), []).append(point)
                elif kind == "log":
                    self.store.log(self.run_id, *payload, owner=own)
            for (attack, labels, reading), pts in sweeps.items():
                self.store.add_sweep_points(self.run_id, attack, labels, pts, **dict(reading), owner=own)
            with self._lock:
                progress, self._progress = self._progress, None
            now = time.monotonic()
            if progress or now - self._last_hb >= self.heartbeat_s:
                row = self.store.update_run(self.run_id, owner=own, heartbeat_at=utcnow(), **(progress or {}))
                self._last_hb = now
                # the cancel request of `adv-tui runs cancel` / the dashboard, from whichever host: polled
                # with the heartbeat, so a run stops within heartbeat_s (sooner while it reports progress)
                if row.cancel_requested_at is not None and not self.cancel_requested:
                    self.cancel_requested = True
                    if self.on_cancel is not None:
                        self.on_cancel()
        except BaseException as e:  # noqa: BLE001 - reported by close()
            self.error = e
            self._stop.set()
            if self.on_error is not None:
                self.on_error(e)

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self._flush()
        if self.error is not None:
            raise self.error


def outcome_of(exc: BaseException) -> tuple[RunStatus, str, str | None]:
    """(status, error, traceback tail) of the exception that ended a run's work."""
    from .core.train import Cancelled, Diverged

    if isinstance(exc, Cancelled):  # (a stack's member says why it stopped with the others)
        return RunStatus.CANCELLED, str(exc) or "cancelled by the user", None
    if isinstance(exc, KeyboardInterrupt):
        return RunStatus.CANCELLED, "cancelled by the user (Ctrl-C)", None
    if isinstance(exc, Diverged):
        return RunStatus.FAILED, f"diverged: {exc}", None
    if isinstance(exc, UserError):
        return RunStatus.FAILED, str(exc), None
    tb = "".join(traceback.format_exception(exc))[-TRACEBACK_TAIL:]
    return RunStatus.FAILED, f"{type(exc).__name__}: {exc}", tb


class RunRecorder:
    """The catalog side of one run: :meth:`start` makes the row ``running`` (this process's pid, start
    time, host, versions) and starts the :class:`CatalogWriter`; :meth:`run` calls the work, then records
    how it ended. ``heartbeat_s`` is injectable so a test can run inside a short liveness window."""

    def __init__(
        self,
        store: Store,
        run_id: int,
        *,
        owner: str | None = None,
        stop_event: threading.Event | None = None,
        emit: Emit | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        flush_s: float = FLUSH_S,
    ):
        self.store, self.run_id, self.owner = store, run_id, owner
        self.stop_event = stop_event or threading.Event()
        self.emit = emit or (lambda e: None)
        self.heartbeat_s, self.flush_s = heartbeat_s, flush_s
        self.writer: CatalogWriter | None = None

    def start(self, **fields: Any) -> CatalogWriter:
        """The row becomes ``running`` (with ``fields``, e.g. device, started_at); returns the writer."""
        self.store.update_run(
            self.run_id,
            owner=self.owner,
            status=RunStatus.RUNNING,
            heartbeat_at=utcnow(),
            cancel_requested_at=None,  # a resumed run starts without the request that stopped it
            versions_json=json.dumps(versions()),
            **this_process(),
            **fields,
        )
        stop = self.stop_event
        self.writer = CatalogWriter(self.store, self.run_id, owner=self.owner, on_error=lambda e: stop.set(), on_cancel=stop.set,
                                    heartbeat_s=self.heartbeat_s, flush_s=self.flush_s)
        return self.writer

    def run(self, work: Callable[[CatalogWriter], dict | None]) -> RunStatus:
        """Call ``work(writer)`` (it returns the run's summary) and record the end: the status, error and
        traceback tail, and on completion progress 1 and the summary. Raises :class:`ClaimLost` (after
        emitting ``run_end`` with status ``lost``) when the row stopped being this process's."""
        writer = self.writer if self.writer is not None else self.start()
        run_id = self.run_id
        status, error, tb = RunStatus.COMPLETED, None, None
        summary: dict | None = None
        lost: ClaimLost | None = None
        try:
            summary = work(writer)
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - every way the work can end is recorded
            status, error, tb = outcome_of(e)
            if status == RunStatus.CANCELLED and writer.cancel_requested and not isinstance(e, KeyboardInterrupt):
                error += " (a cancel request in the catalog)"
        finally:
            try:
                writer.close()
            except ClaimLost as e:
                lost = e
            except Exception as e:  # noqa: BLE001
                status, error = RunStatus.FAILED, f"catalog write failed: {e}"
        if lost is None and isinstance(writer.error, ClaimLost):
            lost = writer.error
        if lost is None:
            try:  # how hard the catalog was to write to (read by scripts/stress.py); never fails the run
                self.store.set_artifact(
                    run_id,
                    "catalog_stats",
                    {"lock_retries": self.store.lock_retries, "slowest_write_s": round(self.store.slowest_write_s, 4), "pid": os.getpid()},
                    owner=self.owner,
                )
            except ClaimLost as e:
                lost = e
            except Exception:  # noqa: BLE001
                pass
        if lost is None:
            fields: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error, "traceback": tb, "phase": None}
            if status == RunStatus.COMPLETED:
                fields.update(progress=1.0, summary_json=json.dumps(summary or {}))
            try:
                self.store.update_run(run_id, owner=self.owner, **fields)
            except ClaimLost as e:
                lost = e
        if lost is not None:  # the row is someone else's now: report, never touch it
            self.emit({"type": "run_end", "run_id": run_id, "status": "lost", "error": str(lost)})
            raise lost
        self.store.checkpoint_wal("TRUNCATE")  # the whole run into the database file, the log emptied
        self.emit({"type": "run_end", "run_id": run_id, "status": status, "error": error})
        return status
