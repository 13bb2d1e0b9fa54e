"""Incremental readers of the catalog, run in worker threads (no textual imports)."""

from __future__ import annotations

import time

from ..catalog.schema import ACTIVE, Run
from ..catalog.store import Store
from ..errors import UserError
from .messages import RunDelta
from ..services.launch import Launched


def sleep_unless_cancelled(worker, seconds: float) -> None:  # noqa: ANN001
    """Sleep in a thread worker, waking early when the worker is cancelled."""
    end = time.monotonic() + max(seconds, 0.0)
    while not worker.is_cancelled:
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


def launch_cause(output: str) -> str:
    """The one line that says why a child failed: its ``adv-tui: error: …`` line, else its last line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("adv-tui:"):
            return ln.removeprefix("adv-tui: error: ").removeprefix("adv-tui: ")
    return lines[-1] if lines else ""


def record_launch_failure(store: Store, argv: list[str], cause: str) -> int:
    """A ``failed`` row for a launch whose process exited before it created its run (no data, a bad
    config): the history keeps the attempt and its cause. Returns the row's id."""
    import json
    import socket
    from pathlib import Path

    from ..catalog.schema import utcnow

    config = argv[argv.index("run") + 1] if "run" in argv[:-1] else "?"
    overrides = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--set"]
    name, experiment = Path(config).stem or "run", Path(config).stem or "run"
    config_json = json.dumps({"config": config, "overrides": overrides})
    try:
        from ..config import load_config

        cfg = load_config(config, overrides)
        name, experiment, config_json = cfg.name, cfg.experiment, cfg.to_json()
    except Exception:  # noqa: BLE001 - the config itself may be what failed
        pass
    now = utcnow()
    run = store.create_run(name=name, experiment=experiment, config_json=config_json, status="failed", error=f"did not start: {cause}",
                           created_at=now, started_at=now, finished_at=now, host=socket.gethostname())
    return int(run.id)


def reap_ray_launches(store: Store, launched: dict[int, Launched]) -> list[tuple[str, str]]:
    """Children that sent a run to Ray (the run's row is made by the Ray worker, with the worker's pid,
    so no live screen can follow the child): each one that exited is dropped from ``launched``; one that
    failed before its task made a row (exit code 2: bad input, Ray unreachable) leaves a ``failed`` row
    with the cause. Returns (message, severity) notifications for the ones that ended."""
    out: list[tuple[str, str]] = []
    for pid, child in list(launched.items()):
        code = child.exited()
        if code is None:
            continue
        del launched[pid]
        if code == 0:
            out.append((f"the Ray run sent from the dashboard (pid {pid}) completed", "information"))
            continue
        cause = launch_cause(child.log_tail()) or f"the process exited with code {code}"
        if code == 2:  # refused before any row was made
            try:
                rid = record_launch_failure(store, child.argv, cause)
                cause = f"run {rid} failed: {cause}"
            except Exception:  # noqa: BLE001 - an unwritable catalog: the notification still says why
                pass
        out.append((f"Ray launch: {cause}", "error"))
    return out


class RunFeed:
    """Fetch one run's new rows (metrics, sweep points, logs) above the last ids seen.

    With ``launched`` (a process the dashboard just started) the run id is not known yet: the feed
    finds the run row that the process creates (same pid), or reports the process's own error output
    when it exits before creating one (e.g. MNIST missing).
    """

    def __init__(self, store: Store, run_id: int | None = None, *, launched: Launched | None = None, want_samples: bool = False):
        self.store = store
        self.run_id = run_id
        self.launched = launched
        self.want_samples = want_samples
        self.after_metric = 0
        self.after_sweep = 0
        self.after_log = 0
        self.samples_loaded = False
        self.artifacts_loaded = False
        self.last_status: str | None = None
        self.finished_polls = 0
        # a launched process has taken its run row (a new run: it created it; a resume: it claimed the
        # stopped row, which until then still reads cancelled/interrupted/failed)
        self.claimed = launched is None

    def _resolve(self) -> RunDelta | None:
        assert self.launched is not None
        for r in self.store.list_runs(limit=50):
            if r.pid == self.launched.pid and r.created_at is not None:
                self.run_id = int(r.id)
                self.claimed = True
                return None
        code = self.launched.exited()
        if code is not None:
            time.sleep(0.2)  # the row may land just before exit
            for r in self.store.list_runs(limit=50):
                if r.pid == self.launched.pid:
                    self.run_id = int(r.id)
                    self.claimed = True
                    return None
            return self._launch_failed(code)
        return RunDelta(run=None)

    def _launch_failed(self, code: int) -> RunDelta:
        tail = self.launched.log_tail() or "(no output)"
        cause = launch_cause(tail) or f"the run process exited with code {code}"
        delta = RunDelta(run=None, launch_error=f"the run process exited with code {code} before it started:\n{tail}\n(log: {self.launched.log_path})")
        delta.error = cause
        if self.run_id is None:  # a new run: leave a failed row with the cause in the history
            try:
                self.run_id = record_launch_failure(self.store, self.launched.argv, cause)
            except Exception:  # noqa: BLE001 - an unwritable catalog: the screen still shows the cause
                pass
        return delta

    def _await_claim(self) -> RunDelta | None:
        """A resume: None once the child owns the row (its pid on it), else a waiting or failed delta."""
        try:
            run = self.store.get_run(self.run_id)
        except UserError as e:
            return RunDelta(run=None, error=str(e))
        if run.pid == self.launched.pid and run.status in ACTIVE:
            self.claimed = True
            return None
        code = self.launched.exited()
        if code is None:
            return RunDelta(run=None)
        time.sleep(0.2)
        run = self.store.get_run(self.run_id)
        if run.pid == self.launched.pid:  # it ran and already ended: show what it did
            self.claimed = True
            return None
        return self._launch_failed(code)

    @property
    def done(self) -> bool:
        """Nothing more will change (finished run, everything read)."""
        return self.finished_polls >= 2

    def poll(self) -> RunDelta:
        if self.run_id is None:
            pending = self._resolve()
            if pending is not None:
                return pending
        elif not self.claimed:
            pending = self._await_claim()
            if pending is not None:
                return pending
        assert self.run_id is not None
        try:
            run: Run = self.store.get_run(self.run_id)
        except UserError as e:
            return RunDelta(run=None, error=str(e))
        metrics = self.store.metrics(self.run_id, after_id=self.after_metric)
        if metrics:
            self.after_metric = max(int(m.id) for m in metrics)
        sweep = self.store.sweep_points(self.run_id, after_id=self.after_sweep)
        if sweep:
            self.after_sweep = max(int(p.id) for p in sweep)
        logs = self.store.logs(self.run_id, after_id=self.after_log, limit=500)
        if logs:
            self.after_log = max(int(line.id) for line in logs)
        delta = RunDelta(run=run, metrics=metrics, sweep=sweep, logs=logs)
        finished = run.status not in ACTIVE
        if self.want_samples and not self.samples_loaded and (finished or run.phase is None and run.progress >= 1.0):
            delta.samples = self.store.samples(self.run_id)
            self.samples_loaded = True
        if finished and not self.artifacts_loaded:
            try:
                delta.artifacts = self.store.artifacts(self.run_id)
            except ValueError:  # a stored payload that is not JSON: the run is shown without its analyses
                delta.artifacts = {}
            self.artifacts_loaded = True
        self.finished_polls = self.finished_polls + 1 if finished else 0
        self.last_status = run.status
        return delta
