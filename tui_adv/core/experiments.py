"""Multi-model analyses of the paper: transfer (P11, P12, P16, P17), ensembles (P18), rubbish-class
samples (P19), the logit curve along one FGSM direction (P20) and weight images (P21).

Each function takes trained models and test tensors and returns plain JSON-able dicts; the reproduce
orchestrator stores them as catalog runs (artifacts + sweep points) whose parents are the model runs.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..config import Reading
from .attacks import eval_mode, fgsm_direction, mask_generator, perturb
from .heads import head_probs
from .sweep import predict


def transfer(
    source: nn.Module, target: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 0.25, batch_size: int = 1000
) -> dict:
    """FGSM examples crafted on ``source`` and scored by ``target`` (P11/P12), plus the agreement
    statistics of P16/P17: among the examples the source misclassifies, how often the target predicts
    the source's (wrong) class; and the same restricted to those the target also gets wrong."""
    d = fgsm_direction(source, x, y, batch_size=batch_size)
    xa = perturb(x, d, eps)
    sp, sc = predict(source, xa, batch_size)
    tp, tc = predict(target, xa, batch_size)
    src_wrong = sp != y
    tgt_wrong = tp != y
    agree = tp == sp
    n_sw = int(src_wrong.sum())
    both = src_wrong & tgt_wrong
    return {
        "epsilon": eps,
        "n": int(len(y)),
        "source_error": float(src_wrong.double().mean()),
        "target_error": float(tgt_wrong.double().mean()),
        "target_mean_confidence_wrong": float(tc[tgt_wrong].double().mean()) if int(tgt_wrong.sum()) else None,
        "agree_on_source_mistakes": float((agree & src_wrong).sum()) / n_sw if n_sw else None,
        "agree_when_both_wrong": float((agree & both).sum()) / int(both.sum()) if int(both.sum()) else None,
    }


class Ensemble(nn.Module):
    """Average of the members' probabilities; logits = log of that average (for FGSM on the ensemble)."""

    head = "softmax"

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([head_probs(m.head, m(x)) for m in self.members]).mean(dim=0)
        return p.clamp_min(1e-30).log()


def ensemble_attack(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, eps: float = 0.25, batch_size: int = 500) -> dict:
    """P18: FGSM error of the ensemble, crafted on the ensemble and crafted on one member (member 0)."""
    ens = Ensemble(members)
    clean_pred, _ = predict(ens, x, batch_size)
    d_ens = fgsm_direction(ens, x, y, batch_size=batch_size)
    p_ens, _ = predict(ens, perturb(x, d_ens, eps), batch_size)
    d_one = fgsm_direction(members[0], x, y, batch_size=batch_size)
    p_one, _ = predict(ens, perturb(x, d_one, eps), batch_size)
    member_clean = [float((predict(m, x, batch_size)[0] != y).double().mean()) for m in members]
    return {
        "epsilon": eps,
        "members": len(members),
        "ensemble_clean_error": float((clean_pred != y).double().mean()),
        "member_clean_errors": member_clean,
        "error_crafted_on_ensemble": float((p_ens != y).double().mean()),
        "error_crafted_on_member": float((p_one != y).double().mean()),
    }


def ensemble_readings(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, eps: float = 0.25, batch_size: int = 500, seed: int = 0) -> dict:
    """P18's protocol matrix: for each reading (gradient eval/dropout × clip on/off), the ensemble's
    FGSM error crafted on the ensemble and crafted on member 0. A dropout gradient of the ensemble draws
    every member's masks (one draw, seeded)."""
    ens = Ensemble(members)
    out = {}
    for gradient in ("eval", "dropout"):
        d_ens = fgsm_direction(ens, x, y, batch_size=batch_size, gradient=gradient, generator=mask_generator(seed, 0, x.device) if gradient == "dropout" else None)
        d_one = fgsm_direction(members[0], x, y, batch_size=batch_size, gradient=gradient,
                               generator=mask_generator(seed, 1, x.device) if gradient == "dropout" else None)
        for clip in (True, False):
            p_ens, _ = predict(ens, perturb(x, d_ens, eps, clip), batch_size)
            p_one, _ = predict(ens, perturb(x, d_one, eps, clip), batch_size)
            out[Reading(gradient=gradient, clip=clip).name] = {
                "error_crafted_on_ensemble": float((p_ens != y).double().mean()),
                "error_crafted_on_member": float((p_one != y).double().mean()),
            }
    return out


@torch.inference_mode()
def rubbish(model: nn.Module, n: int = 10_000, seed: int = 0, threshold: float = 0.5, device: torch.device | str = "cpu") -> dict:
    """P19: n samples of N(0, I₇₈₄) (not clipped to [0,1]); "error" = some class gets p > threshold."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=g).to(device)
    with eval_mode(model):
        probs = torch.cat([head_probs(model.head, model(x[s : s + 1000])) for s in range(0, n, 1000)])
    top = probs.max(dim=1).values
    fooled = top > threshold
    return {
        "n": n,
        "threshold": threshold,
        "error": float(fooled.double().mean()),
        "mean_confidence_fooled": float(top[fooled].double().mean()) if int(fooled.sum()) else None,
        "mean_top_probability": float(top.double().mean()),
    }


@torch.inference_mode()
def _logits_along(model: nn.Module, x: torch.Tensor, d: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    with eval_mode(model):
        return model(x + eps.view(-1, 1, 1, 1) * d)  # unclipped, as in the paper's Fig. 4


def logit_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, digit: int = 4, lo: float = -15.0, hi: float = 15.0, points: int = 121) -> dict:
    """P20: the logits of one test image of ``digit`` along its FGSM direction for ε ∈ [lo, hi], unclipped.

    Reports the curve, the fraction of ε with |ε| ≥ 1 where a wrong class wins, and how linear each
    logit is in ε (R² of a straight-line fit on each side of 0, averaged: piecewise linearity)."""
    idx = int((y == digit).nonzero()[0])
    xi, yi = x[idx : idx + 1], y[idx : idx + 1]
    d = fgsm_direction(model, xi, yi)
    eps = torch.linspace(lo, hi, points, device=x.device)
    logits = _logits_along(model, xi.expand(points, -1, -1, -1), d.expand(points, -1, -1, -1), eps).cpu().double()
    e = eps.cpu().double()
    pred = logits.argmax(dim=1)
    big = e.abs() >= 1.0
    wrong_big = float((pred[big] != digit).double().mean())
    r2 = []
    for side in (e < 0, e > 0):
        es, ls = e[side], logits[side]
        design = torch.stack([es, torch.ones_like(es)], dim=1)
        sol = torch.linalg.lstsq(design, ls).solution
        resid = ls - design @ sol
        ss_res = (resid**2).sum(dim=0)
        ss_tot = ((ls - ls.mean(dim=0)) ** 2).sum(dim=0).clamp_min(1e-12)
        r2.append(float((1 - ss_res / ss_tot).mean()))
    return {
        "index": idx,
        "digit": digit,
        "epsilons": e.tolist(),
        "logits": logits.tolist(),
        "wrong_fraction_abs_eps_ge_1": wrong_big,
        "mean_r2_piecewise": sum(r2) / len(r2),
    }


def localization(weights: torch.Tensor) -> float:
    """How localized a set of 784-pixel filters is: the mean, over filters, of the share of the L1 mass
    held by the 10% largest |w| pixels (1.0 = all in 78 pixels; ≈ .1 for a flat filter)."""
    w = weights.detach().reshape(weights.shape[0], -1).abs().double()
    k = max(1, w.shape[1] // 10)
    top = w.topk(k, dim=1).values.sum(dim=1)
    return float((top / w.sum(dim=1).clamp_min(1e-12)).mean())


def weight_images(model: nn.Module, n: int = 16) -> dict:
    """P21: the first layer's filters as 28×28 images (scaled to [0,1] per filter) + sign(w) images."""
    w = model.first_layer_weight().detach().cpu().reshape(-1, 784)
    if w.shape[0] > n:
        # maxout: the filters with the largest norm (the most used), in a stable order
        order = w.norm(dim=1).topk(n).indices.sort().values
        w = w[order]
    lo, hi = w.min(dim=1, keepdim=True).values, w.max(dim=1, keepdim=True).values
    scaled = (w - lo) / (hi - lo).clamp_min(1e-12)
    return {
        "filters": [[round(float(v), 4) for v in row] for row in scaled],
        "signs": [[int(v) for v in row] for row in w.sign()],
        "localization": localization(model.first_layer_weight()),
    }
