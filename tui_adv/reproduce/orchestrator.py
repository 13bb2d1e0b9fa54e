"""The suite's orchestrator: the :class:`Reproducer` loop that runs (or reuses) the selected steps.

This module owns finding a finished or a stopped run of the same experiment in the catalog
(:func:`find_completed`, :func:`find_resumable`), selecting the steps ``--only`` asks for with what
they need, the scheduling loop (parents before children, up to the executor's capacity, stopping on
request or on a cancelled step) and the events it emits, and :func:`datasets_needed`. The steps
themselves come from :mod:`.steps`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..catalog.schema import Run
from ..catalog.store import Store
from ..choices import RunStatus
from ..errors import UserError
from .order import ordered
from .steps import Step, analysis_config_json, step_config, suite

if TYPE_CHECKING:
    from ..executor import Executor, StepOutcome, StepTask

Emit = Callable[[dict[str, Any]], None]


def find_completed(store: Store, key: str, profile: str, config_json: str | None = None) -> Run | None:
    """The newest completed run of a step: the same experiment (``config_json``'s identity) made by any
    command, else (no config given) the newest completed run the profile recorded for the step key.
    One indexed query (:meth:`Store.newest_run`)."""
    if config_json is not None:
        return store.newest_run(config_json)
    return store.newest_run(experiment=key, profile=profile)


def find_resumable(store: Store, config_json: str) -> Run | None:
    """An interrupted or cancelled run of the same experiment that left a checkpoint: a stopped suite
    continues it instead of starting the step again."""
    stopped = store.runs_like(config_json, status=[RunStatus.INTERRUPTED, RunStatus.CANCELLED], with_checkpoint=True)
    return next((r for r in stopped if Path(r.checkpoint_path).is_file()), None)


def datasets_needed(profile: str, only: list[str] | None = None) -> set[str]:
    """The datasets the selected steps train or analyse on (an analysis or a retrain is its parents')."""
    out = set()
    for step in Reproducer._select(suite(profile), only):
        out.add(step_config(step, profile).data.dataset if step.config else "mnist")
    return out


def stack_groups(steps: list[Step], profile: str) -> dict[str, list[str]]:
    """``--stack``: step key -> the keys of the training steps among ``steps`` that differ from it only by
    seed and can be trained as one stack (:func:`tui_adv.stack_runner.stack_key`), groups of two or more."""
    from ..stack_runner import stack_key

    by: dict[str, list[str]] = {}
    for step in steps:
        if step.config and not step.retrain_of:
            key = stack_key(step_config(step, profile))
            if key is not None:
                by.setdefault(key, []).append(step.key)
    return {k: keys for keys in by.values() if len(keys) > 1 for k in keys}


class Reproducer:
    def __init__(
        self,
        store: Store,
        profile: str,
        *,
        only: list[str] | None = None,
        fresh: bool = False,
        data_dir: str | None = None,
        device: str = "auto",
        emit: Emit | None = None,
        stop_event: threading.Event | None = None,
        jobs: int = 1,
        stack: bool = False,
        order: str = "suite",
    ):
        self.store, self.profile, self.fresh = store, profile, fresh
        self.jobs = max(1, int(jobs))
        self.data_dir, self.device = data_dir, device
        self.emit = emit or (lambda e: None)
        self.stop_event = stop_event or threading.Event()
        self.all_steps = suite(profile)
        self.by_key = {s.key: s for s in self.all_steps}
        selected = self._select(self.all_steps, only)
        self.groups = stack_groups(selected, profile) if stack else {}
        self.steps = ordered(selected, profile, order, self.groups)

    @staticmethod
    def _select(steps: list[Step], only: list[str] | None) -> list[Step]:
        if not only:
            return steps
        wanted = {c.strip().upper() for c in only if c.strip()}
        known = {c for s in steps for c in s.claims}
        unknown = sorted(wanted - known)
        if unknown:
            raise UserError(f"--only: unknown claim id(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        by_key = {s.key: s for s in steps}
        keep: set[str] = set()

        def need(key: str) -> None:
            if key in keep:
                return
            keep.add(key)
            for parent in by_key[key].needs:
                need(parent)

        for s in steps:
            if wanted & set(s.claims):
                need(s.key)
        return [s for s in steps if s.key in keep]

    def run(self, executor: "Executor | None" = None) -> dict[str, int]:
        """Run (or reuse) every selected step; returns step key -> run id.

        Steps start in their order (the suite's, or ``order="shortest"``: the least counted work first,
        :mod:`.order`) as soon as every step they read has finished (parents before children), up to the executor's capacity at once: :class:`~tui_adv.executor.InlineExecutor`
        (one at a time, in this process; the default, ``jobs = 1``) or
        :class:`~tui_adv.executor.LocalPoolExecutor` (``jobs`` worker processes)."""
        from ..executor import InlineExecutor, LocalPoolExecutor, StepOutcome, StepTask
        from ..runner import resolve_device

        device = resolve_device(self.device)
        own = executor is None
        if executor is None:
            executor = InlineExecutor(self.store, self.emit, self.stop_event) if self.jobs <= 1 else LocalPoolExecutor(self.jobs)
        done: dict[str, Run] = {}
        t0 = time.perf_counter()
        pending = list(self.steps)
        running: dict[str, tuple[Any, float]] = {}
        # what a stack group brought beyond the capacity when it came up (its members that resume alone,
        # each from its own checkpoint, and the stack of the others): (keys, task), submitted as workers free up
        deferred: list[tuple[list[str], Any]] = []
        started = 0
        stopping = False
        try:
            while pending or running or deferred:
                if self.stop_event.is_set() and not stopping:
                    stopping = True
                    executor.stop()
                if stopping:
                    pending = []
                    for keys, _ in deferred:
                        for key in keys:
                            self.emit({"type": "step_end", "key": key, "run_id": None, "status": "not started (the suite stopped)", "seconds": 0.0})
                    deferred = []
                progressed = False
                while deferred and len(running) < executor.capacity:
                    keys, task = deferred.pop(0)
                    running[task.key] = (keys, executor.submit(task), time.perf_counter())
                    progressed = True
                # the steps not finished yet: a child waits for them (a stack's members are one running entry)
                waiting = {s.key for s in pending} | {k for keys, _, _ in running.values() for k in keys} | {k for keys, _ in deferred for k in keys}
                for step in list(pending):
                    if len(running) >= executor.capacity:
                        break
                    if step not in pending:
                        continue  # taken into a stack with an earlier step of its group
                    if any(k in waiting for k in step.needs):
                        continue  # a parent has not finished yet
                    group = [s for s in pending if s.key in self.groups.get(step.key, ())] or [step]
                    fresh: list[StepTask] = []
                    for member in group:
                        pending.remove(member)
                        started += 1
                        progressed = True
                        self.emit({"type": "step_start", "key": member.key, "index": started, "steps": len(self.steps), "claims": member.claims})
                        task = self._task(member, done, device)
                        if isinstance(task, Run):  # reused: its children may start in this pass
                            done[member.key] = task
                            waiting.discard(member.key)
                            self.emit({"type": "step_end", "key": member.key, "run_id": task.id, "status": "reused", "seconds": 0.0})
                        elif task is None:
                            waiting.discard(member.key)
                            self.emit({"type": "step_end", "key": member.key, "run_id": None, "status": "skipped (a parent run is missing)", "seconds": 0.0})
                        elif task is False:  # its dataset is not in the data root (step_end already said what to put where)
                            waiting.discard(member.key)
                        elif len(group) > 1 and task.resume_run_id is None:
                            fresh.append(task)  # trained with the rest of its group, below
                        elif len(group) > 1 and len(running) >= executor.capacity:
                            deferred.append(([member.key], task))  # resumes alone once a worker is free
                        else:
                            st = time.perf_counter()  # (an inline executor runs the step within submit)
                            running[member.key] = ([member.key], executor.submit(task), st)
                    keys = [t.key for t in fresh]
                    unit: StepTask | None = fresh[0] if len(fresh) == 1 else None
                    if len(fresh) > 1:
                        self.emit({"type": "log", "message": f"{len(keys)} steps trained as one stack: {', '.join(keys)}"})
                        unit = StepTask(**{**self._base(fresh[0].key, device), "key": "+".join(keys), "claims": sorted({c for t in fresh for c in t.claims})},
                                        members=fresh)
                    if unit is not None:
                        if len(running) >= executor.capacity:
                            deferred.append((keys, unit))
                        else:
                            running[unit.key] = (keys, executor.submit(unit), time.perf_counter())
                    if self.stop_event.is_set():
                        break
                for e in executor.poll_events():
                    self.emit(e)
                for key, (keys, handle, st) in list(running.items()):
                    if not handle.done():
                        continue
                    del running[key]
                    progressed = True
                    out = handle.result()
                    # a stack's outcome has one per member (none when it failed before its runs existed)
                    for one in out.members or [StepOutcome(k, out.run_id, out.status, out.seconds, out.error) for k in keys]:
                        self._finished(one, st, done)
                if not progressed:
                    time.sleep(0.05)
        finally:
            if own:
                executor.shutdown()
        for e in executor.poll_events():
            self.emit(e)
        self.emit({"type": "suite_end", "seconds": time.perf_counter() - t0, "runs": {k: r.id for k, r in done.items()}})
        return {k: int(r.id) for k, r in done.items()}

    def _finished(self, out: "StepOutcome", started: float, done: dict[str, Run]) -> None:
        if out.status == RunStatus.COMPLETED:
            done[out.key] = self.store.get_run(out.run_id)
        ev = {"type": "step_end", "key": out.key, "run_id": out.run_id, "status": out.status, "seconds": time.perf_counter() - started}
        if out.error and out.status == RunStatus.FAILED:
            ev["error"] = out.error
        self.emit(ev)
        if out.status == RunStatus.CANCELLED:
            self.stop_event.set()  # a cancelled step stops the suite (its run keeps a checkpoint)

    def _base(self, key: str, device: torch.device) -> dict[str, Any]:
        return dict(key=key, profile=self.profile, db_url=self.store.url, data_dir=self.data_dir, device=str(device))

    def _parent(self, key: str, done: dict[str, Run]) -> Run | None:
        """A parent: run (or reused) by this pass, else the catalog's run of the step's experiment."""
        if key in done:
            return done[key]
        step = self.by_key[key]
        if step.config:
            return find_completed(self.store, key, self.profile, step_config(step, self.profile).to_json())
        return find_completed(self.store, key, self.profile)

    def _have(self, dataset: str, step: Step) -> bool:
        """Whether the data root holds a dataset other than MNIST; a step on a dataset that is not there
        is skipped (its claims stay NOT RUN) with the one line that says what to put where."""
        from ..core.data import check_dataset

        try:
            check_dataset(dataset, self.data_dir)
        except UserError as e:
            self.emit({"type": "step_end", "key": step.key, "run_id": None, "status": f"skipped ({e})", "seconds": 0.0})
            return False
        return True

    def _task(self, step: Step, done: dict[str, Run], device: torch.device) -> "StepTask | Run | None | bool":
        """What to do with a step whose parents have finished: a finished run of the same experiment to
        reuse, None (a parent run is missing: skipped), or the task that runs it."""
        from ..executor import StepTask

        base = {**self._base(step.key, device), "claims": list(step.claims)}
        if step.config or step.retrain_of:
            source = self._parent(step.retrain_of, done) if step.retrain_of else None
            if step.retrain_of and source is None:
                return None
            cfg = step_config(step, self.profile, source)
            if cfg.data.dataset != "mnist" and not self._have(cfg.data.dataset, step):
                return False
            if not self.fresh:
                existing = find_completed(self.store, step.key, self.profile, cfg.to_json())
                if existing is not None:
                    return existing
            stopped = None if self.fresh else find_resumable(self.store, cfg.to_json())
            return StepTask(**base, config_json=cfg.to_json(), parent_id=None if source is None else int(source.id),
                            resume_run_id=None if stopped is None else int(stopped.id))
        parents = {role: self._parent(key, done) for role, key in step.parents.items()}
        if any(r is None for r in parents.values()):
            return None
        if not self.fresh:
            existing = find_completed(self.store, step.key, self.profile, analysis_config_json(step, parents))
            if existing is not None:
                return existing
        return StepTask(**base, analysis=step.analysis, params=dict(step.params), parent_ids={role: int(r.id) for role, r in parents.items()})
