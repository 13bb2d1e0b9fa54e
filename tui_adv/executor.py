"""Where the reproduction suite's steps run: the executor interface and its local implementations.

The scheduler (:meth:`tui_adv.reproduce.Reproducer.run`) decides *what* runs (parents before children,
reuse of finished runs, which interrupted run to continue) and hands each step that must run to an
executor as a :class:`StepTask`: a picklable description that carries everything the step needs, its
parents' run ids included, and nothing live (no store, no model). The executor returns a
:class:`StepHandle`; the scheduler polls ``done()`` and reads ``result()``, a :class:`StepOutcome`.

An executor has ``capacity`` (how many steps it runs at once), ``submit(task) -> handle``,
``poll_events()`` (progress events of running steps, for the scheduler to forward), ``stop()`` (ask
every running step to stop cleanly: the runs end ``cancelled`` with a checkpoint) and ``shutdown()``.

- :class:`InlineExecutor` (``--jobs 1``, the default): runs the step in this process at ``submit``, with
  the caller's store, progress callback and stop event; the suite behaves exactly as a plain loop.
- :class:`LocalPoolExecutor` (``--jobs N``): N worker processes (spawned, each with
  ``cores // N`` torch threads so N steps do not oversubscribe the cores); each step opens its own
  store on the same catalog URL and is its own catalog run, with its own progress rows.

Any other executor (a cluster's) implements the same four methods and :func:`run_task` is the function
it runs where the step lands.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .choices import RunStatus

Emit = Callable[[dict[str, Any]], None]


@dataclass
class StepTask:
    """One step to run, fully described: a training run (``config_json``: the validated run config) or
    an analysis (``analysis`` kind, ``params``, ``parent_ids``: role -> run id)."""

    key: str
    profile: str
    db_url: str
    data_dir: str | None
    device: str
    claims: list[str] = field(default_factory=list)
    config_json: str | None = None  # training step
    parent_id: int | None = None  # the run a retrain step retrains (its catalog parent)
    resume_run_id: int | None = None  # an interrupted/cancelled run of the same experiment to continue
    resume_only: bool = False  # `resume ID` elsewhere: a run that cannot be continued fails, never restarts
    analysis: str | None = None  # analysis step
    params: dict[str, Any] = field(default_factory=dict)
    parent_ids: dict[str, int] = field(default_factory=dict)
    # a stack (``reproduce --stack``): these training steps, which differ only by seed, trained as one model
    # (:mod:`tui_adv.stack_runner`); the task's own key names the group
    members: list["StepTask"] = field(default_factory=list)

    @property
    def needs(self) -> list[int]:
        """The run ids this task reads (what a remote executor must be able to load)."""
        own = [*self.parent_ids.values(), *([self.parent_id] if self.parent_id is not None else [])]
        return own + [i for m in self.members for i in m.needs]


@dataclass
class StepOutcome:
    key: str
    run_id: int | None
    status: str  # completed | cancelled | failed
    seconds: float = 0.0
    error: str | None = None
    members: list["StepOutcome"] = field(default_factory=list)  # a stack's: one per member step


class StepHandle(Protocol):
    def done(self) -> bool: ...

    def result(self) -> StepOutcome: ...


class Executor(Protocol):
    capacity: int

    def submit(self, task: StepTask) -> StepHandle: ...

    def poll_events(self) -> list[dict[str, Any]]: ...

    def stop(self) -> None: ...

    def shutdown(self) -> None: ...


# ------------------------------------------------------------------------------------------------ the step itself
def run_task(task: StepTask, *, store=None, emit: Emit | None = None, stop_event: Any = None) -> StepOutcome:
    """Run one step where this function is called: open the catalog (unless ``store`` is given), make
    the step's run (or continue ``resume_run_id``), execute it; returns its outcome. A crash becomes a
    ``failed`` outcome, never an exception."""
    from .catalog.store import Store

    emit = emit or (lambda e: None)
    stop_event = stop_event if stop_event is not None else threading.Event()
    own = store is None
    t0 = time.perf_counter()
    if own:
        store = Store(task.db_url)
    try:
        if task.analysis is not None:
            return _run_analysis_task(task, store, emit, t0)
        if task.members:
            return _run_stack_task(task, store, emit, stop_event, t0)
        return _run_training_task(task, store, emit, stop_event, t0)
    except Exception as e:  # noqa: BLE001 - the scheduler records the step as failed and goes on
        return StepOutcome(task.key, None, RunStatus.FAILED, time.perf_counter() - t0, f"{type(e).__name__}: {e}")
    finally:
        if own:
            store.close()


def _run_training_task(task: StepTask, store, emit: Emit, stop_event: Any, t0: float) -> StepOutcome:
    from .config import config_from_json
    from .errors import UserError
    from .runner import Runner

    runner = None
    if task.resume_run_id is not None:  # a suite stopped mid-step continues that run from its checkpoint
        try:
            runner = Runner.for_resume(store, task.resume_run_id, data_dir=task.data_dir, device=task.device, emit=emit, stop_event=stop_event)
            emit({"type": "log", "message": f"{task.key}: continuing run {task.resume_run_id} from its checkpoint"})
        except UserError as e:
            if task.resume_only:
                return StepOutcome(task.key, task.resume_run_id, RunStatus.FAILED, time.perf_counter() - t0, str(e))
            emit({"type": "log", "message": f"{task.key}: run {task.resume_run_id} cannot be continued ({e}); starting it again"})
            runner = None
    if runner is None:
        cfg = config_from_json(task.config_json)
        runner = Runner(cfg, store, data_dir=task.data_dir, device=task.device, emit=emit, stop_event=stop_event, parent_id=task.parent_id)
        runner.create()
    status = runner.execute()
    run = store.get_run(runner.run_id)
    return StepOutcome(task.key, int(run.id), status, time.perf_counter() - t0, run.error if status != RunStatus.COMPLETED else None)


def _run_stack_task(task: StepTask, store, emit: Emit, stop_event: Any, t0: float) -> StepOutcome:
    """The member steps of a stack trained as one model; one outcome per member in ``members``."""
    from .config import config_from_json
    from .stack_runner import run_stack

    cfgs = [config_from_json(m.config_json) for m in task.members]
    results = run_stack(cfgs, store, data_dir=task.data_dir, device=task.device, emit=emit, stop_event=stop_event,
                        parent_ids=[m.parent_id for m in task.members])
    dt = time.perf_counter() - t0
    outs = []
    for m, (rid, status) in zip(task.members, results):
        run = store.get_run(rid)
        outs.append(StepOutcome(m.key, rid, status, dt, run.error if status != RunStatus.COMPLETED else None))
    worst = next((o for o in outs if o.status != RunStatus.COMPLETED), outs[0])
    return StepOutcome(task.key, None, worst.status, dt, worst.error, members=outs)


def _run_analysis_task(task: StepTask, store, emit: Emit, t0: float, *, heartbeat_s: float | None = None) -> StepOutcome:
    """An analysis step as its own catalog run, through the same lifecycle as a training run
    (:class:`~tui_adv.lifecycle.RunRecorder`): a claim token on the row, a heartbeat while it computes
    (so a reader on another host never takes a long analysis for dead), every write checked against the
    claim (so a row marked ``interrupted`` is never overwritten as completed), the traceback tail on
    failure."""
    import uuid

    import torch

    from .catalog.schema import claims_text, json_object, utcnow
    from .catalog.store import ClaimLost
    from .lifecycle import RunRecorder
    from .reproduce import Step, analysis_config_json, run_analysis
    from .runner import resolve_device

    device = resolve_device(task.device)
    parents = {role: store.get_run(rid) for role, rid in task.parent_ids.items()}
    step = Step(task.key, analysis=task.analysis, params=task.params, claims=list(task.claims))
    config_json = analysis_config_json(step, parents)
    config = json_object(config_json)
    first_parent = next(iter(parents.values()))
    token = uuid.uuid4().hex
    run = store.create_run(
        name=f"{task.profile}:{task.key}",
        experiment=task.key,
        profile=task.profile,
        claims=claims_text(task.claims),
        config_json=config_json,
        status=RunStatus.QUEUED,
        claim_token=token,
        device=str(device),
        parent_id=first_parent.id,
        phase="analysis",
    )
    run_id = int(run.id)

    def work(writer) -> dict:  # noqa: ANN001 - the recorder's CatalogWriter
        out = run_analysis(store, step, task.profile, parents, data_dir=task.data_dir, device=torch.device(device))
        for kind, data in out["artifacts"].items():
            store.set_artifact(run_id, kind, data, owner=token)
        if out["sweep"] is not None:
            labels, points = out["sweep"]
            store.add_sweep_points(run_id, "fgsm", labels, points, owner=token)
        store.log(run_id, f"{task.analysis} of runs {config['parents']}", owner=token)
        return out["summary"]

    options = {} if heartbeat_s is None else {"heartbeat_s": heartbeat_s}
    recorder = RunRecorder(store, run_id, owner=token, emit=emit, **options)
    recorder.start(started_at=utcnow())
    try:
        status = recorder.run(work)
    except ClaimLost as e:
        return StepOutcome(task.key, run_id, RunStatus.INTERRUPTED, time.perf_counter() - t0, str(e))
    error = None if status == RunStatus.COMPLETED else store.get_run(run_id).error
    return StepOutcome(task.key, run_id, status, time.perf_counter() - t0, error)


# ------------------------------------------------------------------------------------------------ in this process
class _Done:
    def __init__(self, outcome: StepOutcome):
        self._outcome = outcome

    def done(self) -> bool:
        return True

    def result(self) -> StepOutcome:
        return self._outcome


class InlineExecutor:
    """One step at a time, in this process, at ``submit``: the caller's store, progress and stop event."""

    capacity = 1

    def __init__(self, store, emit: Emit, stop_event: threading.Event):
        self.store, self.emit, self.stop_event = store, emit, stop_event

    def submit(self, task: StepTask) -> StepHandle:
        return _Done(run_task(task, store=self.store, emit=self.emit, stop_event=self.stop_event))

    def poll_events(self) -> list[dict[str, Any]]:
        return []

    def stop(self) -> None:
        self.stop_event.set()

    def shutdown(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------ worker processes
_WORKER: dict[str, Any] = {}


def _worker_init(events, stop, threads: int) -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    torch.set_num_threads(max(1, threads))
    _WORKER.update(events=events, stop=stop)


def _worker_run(task: StepTask) -> StepOutcome:
    events = _WORKER["events"]

    def emit(e: dict[str, Any]) -> None:
        if e.get("type") in ("run_start", "run_end", "log", "epoch_end", "phase"):  # not every batch through the pipe
            try:
                events.put_nowait({**e, "step": task.key})
            except Exception:  # noqa: BLE001 - progress is best effort; the catalog has it anyway
                pass

    return run_task(task, emit=emit, stop_event=_WORKER["stop"])


class _FutureHandle:
    def __init__(self, key: str, future: Future):
        self.key, self.future = key, future

    def done(self) -> bool:
        return self.future.done()

    def result(self) -> StepOutcome:
        try:
            return self.future.result()
        except BaseException as e:  # noqa: BLE001 - a worker that died (killed, out of memory)
            return StepOutcome(self.key, None, RunStatus.FAILED, 0.0, f"the worker running the step died: {type(e).__name__}: {e}")


class LocalPoolExecutor:
    """``jobs`` worker processes on this machine; torch threads per worker = cores // jobs (at least 1)."""

    def __init__(self, jobs: int, threads: int | None = None):
        if jobs < 1:
            raise ValueError("jobs must be ≥ 1")
        self.capacity = jobs
        ctx = mp.get_context("spawn")  # no fork of a process that holds torch threads and a catalog connection
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.threads = threads or max(1, cores // jobs)
        self._events = ctx.Queue()
        self._stop = ctx.Event()
        self._pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=(self._events, self._stop, self.threads))

    def submit(self, task: StepTask) -> StepHandle:
        return _FutureHandle(task.key, self._pool.submit(_worker_run, task))

    def poll_events(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except (queue_mod.Empty, OSError, ValueError):
                return out

    def stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._events.close()
