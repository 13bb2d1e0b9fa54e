"""The fast gradient sign method (FGSM) and its closed forms for linear models.

Contract (as in torchattacks / AdverTorch / RobustBench), the default reading: inputs in [0, 1]; the
gradient is taken with respect to the input only (``torch.autograd.grad``; no parameter ``.grad`` is
touched); the model is in eval mode during the attack and restored afterwards; the result is clamped to
[0, 1] and detached; the input tensor is never mutated.

The paper leaves three choices unstated (``../shared/paper/protocol.md``); each is an option here:

- ``gradient``: ``"eval"`` (deterministic forward) or ``"dropout"``: the gradient of the *training*
  cost, as pylearn2's ``Dropout`` cost computes it, through freshly sampled dropout masks (every
  :class:`~tui_adv.core.models.MaskDropout` samples with the given generator, so a draw is seeded and
  reproducible; every other module, BatchNorm included, stays in eval mode; the model's modes are
  restored after). Predictions are always deterministic.
- ``clip``: clamp x + ε·sign(∇) to [0, 1] or not (the paper's Fig. 4 is necessarily unclipped).
- ``cost``: ``"train"`` (the head's training loss; for the RBF its one-vs-rest loss) or ``"true_class"``
  (−log p_y of the true class alone; the same as "train" for a softmax head).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .heads import head_attack_loss, head_predict
from .models import MaskDropout

LABEL_MODES = ("true", "predicted")
GRADIENTS = ("eval", "dropout")
COSTS = ("train", "true_class")


@contextmanager
def dropout_gradient_mode(model: nn.Module, generator: torch.Generator | None) -> Iterator[nn.Module]:
    """Every module in eval mode except the dropout masks, which sample (with ``generator``); each
    module's own flag (through :func:`eval_mode`) and the masks' generators are restored after."""
    masks = [m for m in model.modules() if isinstance(m, MaskDropout)]
    gens = [m.generator for m in masks]
    with eval_mode(model):
        for m in masks:
            m.train()
            m.generator = generator
        try:
            yield model
        finally:
            for m, g in zip(masks, gens):
                m.generator = g


def mask_generator(seed: int, draw: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of dropout-gradient mask draw ``draw`` of a run seeded ``seed``: independent draws,
    the same masks every time."""
    return torch.Generator(device=device).manual_seed(1_000_003 * (int(seed) + 1) + 7919 * int(draw) + 17)


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


def gradient_sign(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cost: str = "train") -> torch.Tensor:
    """sign(∇ₓ J(θ, x, y)) for one batch, in the model's current mode; gradient w.r.t. x only."""
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = head_attack_loss(model.head, model(xg), y, cost)
        (grad,) = torch.autograd.grad(loss, xg)
    return grad.sign_()


def fgsm_direction(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    labels: str = "true",
    batch_size: int | None = None,
    gradient: str = "eval",
    cost: str = "train",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """sign(∇ₓ J) for the whole of ``x``, computed in batches of ``batch_size``: in eval mode, or
    (``gradient="dropout"``) through dropout masks drawn with ``generator``. Predicted labels, when
    asked for, always come from the deterministic model."""
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    out = torch.empty_like(x)
    for s in _batches(x.shape[0], batch_size):
        yb = attack_labels(model, x[s], y[s], labels)
        mode = eval_mode(model) if gradient == "eval" else dropout_gradient_mode(model, generator)
        with mode:
            out[s] = gradient_sign(model, x[s], yb, cost)
    return out


def perturb(x: torch.Tensor, direction: torch.Tensor, eps: float, clip: bool = True) -> torch.Tensor:
    """x' = clamp(x + ε·direction, 0, 1), or x + ε·direction unclipped. The one place the FGSM step is written."""
    out = x + eps * direction
    return out.clamp_(0.0, 1.0) if clip else out


def perturb_sign(x: torch.Tensor, direction: torch.Tensor, eps: float, clip: bool = True) -> torch.Tensor:
    """:func:`perturb` for a sign direction (every entry −1, 0 or 1), in one pass: ε·d is then exact, so
    the fused ``x + ε·d`` (``torch.add`` with ``alpha``) rounds once, exactly as ``x + eps * direction``
    does, without the temporary ε·d. Not for continuous noise, where a fused multiply-add would round
    differently."""
    out = torch.add(x, direction, alpha=eps)
    return out.clamp_(0.0, 1.0) if clip else out


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    labels: str = "true",
    batch_size: int | None = None,
    gradient: str = "eval",
    clip: bool = True,
    cost: str = "train",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x' = clamp(x + ε·sign(∇ₓ J(θ, x, y)), 0, 1) (unclamped with ``clip=False``), detached."""
    if eps < 0:
        raise ValueError(f"epsilon must be ≥ 0, got {eps}")
    direction = fgsm_direction(model, x, y, labels=labels, batch_size=batch_size, gradient=gradient, cost=cost, generator=generator)
    return perturb(x.detach(), direction, eps, clip).detach()


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
