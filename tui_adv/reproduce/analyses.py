"""The suite's analysis steps: computing one analysis (transfer, ensemble, rubbish class, logit curve,
weight images, a re-sweep with predicted labels) from the models of its parent runs.

This module owns :func:`run_analysis`, which the executor calls (looked up as
``tui_adv.reproduce.run_analysis``) for an analysis step's task; what it returns becomes the analysis
run's summary, artifacts and sweep points.
"""

from __future__ import annotations

from typing import Any

import torch

from ..catalog.schema import Run
from ..catalog.store import Store
from ..errors import UserError
from .steps import Step


def _load_test(data_dir: str | None, device: torch.device, limit: int | None = None):
    from ..core.data import load_mnist

    return load_mnist(data_dir, device, test_limit=limit).test


def run_analysis(store: Store, step: Step, profile: str, parent_runs: dict[str, Run], *, data_dir: str | None, device: torch.device) -> dict:
    """Compute one analysis; returns (summary, artifacts, sweep points)."""
    from ..core import experiments as ex
    from ..checkpoints import load_model

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
        from ..core.sweep import fgsm_sweep

        test = _load_test(data_dir, device)
        res = fgsm_sweep(models["model"], test.x, test.y, step.params["epsilons"], labels=step.params.get("labels", "true"))
        out["sweep"] = (res.labels, [p.as_dict() for p in res.points])
        out["summary"] = {f"accuracy@{p.epsilon:g}": p.accuracy for p in res.points}
    else:
        raise UserError(f"unknown analysis {kind!r}")
    return out
