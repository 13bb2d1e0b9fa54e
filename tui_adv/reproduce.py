"""The reproduction suite: every experiment behind the claims of ``claims.md``, in two profiles.

- ``paper``: full scale (the pylearn2 maxout recipe with early stopping, 1600-unit networks, 5 seeds for
  P08, 12 ensemble members); meant for a GPU.
- ``quick``: the same experiments at a scale that finishes on a 2-core CPU in about 20 minutes.

A step is either a training run (a config from ``configs/`` plus the profile's overrides) or an
analysis of earlier runs (transfer, ensemble, rubbish class, logit curve, weight images, a re-sweep with
predicted labels). Every step is a catalog run: ``experiment`` = the step key, ``profile`` = the profile,
analysis runs point to their parents. A finished step whose config is identical is reused unless
``fresh``.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .catalog.schema import Run, utcnow
from .catalog.store import Store
from .config import apply_overrides, validate
from .errors import UserError

Emit = Callable[[dict[str, Any]], None]
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
PROFILES = ("quick", "standard", "paper")
# what identifies a run's experiment: the config without its labels
_LABEL_KEYS = ("name", "description", "claims", "experiment", "profile")


@dataclass
class Step:
    key: str
    config: str | None = None  # a file in configs/ (training step)
    overrides: dict[str, Any] = field(default_factory=dict)
    analysis: str | None = None  # analysis kind
    parents: dict[str, str] = field(default_factory=dict)  # role -> step key
    params: dict[str, Any] = field(default_factory=dict)
    # a training step that retrains ``retrain_of``'s config without a validation split (all training
    # images), without early stopping, for the number of epochs that run early-stopped at (P08)
    retrain_of: str | None = None
    claims: list[str] = field(default_factory=list)  # filled from the claims that read this step

    @property
    def needs(self) -> list[str]:
        """The step keys whose runs this step reads (analysis parents, the run it retrains)."""
        return [*self.parents.values(), *([self.retrain_of] if self.retrain_of else [])]


def _maxout_quick(epochs: int, **extra: Any) -> dict[str, Any]:
    return {"train.epochs": epochs, "train.eval_limit": 2000, "sweep.samples": 8, **extra}


def seeds(profile: str) -> int:
    """How many seeds of the 1600-unit adversarial model (P08 and the claims read from it)."""
    return 5 if profile == "paper" else 2


def _steps(profile: str) -> list[Step]:
    """Every step the suite knows, for a profile, parents before the steps that read them. Which of them
    run is decided by the claims (:func:`suite`)."""
    if profile not in PROFILES:
        raise UserError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    q = profile != "paper"  # standard is quick but for the two 240-unit maxouts
    es_naive = {"data.validation": True, "train.early_stopping": {"metric": "valid_error", "patience": 3 if q else 100}}
    es_adv = {"data.validation": True, "train.early_stopping": {"metric": "valid_adv_error", "patience": 3 if q else 100}}
    # the recipe at full length: the first 50k, early stopping with patience 100 on the whole validation
    # split; the paper profile then continues on all 60k (mnist_pi_continued.yaml)
    recipe = {"data.validation": True, "train.early_stopping": {"metric": "valid_error", "patience": 100}, "train.eval_limit": None, "train.matrix_every": 25}
    if profile == "quick":
        maxout240 = _maxout_quick(12, **es_naive)
    elif profile == "standard":
        maxout240 = {**recipe, "train.epochs": 250, "sweep.samples": 8}
    else:
        maxout240 = {**recipe, "train.epochs": 1000, "train.continuation": {"max_epochs": 500}}
    m1600_quick = {"data.train_limit": 10000, "sweep.epsilons": [0.0, 0.25], "sweep.matrix_masks": 1}
    noise_quick = {"sweep.epsilons": [0.0, 0.25], "sweep.matrix_masks": 1}
    steps = [
        Step("softmax", "softmax.toml"),
        Step("logreg_3v7", "logreg_3v7.toml"),
        Step("rbf", "rbf.toml"),
        Step("maxout", "maxout.toml", maxout240),
        Step("maxout_adv", "maxout_adv.toml", maxout240),
        Step("maxout_sigmoid", "maxout_sigmoid.toml", _maxout_quick(12, **es_naive) if q else {"train.epochs": 1000, **es_naive}),
        Step("maxout_l1", "maxout_l1.toml", _maxout_quick(2) if q else {}),
        # (quick: P13/P14 read ε = .25 only, one dropout mask draw per reading)
        Step("maxout_sign_noise", "maxout_sign_noise.toml", _maxout_quick(5, **noise_quick) if q else {}),
        Step("maxout_uniform_noise", "maxout_uniform_noise.toml", _maxout_quick(5, **noise_quick) if q else {}),
        Step("maxout1600", "maxout1600.toml", _maxout_quick(3, **m1600_quick) if q else {"train.epochs": 1000, **es_naive}),
    ]
    # P08: early stopping on adversarial validation error, then the same recipe on all 60k for the
    # epoch count early stopping chose; P08-P12 read the retrained runs (mean ± spread over the seeds)
    for s in range(seeds(profile)):
        steps.append(
            Step(f"maxout1600_adv_es@s{s}", "maxout1600_adv.toml",
                 {**_maxout_quick(3, **m1600_quick), "seed": s, "sweep.enabled": False,
                  "data.validation": True, "train.early_stopping": {"metric": "valid_adv_error", "patience": 1}} if q
                 else {"seed": s, "train.epochs": 1000, "sweep.enabled": False, **es_adv})
        )
        steps.append(Step(f"maxout1600_adv@s{s}", retrain_of=f"maxout1600_adv_es@s{s}"))
    for s in range(12):
        steps.append(
            Step(f"ensemble@s{s}", "maxout.toml",
                 {**_maxout_quick(3, **{"data.train_limit": 20000}), "seed": 100 + s, "sweep.enabled": False} if q
                 else {"seed": 100 + s, "sweep.enabled": False})
        )
    steps += [
        Step("inception", "inception.toml",
             {"data.train_limit": 8000, "data.test_limit": 2000, "train.epochs": 2, "train.eval_limit": 1000} if q else {}),
        Step("softmax_analytic", "softmax_analytic.toml"),
        Step("softmax_augment", "softmax_augment.toml"),
        Step("logreg_0v1", "logreg_0v1.toml"),
        Step("logreg_0v1_analytic", "logreg_0v1_analytic.toml"),
        Step("maxout_augment", "maxout_augment.toml", _maxout_quick(5) if q else {}),
        # analyses of the runs above
        Step("transfer_maxout_to_softmax", analysis="transfer", parents={"source": "maxout", "target": "softmax"}),
        Step("transfer_maxout_to_rbf", analysis="transfer", parents={"source": "maxout", "target": "rbf"}),
        Step("ensemble", analysis="ensemble", parents={f"m{s}": f"ensemble@s{s}" for s in range(12)}),
        Step("rubbish", analysis="rubbish", parents={"maxout": "maxout", "softmax": "softmax", "rbf": "rbf", "maxout_sigmoid": "maxout_sigmoid"}),
        Step("logit_curve", analysis="logit_curve", parents={"model": "maxout"}, params={"digit": 4}),
        Step("weights", analysis="weights", parents={"logreg_3v7": "logreg_3v7", "maxout": "maxout", "maxout_adv": "maxout_adv"}),
        Step("softmax_augment_predicted", analysis="sweep", parents={"model": "softmax_augment"},
             params={"labels": "predicted", "epsilons": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]}),
    ]
    # P11/P12 on the 1600-unit models: the naive 1600 (the paper's "original model") and each seed
    for s in range(seeds(profile)):
        steps.append(Step(f"transfer_naive_to_adv@s{s}", analysis="transfer", parents={"source": "maxout1600", "target": f"maxout1600_adv@s{s}"}))
        steps.append(Step(f"transfer_adv_to_naive@s{s}", analysis="transfer", parents={"source": f"maxout1600_adv@s{s}", "target": "maxout1600"}))
    return steps


def step_reads(pattern: str, keys: list[str]) -> list[str]:
    """The step keys a claim's read names: a key, or ``prefix@*`` for every seed of a step."""
    if pattern.endswith("@*"):
        return [k for k in keys if k.startswith(pattern[:-1])]
    return [k for k in keys if k == pattern]


def suite(profile: str) -> list[Step]:
    """The ordered steps of a profile: exactly the steps the claims read (``Claim.reads``), and what those
    need, parents before the analyses that use them. Each step lists the claims that read it."""
    from .claims import CLAIMS

    steps = _steps(profile)
    keys = [s.key for s in steps]
    by_key = {s.key: s for s in steps}
    wanted: set[str] = set()

    def need(key: str, claim: str) -> None:
        wanted.add(key)
        if claim not in by_key[key].claims:
            by_key[key].claims.append(claim)
            for k in by_key[key].needs:
                need(k, claim)

    for c in CLAIMS:
        for pattern in c.reads:
            found = step_reads(pattern, keys)
            if not found:
                raise AssertionError(f"claim {c.id} reads {pattern!r}, which no step of the {profile} profile makes")
            for k in found:
                need(k, c.id)
    return [s for s in steps if s.key in wanted]


def step_config(step: Step, profile: str, retrain_from: Run | None = None):
    """The validated config of a training step. For a retrain step, ``retrain_from`` is the finished
    early-stopped run: its config, all training images, no early stopping, its best epoch count."""
    import tomllib

    if step.retrain_of is not None:
        if retrain_from is None:
            raise UserError(f"step {step.key} retrains {step.retrain_of}, which has no completed run")
        raw = json.loads(retrain_from.config_json)
        best = json.loads(retrain_from.summary_json or "{}").get("best_epoch")
        if not best:
            raise UserError(f"run {retrain_from.id} ({step.retrain_of}) recorded no best epoch to retrain for")
        raw.setdefault("data", {})["validation"] = False
        raw.setdefault("train", {})["early_stopping"] = None
        raw["train"]["continuation"] = None
        raw.setdefault("sweep", {})["enabled"] = True  # the retrained run is the one measured
        raw["train"]["epochs"] = int(best)
        raw["description"] = f"{step.retrain_of} retrained on all training images for its best epoch count ({int(best)}) [run {retrain_from.id}]"
        path = Path(f"<retrain of run {retrain_from.id}>")
    else:
        path = CONFIG_DIR / step.config
        if not path.is_file():
            raise UserError(f"the suite needs {path}, which is missing")
        raw = tomllib.loads(path.read_text())
        raw.setdefault("name", path.stem)
        flat = [f"{k}={json.dumps(v) if not isinstance(v, dict) else _toml_inline(v)}" for k, v in step.overrides.items() if v is not None]
        raw = apply_overrides(raw, flat)
        for k, v in step.overrides.items():  # None: drop the key (back to the default)
            if v is None:
                *head, last = k.split(".")
                node = raw
                for h in head:
                    node = node.get(h, {})
                node.pop(last, None)
    raw["name"] = f"{profile}:{step.key}"
    raw["experiment"] = step.key
    raw["profile"] = profile
    raw["claims"] = step.claims
    return validate(raw, str(path))


def _toml_inline(d: dict) -> str:
    return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + "}"


@functools.lru_cache(maxsize=4096)
def identity(config_json: str) -> str:
    """What makes two runs the same experiment: the config without its labels (name, description,
    claims, experiment, profile). A run of ``configs/softmax.toml`` and the quick profile's softmax step
    have the same identity, so either fills P01."""
    try:
        raw = json.loads(config_json)
    except (TypeError, ValueError):
        return ""
    if not isinstance(raw, dict):
        return ""
    if "model" in raw:  # a run config: validated again, so a key added since (at its default) changes nothing
        try:
            raw = validate(raw).model_dump(mode="json")
        except Exception:  # noqa: BLE001 - a config this version cannot read is compared as stored
            pass
    return json.dumps({k: v for k, v in raw.items() if k not in _LABEL_KEYS}, sort_keys=True)


def analysis_config_json(step: Step, parents: dict[str, Run]) -> str:
    """The stored config of an analysis run: what it computes, from which runs."""
    return json.dumps({"analysis": step.analysis, "parents": {role: int(r.id) for role, r in sorted(parents.items())}, "params": step.params}, sort_keys=True)


def find_completed(store: Store, key: str, profile: str, config_json: str | None = None) -> Run | None:
    """The newest completed run of a step: the same experiment (``config_json``'s identity) made by any
    command, else (no config given) the newest completed run the profile recorded for the step key."""
    rows = store.list_runs(status=["completed"])
    if config_json is not None:
        want = identity(config_json)
        for r in rows:
            if r.status == "completed" and identity(r.config_json) == want:
                return r
        return None
    for r in rows:
        if r.status == "completed" and r.experiment == key and r.profile == profile:
            return r
    return None


def find_resumable(store: Store, config_json: str) -> Run | None:
    """An interrupted or cancelled run of the same experiment that left a checkpoint: a stopped suite
    continues it instead of starting the step again."""
    want = identity(config_json)
    for r in store.list_runs(status=["interrupted", "cancelled"]):
        if identity(r.config_json) == want and r.checkpoint_path and Path(r.checkpoint_path).is_file():
            return r
    return None


# ------------------------------------------------------------------------------------------------ analyses
def _load_test(data_dir: str | None, device: torch.device, limit: int | None = None):
    from .core.data import load_mnist

    return load_mnist(data_dir, device, test_limit=limit).test


def run_analysis(store: Store, step: Step, profile: str, parent_runs: dict[str, Run], *, data_dir: str | None, device: torch.device) -> dict:
    """Compute one analysis; returns (summary, artifacts, sweep points)."""
    from .core import experiments as ex
    from .runner import load_model

    models = {role: load_model(int(r.id), store.url, device=str(device)) for role, r in parent_runs.items()}
    kind = step.analysis
    out: dict[str, Any] = {"summary": {}, "artifacts": {}, "sweep": None}
    if kind == "transfer":
        test = _load_test(data_dir, device)
        res = ex.transfer(models["source"], models["target"], test.x, test.y, eps=0.25)
        out["summary"] = res
    elif kind == "ensemble":
        test = _load_test(data_dir, device)
        members = [models[k] for k in sorted(models, key=lambda k: int(k[1:]))]
        out["summary"] = ex.ensemble_attack(members, test.x, test.y, eps=0.25)
        # the protocol matrix of P18: each reading of the attack, crafted on the ensemble and on member 0
        out["summary"]["readings"] = ex.ensemble_readings(members, test.x, test.y, eps=0.25, seed=0)
    elif kind == "rubbish":
        out["summary"] = {role: ex.rubbish(m, device=device) for role, m in models.items()}
    elif kind == "logit_curve":
        test = _load_test(data_dir, device)
        res = ex.logit_curve(models["model"], test.x, test.y, digit=int(step.params.get("digit", 4)))
        out["artifacts"]["logit_curve"] = res
        out["summary"] = {k: v for k, v in res.items() if k not in ("epsilons", "logits")}
    elif kind == "weights":
        imgs = {role: ex.weight_images(m) for role, m in models.items()}
        out["artifacts"]["weights"] = imgs
        out["summary"] = {f"{role}_localization": v["localization"] for role, v in imgs.items()}
    elif kind == "sweep":
        from .core.sweep import fgsm_sweep

        test = _load_test(data_dir, device)
        res = fgsm_sweep(models["model"], test.x, test.y, step.params["epsilons"], labels=step.params.get("labels", "true"))
        out["sweep"] = (res.labels, [p.as_dict() for p in res.points])
        out["summary"] = {f"accuracy@{p.epsilon:g}": p.accuracy for p in res.points}
    else:
        raise UserError(f"unknown analysis {kind!r}")
    return out


# ------------------------------------------------------------------------------------------------ orchestrator
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
    ):
        self.store, self.profile, self.fresh = store, profile, fresh
        self.data_dir, self.device = data_dir, device
        self.emit = emit or (lambda e: None)
        self.stop_event = stop_event or threading.Event()
        self.all_steps = suite(profile)
        self.by_key = {s.key: s for s in self.all_steps}
        self.steps = self._select(self.all_steps, only)

    def _select(self, steps: list[Step], only: list[str] | None) -> list[Step]:
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

    def run(self) -> dict[str, int]:
        """Run (or reuse) every selected step; returns step key -> run id."""
        from .runner import Runner, resolve_device

        device = resolve_device(self.device)
        done: dict[str, Run] = {}
        t0 = time.perf_counter()

        def completed(key: str) -> Run | None:
            """A parent: run (or reused) by this pass, else the catalog's run of the step's experiment."""
            if key in done:
                return done[key]
            step = self.by_key[key]
            if step.config:
                return find_completed(self.store, key, self.profile, step_config(step, self.profile).to_json())
            return find_completed(self.store, key, self.profile)

        def skip(step: Step) -> None:
            self.emit({"type": "step_end", "key": step.key, "run_id": None, "status": "skipped (a parent run is missing)", "seconds": 0.0})
        for i, step in enumerate(self.steps, 1):
            if self.stop_event.is_set():
                break
            self.emit({"type": "step_start", "key": step.key, "index": i, "steps": len(self.steps), "claims": step.claims})
            st = time.perf_counter()
            if step.config or step.retrain_of:
                source = completed(step.retrain_of) if step.retrain_of else None
                if step.retrain_of and source is None:
                    skip(step)
                    continue
                cfg = step_config(step, self.profile, source)
                existing = None if self.fresh else find_completed(self.store, step.key, self.profile, cfg.to_json())
                if existing is not None:
                    done[step.key] = existing
                    self.emit({"type": "step_end", "key": step.key, "run_id": existing.id, "status": "reused", "seconds": 0.0})
                    continue
                stopped = None if self.fresh else find_resumable(self.store, cfg.to_json())
                if stopped is not None:  # a suite stopped mid-step continues that run from its checkpoint
                    try:
                        runner = Runner.for_resume(self.store, int(stopped.id), data_dir=self.data_dir, device=str(device), emit=self.emit,
                                                   stop_event=self.stop_event)
                        self.emit({"type": "log", "message": f"{step.key}: continuing run {stopped.id} from its checkpoint"})
                    except UserError as e:
                        self.emit({"type": "log", "message": f"{step.key}: run {stopped.id} cannot be continued ({e}); starting it again"})
                        stopped = None
                if stopped is None:
                    runner = Runner(cfg, self.store, data_dir=self.data_dir, device=str(device), emit=self.emit, stop_event=self.stop_event,
                                    parent_id=None if source is None else int(source.id))
                    runner.create()
                status = runner.execute()
                run = self.store.get_run(runner.run_id)
                if status != "completed":
                    self.emit({"type": "step_end", "key": step.key, "run_id": run.id, "status": status, "seconds": time.perf_counter() - st})
                    if status == "cancelled":
                        break
                    continue
                done[step.key] = run
            else:
                parents = {role: completed(key) for role, key in step.parents.items()}
                if any(r is None for r in parents.values()):
                    skip(step)
                    continue
                run = self._analysis(step, parents, device)
                if run is None:
                    continue
                done[step.key] = run
            self.emit({"type": "step_end", "key": step.key, "run_id": done[step.key].id, "status": "completed", "seconds": time.perf_counter() - st})
        self.emit({"type": "suite_end", "seconds": time.perf_counter() - t0, "runs": {k: r.id for k, r in done.items()}})
        return {k: int(r.id) for k, r in done.items()}

    def _analysis(self, step: Step, parents: dict[str, Run], device: torch.device) -> Run | None:
        import os
        import socket
        import traceback

        from .catalog.store import process_start_time
        from .runner import versions

        config_json = analysis_config_json(step, parents)
        config = json.loads(config_json)
        if not self.fresh:
            existing = find_completed(self.store, step.key, self.profile, config_json)
            if existing is not None:
                return existing
        first_parent = next(iter(parents.values()))
        run = self.store.create_run(
            name=f"{self.profile}:{step.key}",
            experiment=step.key,
            profile=self.profile,
            claims=",".join(step.claims),
            config_json=config_json,
            status="running",
            started_at=utcnow(),
            heartbeat_at=utcnow(),
            pid=os.getpid(),
            pid_start=process_start_time(os.getpid()),  # so a long analysis without heartbeats is not taken for dead
            host=socket.gethostname(),
            device=str(device),
            parent_id=first_parent.id,
            versions_json=json.dumps(versions()),
            phase="analysis",
        )
        try:
            out = run_analysis(self.store, step, self.profile, parents, data_dir=self.data_dir, device=device)
        except Exception as e:  # noqa: BLE001 - recorded on the run
            self.store.update_run(run.id, status="failed", finished_at=utcnow(), error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-4000:])
            self.emit({"type": "step_end", "key": step.key, "run_id": run.id, "status": "failed", "seconds": 0.0, "error": str(e)})
            return None
        for kind, data in out["artifacts"].items():
            self.store.set_artifact(run.id, kind, data)
        if out["sweep"] is not None:
            labels, points = out["sweep"]
            self.store.add_sweep_points(run.id, "fgsm", labels, points)
        self.store.log(run.id, f"{step.analysis} of runs {config['parents']}")
        return self.store.update_run(
            run.id, status="completed", finished_at=utcnow(), progress=1.0, phase=None, summary_json=json.dumps(out["summary"])
        )
