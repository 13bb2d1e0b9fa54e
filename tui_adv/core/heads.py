"""The heads: how a model's outputs become a loss, predictions and confidences. Every model carries a
``head`` naming one of them (the models are in :mod:`tui_adv.core.models`):

- ``softmax``: cross-entropy over 10 (or 2) logits; confidence = softmax probability.
- ``binary``: one logit z, labels y in {0,1} used as ±1, loss softplus(−y·z) (the paper's ζ(−y(wᵀx+b)));
  confidence = σ(±z) of the predicted side.
- ``sigmoid``: independent per-class sigmoid outputs trained one-vs-rest (the maxout of P19's fourth
  number); confidence = σ of the predicted (largest) logit.
- ``rbf``: per-class scores p_c = exp(logit_c) with logit_c = −Σ β_c (x − μ_c)² ≤ 0, trained one-vs-rest
  (independent Bernoulli per class, as the paper's p(y=1|x) = exp(−(x−μ)ᵀβ(x−μ))); confidence = p of the
  predicted class, which is what lets RBF units say "I don't know" (P15).

:func:`analytic_loss` is the closed-form worst case of the linear heads under an L∞ perturbation
(``train.mode = "analytic"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def head_loss(head: str, logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    if head == "softmax":
        return F.cross_entropy(logits, y, reduction=reduction)
    if head == "sigmoid":
        target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(dim=1)
    elif head == "binary":
        z = logits.reshape(-1)
        sign = y.to(z.dtype) * 2 - 1
        loss = F.softplus(-sign * z)
    elif head == "rbf":
        # log p = logit (≤ 0); log(1 − p) = log(−expm1(logit)), clamped away from log(0)
        logp = logits
        log1mp = torch.log(-torch.expm1(logits.clamp(max=-1e-6)))
        target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
        loss = -(target * logp + (1 - target) * log1mp).sum(dim=1)
    else:
        raise ValueError(f"unknown head {head!r}")
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def head_attack_loss(head: str, logits: torch.Tensor, y: torch.Tensor, cost: str = "train") -> torch.Tensor:
    """The summed cost an attack ascends: the training loss (``"train"``), or −log p_y of the true
    class alone (``"true_class"``), which differs from the training loss for the one-vs-rest heads."""
    if cost == "train" or head in ("softmax", "binary"):
        return head_loss(head, logits, y, reduction="sum")
    if cost != "true_class":
        raise ValueError(f"unknown attack cost {cost!r}")
    z = logits.gather(1, y.view(-1, 1)).reshape(-1)
    if head == "rbf":
        return (-z).sum()  # log p_y = logit_y
    if head == "sigmoid":
        return -F.logsigmoid(z).sum()
    raise ValueError(f"unknown head {head!r}")


def head_predict(head: str, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted class, confidence in the predicted class)."""
    if head == "sigmoid":
        z, pred = logits.max(dim=1)
        return pred, torch.sigmoid(z)
    if head == "softmax":
        p = logits.softmax(dim=1)
        conf, pred = p.max(dim=1)
        return pred, conf
    if head == "binary":
        z = logits.reshape(-1)
        pred = (z > 0).long()
        conf = torch.sigmoid(z.abs())
        return pred, conf
    if head == "rbf":
        conf, pred = logits.exp().max(dim=1)
        return pred, conf
    raise ValueError(f"unknown head {head!r}")


def head_probs(head: str, logits: torch.Tensor) -> torch.Tensor:
    """Per-class probabilities (N, C): softmax; [1−σ(z), σ(z)] for binary; exp(logit) for RBF."""
    if head == "softmax":
        return logits.softmax(dim=1)
    if head == "sigmoid":
        return torch.sigmoid(logits)
    if head == "binary":
        p1 = torch.sigmoid(logits.reshape(-1))
        return torch.stack([1 - p1, p1], dim=1)
    if head == "rbf":
        return logits.exp()
    raise ValueError(f"unknown head {head!r}")


def analytic_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, form: str = "worst_case") -> torch.Tensor:
    """Closed-form worst-case loss of a linear model under an L∞ perturbation of size ε.

    ``form="seed"`` (binary only): the seed report's ζ(−y(wᵀx + b − ε‖w‖₁)), which shifts the logit
    down by ε‖w‖₁ for both labels: the worst case for y = +1, the best case for y = −1."""
    logits = model(x)
    w = model.linear.weight
    if model.head == "binary":
        s = y.to(logits.dtype) * 2 - 1
        z = logits.reshape(-1)
        if form == "seed":
            return F.softplus(-s * (z - eps * w.abs().sum())).mean()
        return F.softplus(-(s * z - eps * w.abs().sum())).mean()  # ζ(−y(wᵀx + b) + ε‖w‖₁)
    # softmax: z_c + ε‖w_c − w_y‖₁ for c ≠ y (0 for c = y)
    # index_select, not w[y]: the same rows, but the backward of w[y] (index_put_ with accumulate) sums a
    # label's rows in a thread-dependent order on CPU, so two runs of one seed differed (S03's clean error
    # 28.86% and 28.96%, measured); index_select's backward (index_add_) sums them in one order
    diff = (w.unsqueeze(0) - w.index_select(0, y).unsqueeze(1)).abs().sum(dim=2)  # (N, C)
    return F.cross_entropy(logits + eps * diff, y)
