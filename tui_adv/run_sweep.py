"""A run's sweep phase: every reading of its config's attack (its own, the variants, the protocol
matrix), one FGSM sweep per reading and dropout-mask draw, written point by point through the run's
:class:`~tui_adv.lifecycle.CatalogWriter`; the first reading is the run's headline (summary, samples).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .catalog.schema import Sample
from .catalog.store import combine_draws
from .config import RunConfig
from .core.attacks import mask_generator
from .core.sweep import SampleView, SweepPoint, fgsm_sweep
from .core.train import Cancelled
from .lifecycle import CatalogWriter, Emit

REFERENCE_EPS = 0.25


def sample_row(v: SampleView) -> Sample:
    def u8(t: torch.Tensor) -> bytes:
        return (t.clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes()

    return Sample(
        run_id=0,
        idx=v.index,
        epsilon=v.epsilon,
        label=v.label,
        clean=u8(v.clean),
        sign=(v.sign.sign() + 1).to(torch.uint8).numpy().tobytes(),
        adversarial=u8(v.adversarial),
        clean_pred=v.clean_pred,
        clean_conf=v.clean_conf,
        adv_pred=v.adv_pred,
        adv_conf=v.adv_conf,
    )


def reference_point(points: list[dict], eps: float = REFERENCE_EPS) -> dict | None:
    """The sweep point at ε = .25, else the largest swept ε below it."""
    below = [p for p in points if p["epsilon"] <= eps + 1e-9 and p["epsilon"] > 0]
    return max(below, key=lambda p: p["epsilon"]) if below else None


def sweep_run(run_cfg: RunConfig, model: torch.nn.Module, data, writer: CatalogWriter, share: float, *, emit: Emit,  # noqa: ANN001
              should_stop: Callable[[], bool], save_samples: Callable[[list[Sample]], None]) -> dict:
    """Every reading of the config's sweep (its own, its variants, the protocol matrix), one input
    gradient per reading and mask draw. The first reading is the run's headline (summary, samples)."""
    cfg = run_cfg.sweep
    eps = sorted(set(float(e) for e in cfg.epsilons))
    readings = run_cfg.readings()
    total = sum(len(eps) * r.masks for r in readings)
    emit({"type": "phase", "phase": "sweep", "points": total, "readings": len(readings)})
    writer.progress(phase="sweep")
    done = 0
    headline: list[dict] = []
    by_reading: dict[str, list[list[dict]]] = {}
    for ri, r in enumerate(readings):
        for draw in range(r.masks):
            points: list[dict] = []
            mask = draw if r.gradient == "dropout" else 0

            def on_point(p: SweepPoint, r=r, points=points, mask=mask) -> None:
                nonlocal done
                d = p.as_dict()
                points.append(d)
                done += 1
                writer.sweep_point("fgsm", r.labels, d, gradient=r.gradient, clip=r.clip, cost=r.cost, mask=mask)
                writer.progress(progress=share + (1 - share) * done / total)
                emit({"type": "sweep_point", "attack": "fgsm", "labels": r.labels, "reading": r.name, "mask": mask,
                           "index": done, "points": total, **d})

            first = ri == 0 and draw == 0
            result = fgsm_sweep(
                model,
                data.test.x,
                data.test.y,
                eps,
                labels=r.labels,
                batch_size=cfg.batch_size,
                on_point=on_point,
                sample_indices=range(min(cfg.samples, len(data.test))) if first else (),
                sample_epsilons=cfg.sample_epsilons if first else (),
                should_stop=should_stop,
                gradient=r.gradient,
                clip=r.clip,
                cost=r.cost,
                generator=mask_generator(run_cfg.seed, draw, data.test.x.device) if r.gradient == "dropout" else None,
            )
            if should_stop():
                raise Cancelled()
            if result.samples:
                save_samples([sample_row(s) for s in result.samples])
            by_reading.setdefault(r.name, []).append(points)
            if ri == 0:
                headline.append(points)
    points = combine_draws(headline)
    out: dict[str, Any] = {}
    clean = next((p for p in points if p["epsilon"] == 0), None)
    ref = reference_point(points)
    if clean:
        out.update(clean_error=clean["error"], clean_mean_confidence=clean["mean_confidence"])
    if ref:
        out.update(
            fgsm_epsilon=ref["epsilon"],
            fgsm_error=ref["error"],
            fgsm_mean_confidence=ref["mean_confidence"],
            fgsm_mean_confidence_wrong=ref["mean_confidence_wrong"],
        )
        if len(readings) > 1:  # each reading's value at the reference ε
            out["readings"] = {}
            for name, draws in by_reading.items():
                rp = reference_point(combine_draws(draws))
                if rp:
                    out["readings"][name] = {k: rp.get(k) for k in ("error", "mean_confidence_wrong", "error_spread") if k in rp}
    out["reading"] = readings[0].name
    writer.progress(clean_error=out.get("clean_error"), fgsm_error=out.get("fgsm_error"))
    return out
