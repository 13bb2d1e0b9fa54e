"""The suite's steps: what each profile runs.

This module owns the :class:`Step` definition, the per-profile step tables (:func:`_steps`, :func:`seeds`),
the selection of the steps the claims read (:func:`suite`, :func:`step_reads`), the validated config of a
training step (:func:`step_config`, including the P08 retrain) and the stored config of an analysis
step (:func:`analysis_config_json`). What makes two runs the same experiment is
:mod:`tui_adv.config.identity`. It touches no catalog and runs nothing; :mod:`.orchestrator` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog.schema import Run
from ..choices import PROFILES
from ..config import apply_overrides, validate
from ..config.identity import identity  # noqa: F401 - re-exported: the suite finds runs by it
from ..errors import UserError



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
        # C01 (CIFAR-10; skipped while the data root has no CIFAR-10). quick: a small run of the paper's network
        # (~15 s per batch of 128 on a 2-core CPU: 1000 images, one epoch, 500 test images, ε ∈ {0, .1})
        Step("cifar10_conv_maxout", "cifar10_conv_maxout.toml",
             {"data.train_limit": 1000, "data.test_limit": 500, "train.epochs": 1, "train.eval_limit": 200, "sweep.epsilons": [0.0, 0.1],
              "sweep.samples": 4} if q else {}),
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
    from ..claims import CLAIMS

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
        raw = retrain_from.config()
        best = retrain_from.summary().get("best_epoch")
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
        from ..config import config_dir

        path = config_dir() / step.config
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


def analysis_config_json(step: Step, parents: dict[str, Run]) -> str:
    """The stored config of an analysis run: what it computes, from which runs."""
    return json.dumps({"analysis": step.analysis, "parents": {role: int(r.id) for role, r in sorted(parents.items())}, "params": step.params}, sort_keys=True)
