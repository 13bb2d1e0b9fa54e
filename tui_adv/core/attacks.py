"""The fast gradient sign method (FGSM) and its closed forms for linear models.

Contract (as in torchattacks / AdverTorch / RobustBench): inputs in [0, 1]; the gradient is taken with
respect to the input only (``torch.autograd.grad``; no parameter ``.grad`` is touched); the model is in
eval mode during the attack and restored afterwards; the result is clamped to [0, 1] and detached; the
input tensor is never mutated.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .models import head_loss, head_predict

LABEL_MODES = ("true", "predicted")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` (and every submodule) in eval mode, restoring each module's own flag after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in flags:
            m.training = was_training


def _batches(n: int, batch_size: int | None) -> Iterator[slice]:
    step = n if not batch_size or batch_size <= 0 else batch_size
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def attack_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, labels: str = "true") -> torch.Tensor:
    """The labels an attack ascends the loss of: the true ones, or the model's own predictions
    (``predicted``, which avoids label leaking)."""
    if labels == "true":
        return y
    if labels != "predicted":
        raise ValueError(f"labels must be one of {LABEL_MODES}, got {labels!r}")
    with eval_mode(model), torch.inference_mode():
        pred, _ = head_predict(model.head, model(x))
    return pred.clone()


def gradient_sign(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sign(∇ₓ J(θ, x, y)) for one batch, in the model's current mode; gradient w.r.t. x only."""
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = head_loss(model.head, model(xg), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xg)
    return grad.sign_()


def fgsm_direction(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, labels: str = "true", batch_size: int | None = None
) -> torch.Tensor:
    """sign(∇ₓ J) for the whole of ``x``, in eval mode, computed in batches of ``batch_size``."""
    with eval_mode(model):
        out = torch.empty_like(x)
        for s in _batches(x.shape[0], batch_size):
            yb = attack_labels(model, x[s], y[s], labels)
            out[s] = gradient_sign(model, x[s], yb)
    return out


def perturb(x: torch.Tensor, direction: torch.Tensor, eps: float) -> torch.Tensor:
    """x' = clamp(x + ε·direction, 0, 1). The one place the FGSM step is written."""
    return (x + eps * direction).clamp_(0.0, 1.0)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    labels: str = "true",
    batch_size: int | None = None,
) -> torch.Tensor:
    """x' = clamp(x + ε·sign(∇ₓ J(θ, x, y)), 0, 1), detached."""
    if eps < 0:
        raise ValueError(f"epsilon must be ≥ 0, got {eps}")
    direction = fgsm_direction(model, x, y, labels=labels, batch_size=batch_size)
    return perturb(x.detach(), direction, eps).detach()


# ------------------------------------------------------------------------------------------ closed forms
def logistic_direction_closed_form(weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary logistic regression with labels ±1: ∇ₓ ζ(−y(wᵀx+b)) = −y·σ(−y z)·w, so the sign is −y·sign(w)."""
    w = weight.reshape(1, -1)
    s = (y.to(w.dtype) * 2 - 1).reshape(-1, 1)
    return (-s * w.sign()).reshape(x.shape)


def softmax_direction_closed_form(
    weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Softmax regression: ∇ₓ CE(Wx+b, y) = Wᵀ(softmax(Wx+b) − onehot(y))."""
    flat = x.reshape(x.shape[0], -1)
    p = (flat @ weight.t() + bias).softmax(dim=1)
    p[torch.arange(len(y)), y] -= 1
    return (p @ weight).sign().reshape(x.shape)
