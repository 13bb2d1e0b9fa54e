"""Epsilon sweeps at their lower bound: ONE input gradient for the whole sweep, then one forward per ε.

sign(∇ₓ J) does not depend on ε, so a k-point FGSM sweep costs one forward + one input-only backward +
k forwards, where attack libraries recompute the gradient for every ε. The points equal a per-ε
:func:`~tui_adv.core.attacks.fgsm` recomputation exactly (same batches, same arithmetic).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from .attacks import eval_mode, fgsm_direction, perturb, perturb_sign
from .heads import head_predict


@dataclass
class SweepPoint:
    epsilon: float
    accuracy: float
    error: float
    mean_confidence: float
    mean_confidence_wrong: float | None  # None when nothing was misclassified
    n: int
    n_wrong: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SampleView:
    """One stored example for perturbation views: images as (28, 28) float tensors in [0,1] (a colour
    image: (3, H, W))."""

    index: int
    epsilon: float
    label: int
    clean: torch.Tensor
    sign: torch.Tensor
    adversarial: torch.Tensor
    clean_pred: int
    clean_conf: float
    adv_pred: int
    adv_conf: float


@dataclass
class SweepResult:
    attack: str
    labels: str
    points: list[SweepPoint]
    samples: list[SampleView] = field(default_factory=list)
    gradient: str = "eval"
    clip: bool = True
    cost: str = "train"


def _view(t: torch.Tensor, j: int) -> torch.Tensor:
    """Image j of a batch for a sample view: a grey image as (H, W), as it always was; a colour image
    keeps its channels (3, H, W)."""
    return (t[j, 0] if t.shape[1] == 1 else t[j]).detach().cpu()


def _stats(eps: float, pred: torch.Tensor, conf: torch.Tensor, y: torch.Tensor) -> SweepPoint:
    n = int(y.numel())
    wrong = pred != y
    n_wrong = int(wrong.sum())
    mean_conf_wrong = float(conf[wrong].double().mean()) if n_wrong else None
    return SweepPoint(
        epsilon=float(eps),
        accuracy=(n - n_wrong) / n,
        error=n_wrong / n,
        mean_confidence=float(conf.double().mean()),
        mean_confidence_wrong=mean_conf_wrong,
        n=n,
        n_wrong=n_wrong,
    )


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, confidence) for all of x, in eval mode, batched."""
    with eval_mode(model):
        step = x.shape[0] if not batch_size else batch_size
        preds, confs = [], []
        for s in range(0, x.shape[0], step):
            p, c = head_predict(model.head, model(x[s : s + step]))
            preds.append(p)
            confs.append(c)
    return torch.cat(preds), torch.cat(confs)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> SweepPoint:
    """Clean statistics (as an ε = 0 point)."""
    pred, conf = predict(model, x, batch_size)
    return _stats(0.0, pred, conf, y)


def fgsm_sweep(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: Sequence[float],
    *,
    labels: str = "true",
    batch_size: int | None = 1000,
    on_point: Callable[[SweepPoint], None] | None = None,
    sample_indices: Sequence[int] = (),
    sample_epsilons: Sequence[float] = (),
    should_stop: Callable[[], bool] | None = None,
    gradient: str = "eval",
    clip: bool = True,
    cost: str = "train",
    generator: torch.Generator | None = None,
) -> SweepResult:
    """FGSM error/confidence at every ε of ``epsilons`` over all of (x, y), for one reading of the
    attack (``gradient``, ``clip``, ``cost``; a dropout gradient draws its masks with ``generator``).

    Accuracy counts every point (already-misclassified clean points count as failures).
    ``on_point`` is called as each ε finishes (for live curves). Sample views are recorded for
    ``sample_indices`` at each of ``sample_epsilons``.
    """
    if any(e < 0 or not math.isfinite(e) for e in epsilons):
        raise ValueError("every epsilon must be finite and ≥ 0")
    direction = fgsm_direction(model, x, y, labels=labels, batch_size=batch_size, gradient=gradient, cost=cost, generator=generator)
    n = x.shape[0]
    step = n if not batch_size else batch_size
    points: list[SweepPoint] = []
    with eval_mode(model), torch.inference_mode():
        for eps in epsilons:
            if should_stop is not None and should_stop():
                break
            preds, confs = [], []
            for s in range(0, n, step):
                p, c = head_predict(model.head, model(perturb_sign(x[s : s + step], direction[s : s + step], eps, clip)))
                preds.append(p)
                confs.append(c)
            point = _stats(eps, torch.cat(preds), torch.cat(confs), y)
            points.append(point)
            if on_point is not None:
                on_point(point)
        samples: list[SampleView] = []
        idx = [i for i in sample_indices if 0 <= i < n]
        if idx and sample_epsilons:
            xs, ds = x[idx], direction[idx]
            cp, cc = head_predict(model.head, model(xs))
            for eps in sample_epsilons:
                xa = perturb(xs, ds, eps, clip)
                ap, ac = head_predict(model.head, model(xa))
                for j, i in enumerate(idx):
                    samples.append(
                        SampleView(
                            index=int(i),
                            epsilon=float(eps),
                            label=int(y[i]),
                            clean=_view(xs, j),
                            sign=_view(ds, j),
                            adversarial=_view(xa, j),
                            clean_pred=int(cp[j]),
                            clean_conf=float(cc[j]),
                            adv_pred=int(ap[j]),
                            adv_conf=float(ac[j]),
                        )
                    )
    return SweepResult(attack="fgsm", labels=labels, points=points, samples=samples, gradient=gradient, clip=clip, cost=cost)
