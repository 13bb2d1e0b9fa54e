"""``adv-tui reproduce --plan``: what a profile would run, and how long each step should take here.

Nothing is trained and nothing is written. For every selected step: its kind (training, retrain of an
early-stopped parent, analysis), the steps it reads, its epochs (the most it may run: early stopping can
end it sooner, a continuation adds up to ``max_epochs``), its images per epoch, the device, and an
estimate of its seconds on this device.

The estimate comes from a short **calibration measured now** (:mod:`tui_adv.calibration`): for each distinct model and training mode
of the profile, the real :class:`~tui_adv.core.train.Trainer` trains a few batches of random images on
the device (after a warm-up), and the model's forward and FGSM direction are timed on 500 images (once per model).
Then a step costs ``epochs × batches × seconds per batch`` + its per-epoch evaluation (clean forward,
and the FGSM direction + forward when ``train.eval_adv``) + its protocol matrix every ``matrix_every``
epochs + its sweep (per reading and mask draw: one direction + one forward per ε) on the test images.
An analysis is estimated from its parents' forward/direction rates. Early stopping makes the estimate
an upper bound; data loading, catalog writes and checkpoints are not in it.

With ``jobs > 1`` the calibration runs at the workers' thread count (cores // jobs) and the total is
the makespan of the same list schedule the scheduler uses (a step starts when its parents are done and
a worker is free), assuming steps do not slow each other beyond that thread split.

With ``stack`` (``reproduce --stack --plan``) the steps the suite would train as one stack are marked
with their group (``stack``), each member's training batches are estimated from a calibration of the
stacked step itself (:class:`~tui_adv.core.stacked.StackedTrainer`, all K members, a few batches) divided
by K, and the makespan counts the group as one task on one worker.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .calibration import _Rates, _cal_key, _calibrate, _calibrate_stack, _flop_rates, _matrix_rate
from .config import RunConfig
from .reproduce import stack_groups, step_config, suite




@dataclass
class PlanStep:
    key: str
    kind: str  # train | retrain | analysis
    parents: list[str]
    claims: list[str]
    model: str
    mode: str | None
    epochs: int | None  # the configured epochs (max; early stopping may stop sooner)
    max_epochs: int | None  # epochs + the continuation's bound
    train_images: int | None
    batch_size: int | None
    sweep_readings: int
    device: str
    estimate_s: float
    note: str = ""
    # the step's matrix-product work (training, evaluations, matrix, sweep) in GFLOP, from the layer shapes
    # (tui_adv.core.flops; None for a model with convolutions): the floor of its time is gflop / matrix rate
    gflop: float | None = None
    stack: str = ""  # --stack: the group it trains with (e.g. "ensemble@s0…s11 (12)"), "" when alone

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    profile: str
    device: str
    jobs: int
    threads: int
    calibration_s: float
    steps: list[PlanStep] = field(default_factory=list)
    total_estimate_s: float = 0.0  # one step after the other
    makespan_estimate_s: float = 0.0  # with ``jobs`` workers
    gflop: float = 0.0  # the steps' matrix-product work, where counted (the MLPs)
    matrix_rate_gflops: float = 0.0  # this device's float32 matrix rate, measured with the calibration
    floor_s: float = 0.0  # gflop / matrix_rate_gflops: the time the counted work takes at that rate, one step after another

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = [s.as_dict() for s in self.steps]
        return d

    def to_json(self) -> str:
        return json.dumps(self.as_dict())


# ------------------------------------------------------------------------------------------------ data sizes
class _Sizes:
    """Image counts of a data config (train, valid, test), from the real labels, loaded once."""

    def __init__(self, data_dir: str | None):
        from .core.data import load_mnist

        d = load_mnist(data_dir, "cpu")
        self.ytr, self.yte = d.train.y, d.test.y

    def of(self, cfg: RunConfig) -> tuple[int, int, int]:
        from .core.data import TRAIN_SIZE

        dc = cfg.data
        ytr, yte = self.ytr, self.yte
        if dc.pair is not None:
            a, b = dc.pair
            keep_tr = (ytr == a) | (ytr == b)
            n_train_all = int(keep_tr.sum())
            n_valid = int(keep_tr[TRAIN_SIZE:].sum()) if dc.validation else 0
            n_test = int(((yte == a) | (yte == b)).sum())
        elif dc.dataset != "mnist":  # another dataset's counts from its spec (its labels need not be here)
            from .core.data import valid_size
            from .core.datasets import dataset_spec

            spec = dataset_spec(dc.dataset)
            n_train_all, n_test = spec.n_train, spec.n_test
            n_valid = valid_size(n_train_all) if dc.validation else 0
        else:
            n_train_all, n_valid, n_test = len(ytr), (len(ytr) - TRAIN_SIZE if dc.validation else 0), len(yte)
        n_train = n_train_all - n_valid
        if dc.train_limit is not None:
            n_train = min(n_train, dc.train_limit)
        if dc.test_limit is not None:
            n_test = min(n_test, dc.test_limit)
            n_valid = min(n_valid, dc.test_limit)
        return n_train, n_valid, n_test


# ------------------------------------------------------------------------------------------------ estimates
def _training_estimate(cfg: RunConfig, sizes: tuple[int, int, int], r: _Rates, epochs: int) -> float:
    n_train, n_valid, n_test = sizes
    t = cfg.train
    batches = math.ceil(n_train / t.batch_size) if n_train else 0
    eval_n = n_valid if cfg.data.validation else n_test
    if t.eval_limit is not None:
        eval_n = min(eval_n, t.eval_limit)
    per_eval = eval_n * (r.forward_s + ((r.direction_s + r.forward_s) if t.eval_adv else 0.0))
    total = epochs * (batches * r.step_s + per_eval)
    if t.matrix_every:
        gradients = 2 if cfg.has_dropout else 1
        total += (epochs // t.matrix_every) * gradients * n_test * (r.direction_s + 2 * r.forward_s)
    if t.mode == "augment":
        total += t.augment_ratio * n_train * r.direction_s
        total += max(0, epochs - (t.augment_after if t.augment_after is not None else epochs // 2)) * batches * t.augment_ratio * r.step_s
    if cfg.sweep.enabled:
        eps = len(set(cfg.sweep.epsilons))
        for reading in cfg.readings():
            total += reading.masks * n_test * (r.direction_s + eps * r.forward_s)
    return total


_ANALYSIS_PASSES = {  # (directions, forwards) per test image and parent model, roughly what each analysis does
    "transfer": (1, 2),
    "ensemble": (4, 6),
    "logit_curve": (1, 20),
    "sweep": (1, 7),
    "rubbish": (0, 0.1),
    "weights": (0, 0),
}


def build_plan(profile: str, *, only: list[str] | None = None, device: str = "auto", data_dir: str | None = None, jobs: int = 1,
               stack: bool = False, order: str = "suite") -> Plan:
    """The plan of ``profile`` (``only``: the claims' steps and their parents) on ``device``, calibrated now;
    its steps listed (and its makespan simulated) in the order they would start (``order``)."""
    from .reproduce import Reproducer
    from .runner import resolve_device

    dev = resolve_device(device)
    rep = Reproducer.__new__(Reproducer)  # only its step selection
    steps = rep._select(suite(profile), only)
    by_key = {s.key: s for s in steps}
    groups = stack_groups(steps, profile) if stack else {}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    jobs = max(1, int(jobs))
    threads = max(1, cores // jobs) if jobs > 1 else torch.get_num_threads()
    sizes_of = _Sizes(data_dir)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    rates: dict[str, _Rates] = {}
    eval_rates: dict[str, tuple[float, float]] = {}
    t_cal = time.perf_counter()
    out: list[PlanStep] = []
    cfgs: dict[str, tuple[RunConfig, tuple[int, int, int], int]] = {}
    flop_rates: dict[str, _Rates | None] = {}  # per model and mode, as the calibration's rates
    flops: dict[str, _Rates | None] = {}  # per step (its analyses read them)
    try:
        for s in steps:
            if s.config or s.retrain_of:
                parent = by_key.get(s.retrain_of) if s.retrain_of else None
                base = s if parent is None else parent
                cfg = step_config(base, profile)
                note = ""
                if parent is not None:  # the parent's recipe on all training images, for (at most) its epochs
                    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"validation": False}),
                                                 "sweep": cfg.sweep.model_copy(update={"enabled": True})})
                    note = f"epochs = {s.retrain_of}'s best epoch (at most {cfg.train.epochs})"
                elif cfg.train.early_stopping:
                    note = f"early stopping on {cfg.train.early_stopping.metric}, patience {cfg.train.early_stopping.patience}"
                sizes = sizes_of.of(cfg)
                classes = 2 if cfg.data.pair else 10
                key = _cal_key(cfg, classes)
                if key not in rates:
                    rates[key] = _calibrate(cfg, classes, dev, eval_rates)
                epochs = cfg.train.epochs
                max_epochs = epochs + (cfg.train.continuation.max_epochs if cfg.train.continuation and parent is None else 0)
                r = rates[key]
                group = groups.get(s.key, [])
                if group:  # its training batches are the stack's, shared by its K members
                    skey = f"{key}|stack{len(group)}"
                    if skey not in rates:
                        rates[skey] = _Rates(_calibrate_stack(cfg, classes, len(group), dev) / len(group), r.forward_s, r.direction_s)
                    r = rates[skey]
                    note = (note + "; " if note else "") + f"trained with {len(group) - 1} more as one stack"
                est = _training_estimate(cfg, sizes, r, max_epochs)
                if key not in flop_rates:
                    flop_rates[key] = _flop_rates(cfg, classes)
                flops[s.key] = fr = flop_rates[key]
                gflop = None if fr is None else _training_estimate(cfg, sizes, fr, max_epochs) / 1e9
                if cfg.train.continuation and parent is None:
                    note = (note + "; " if note else "") + f"continuation on all training images, up to {cfg.train.continuation.max_epochs} epochs"
                cfgs[s.key] = (cfg, sizes, classes)
                out.append(PlanStep(
                    key=s.key, kind="retrain" if parent is not None else "train", parents=list(s.needs), claims=list(s.claims),
                    model=_model_name(cfg), mode=cfg.train.mode, epochs=epochs, max_epochs=max_epochs,
                    train_images=sizes[0] + (sizes[1] if cfg.train.continuation and parent is None else 0),
                    batch_size=cfg.train.batch_size, sweep_readings=sum(r.masks for r in cfg.readings()) if cfg.sweep.enabled else 0,
                    device=str(dev), estimate_s=round(est, 2), note=note, stack=_group_label(group),
                    gflop=None if gflop is None else round(gflop, 1),
                ))  # fmt: skip
            else:
                dirs, fwds = _ANALYSIS_PASSES.get(s.analysis, (1, 1))
                est, gflop = 0.0, 0.0
                for p in s.parents.values():
                    if p in cfgs:
                        cfg, sizes, classes = cfgs[p]
                        r = rates[_cal_key(cfg, classes)]
                        est += 10_000 * (dirs * r.direction_s + fwds * r.forward_s)
                        fr = flops.get(p)
                        gflop = None if fr is None or gflop is None else gflop + 10_000 * (dirs * fr.direction_s + fwds * fr.forward_s) / 1e9
                out.append(PlanStep(key=s.key, kind="analysis", parents=list(s.needs), claims=list(s.claims), model=s.analysis or "",
                                    mode=None, epochs=None, max_epochs=None, train_images=None, batch_size=None, sweep_readings=0,
                                    device=str(dev), estimate_s=round(est, 2), note="loads its parents' models",
                                    gflop=None if gflop is None else round(gflop, 1)))
    finally:
        torch.set_num_threads(saved_threads)
    from .reproduce.order import ordered

    rank = {s.key: i for i, s in enumerate(ordered(steps, profile, order, groups))}
    out.sort(key=lambda p: rank[p.key])
    plan = Plan(profile=profile, device=str(dev), jobs=jobs, threads=threads, calibration_s=round(time.perf_counter() - t_cal, 2), steps=out)
    plan.total_estimate_s = round(sum(s.estimate_s for s in out), 1)
    plan.makespan_estimate_s = round(makespan(out, jobs), 1)
    plan.gflop = round(sum(s.gflop or 0.0 for s in out), 1)
    plan.matrix_rate_gflops = round(_matrix_rate(dev), 1)
    plan.floor_s = round(plan.gflop / plan.matrix_rate_gflops, 1) if plan.matrix_rate_gflops else 0.0
    return plan


def _group_label(keys: list[str]) -> str:
    if not keys:
        return ""
    stem = os.path.commonprefix(keys)
    return f"{keys[0]}…{keys[-1][len(stem):]} ({len(keys)})" if stem else f"{keys[0]}… ({len(keys)})"


def _as_units(steps: list[PlanStep]) -> list[PlanStep]:
    """The steps as the scheduler submits them: a stack's members as one step (the sum of their
    estimates, on one worker), the steps that read a member reading the stack."""
    from dataclasses import replace

    unit = {s.key: s.stack for s in steps if s.stack}
    out: list[PlanStep] = []
    merged: dict[str, PlanStep] = {}
    for s in steps:
        parents = list(dict.fromkeys(unit.get(p, p) for p in s.parents))
        if s.stack in merged:
            merged[s.stack].estimate_s += s.estimate_s
            continue
        one = replace(s, key=s.stack or s.key, parents=parents)
        if s.stack:
            merged[s.stack] = one
        out.append(one)
    return out


def makespan(steps: list[PlanStep], jobs: int) -> float:
    """The finish time of the scheduler's list schedule: steps in order, each starting when its parents
    have finished and one of ``jobs`` workers is free (a stack's members as one step)."""
    steps = _as_units(steps)
    finish: dict[str, float] = {}
    free = [0.0] * max(1, jobs)
    pending = list(steps)
    clock = 0.0
    running: list[tuple[float, str]] = []
    while pending or running:
        started = False
        for s in list(pending):
            if len(running) >= len(free):
                break
            if any(p not in finish for p in s.parents if any(q.key == p for q in steps)):
                continue
            pending.remove(s)
            running.append((clock + s.estimate_s, s.key))
            started = True
        if not running:
            break  # a parent outside the plan that never finishes: nothing more can start
        if not started or len(running) >= len(free) or not pending:
            running.sort()
            t, key = running.pop(0)
            clock = max(clock, t)
            finish[key] = t
    return max(finish.values(), default=0.0)


def _model_name(cfg: RunConfig) -> str:
    m = cfg.model
    if m.kind == "maxout":
        p = cfg.model.params()
        return f"maxout {p.get('units', 240)}x{p.get('pieces', 5)}x{p.get('layers', 2)}"
    return m.kind
