"""Models of the paper. Each maps (N,1,28,28) images in [0,1] to logits.

Every model carries a ``head`` that says how its outputs become a loss, predictions and confidences:

- ``softmax``: cross-entropy over 10 (or 2) logits; confidence = softmax probability.
- ``binary``: one logit z, labels y in {0,1} used as ±1, loss softplus(−y·z) (the paper's ζ(−y(wᵀx+b)));
  confidence = σ(±z) of the predicted side.
- ``sigmoid``: independent per-class sigmoid outputs trained one-vs-rest (the maxout of P19's fourth
  number); confidence = σ of the predicted (largest) logit.
- ``rbf``: per-class scores p_c = exp(logit_c) with logit_c = −Σ β_c (x − μ_c)² ≤ 0, trained one-vs-rest
  (independent Bernoulli per class, as the paper's p(y=1|x) = exp(−(x−μ)ᵀβ(x−μ))); confidence = p of the
  predicted class, which is what lets RBF units say "I don't know" (P15).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------------------------------------------- heads
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


# ---------------------------------------------------------------------------------------------------- models
class SoftmaxRegression(nn.Module):
    """Shallow softmax regression 784 → C (P01)."""

    head = "softmax"

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.linear = nn.Linear(784, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def first_layer_weight(self) -> torch.Tensor:
        return self.linear.weight


class LogisticRegression(nn.Module):
    """Binary logistic regression: one logit z = wᵀx + b, labels ±1 (P03/P04)."""

    head = "binary"

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(784, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def first_layer_weight(self) -> torch.Tensor:
        return self.linear.weight


class MaskDropout(nn.Module):
    """Dropout as pylearn2 writes it: in training, x · m · scale with m ~ Bernoulli(1 − p).

    ``rescale=True`` is ``nn.Dropout`` (scale 1/(1 − p)); ``rescale=False`` keeps the kept inputs as
    they are (scale 1), which is the maxout recipe's input layer (``input_include_probs: .8``,
    ``input_scales: 1``). At test time the layer is the identity either way. Masks come from
    ``generator`` when one is set (a seeded dropout-gradient attack), else from torch's global RNG
    (training, which the checkpoint saves and restores)."""

    def __init__(self, p: float, rescale: bool = True):
        super().__init__()
        self.p, self.rescale = float(p), bool(rescale)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty_like(x).bernoulli_(keep, generator=self.generator)
        if self.rescale:
            mask.mul_(1.0 / keep)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, rescale={self.rescale}"


class MaxoutLinear(nn.Module):
    """A maxout layer: ``units`` outputs, each the max over ``pieces`` affine pieces."""

    def __init__(self, in_features: int, units: int, pieces: int, init_range: float | None):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)
        if init_range is not None:
            nn.init.uniform_(self.linear.weight, -init_range, init_range)
            nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return z.view(z.shape[0], self.units, self.pieces).amax(dim=2)


class Maxout(nn.Module):
    """The maxout network of the paper (pylearn2 ``mnist_pi.yaml``): 784 → maxout → maxout → softmax.

    Defaults are that recipe: 240 units × 5 pieces per layer, weights U(−.005, .005), input dropout
    keep .8 *without rescaling* the kept pixels (``input_dropout_rescale=False``; ``True`` is
    ``nn.Dropout``'s ×1.25), hidden dropout keep .5 with ×2, max column norm 1.9365 (applied by the
    trainer after each step). ``output="sigmoid"`` replaces the softmax by independent sigmoid units
    trained one-vs-rest (P19's fourth model).
    """

    head = "softmax"

    def __init__(
        self,
        units: int = 240,
        pieces: int = 5,
        layers: int = 2,
        num_classes: int = 10,
        input_dropout: float = 0.2,
        hidden_dropout: float = 0.5,
        init_range: float | None = 0.005,
        max_col_norm: float | None = 1.9365,
        input_dropout_rescale: bool = False,
        output: str = "softmax",
    ):
        super().__init__()
        if output not in ("softmax", "sigmoid"):
            raise ValueError(f"maxout output must be softmax or sigmoid, got {output!r}")
        self.head = output
        self.max_col_norm = max_col_norm
        self.input_dropout = MaskDropout(input_dropout, rescale=input_dropout_rescale)
        blocks: list[nn.Module] = []
        width = 784
        for _ in range(layers):
            blocks += [MaxoutLinear(width, units, pieces, init_range), MaskDropout(hidden_dropout)]
            width = units
        self.hidden = nn.Sequential(*blocks)
        self.out = nn.Linear(width, num_classes)
        if init_range is not None:
            nn.init.uniform_(self.out.weight, -init_range, init_range)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(self.input_dropout(x.flatten(1))))

    def first_layer_weight(self) -> torch.Tensor:
        return self.hidden[0].linear.weight

    @torch.no_grad()
    def apply_max_norm(self) -> None:
        """Clip the L2 norm of each unit's incoming weight vector (pylearn2's max_col_norm)."""
        if self.max_col_norm is None:
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                w = m.weight  # (out, in): one row per unit = one column in pylearn2's (in, out) layout
                norms = w.norm(dim=1, keepdim=True).clamp_min(1e-12)
                w.mul_(norms.clamp(max=self.max_col_norm) / norms)


class RBFNet(nn.Module):
    """Shallow RBF network (no hidden layer, P15): logit_c = −Σ_i β_ci (x_i − μ_ci)², p_c = exp(logit_c).

    β = softplus(ρ) > 0 keeps every score a true RBF bump in (0, 1].
    """

    head = "rbf"

    def __init__(self, num_classes: int = 10, init_beta: float = 0.01):
        super().__init__()
        self.mu = nn.Parameter(torch.rand(num_classes, 784) * 0.1)
        rho = math.log(math.expm1(init_beta))
        self.rho = nn.Parameter(torch.full((num_classes, 784), rho))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        beta = F.softplus(self.rho)
        # Σ β (x − μ)² = (x²)·βᵀ − 2 x·(βμ)ᵀ + Σ β μ²  — one matmul instead of an (N, C, 784) tensor
        d = (x * x) @ beta.t() - 2 * x @ (beta * self.mu).t() + (beta * self.mu * self.mu).sum(dim=1)
        return -d.clamp_min(0)

    def first_layer_weight(self) -> torch.Tensor:
        return self.mu


class _Inception(nn.Module):
    """GoogLeNet block: 1×1 | 1×1→3×3 | 1×1→5×5 | 3×3 pool→1×1, concatenated."""

    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int):
        super().__init__()

        def conv(i: int, o: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

        self.b1 = conv(cin, c1, 1)
        self.b3 = nn.Sequential(conv(cin, c3r, 1), conv(c3r, c3, 3))
        self.b5 = nn.Sequential(conv(cin, c5r, 1), conv(c5r, c5, 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv(cin, cp, 1))
        self.out_channels = c1 + c3 + c5 + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)


class InceptionNet(nn.Module):
    """A small Inception-style CNN (GoogLeNet blocks sized for 28×28), the seed's S01/S02 model."""

    head = "softmax"

    def __init__(self, num_classes: int = 10, width: int = 1):
        super().__init__()
        w = max(1, int(width))
        self.stem = nn.Sequential(nn.Conv2d(1, 32 * w, 3, padding=1, bias=False), nn.BatchNorm2d(32 * w), nn.ReLU(inplace=True))
        self.a = _Inception(32 * w, 16 * w, 16 * w, 24 * w, 4 * w, 8 * w, 8 * w)  # 56w, 28×28
        self.pool1 = nn.MaxPool2d(2)  # 14×14
        self.b = _Inception(self.a.out_channels, 32 * w, 32 * w, 48 * w, 8 * w, 16 * w, 16 * w)  # 112w
        self.pool2 = nn.MaxPool2d(2)  # 7×7
        self.c = _Inception(self.b.out_channels, 48 * w, 32 * w, 64 * w, 8 * w, 16 * w, 16 * w)  # 144w
        self.fc = nn.Linear(self.c.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2(self.b(self.pool1(self.a(self.stem(x)))))
        x = self.c(x).mean(dim=(2, 3))
        return self.fc(x)

    def first_layer_weight(self) -> torch.Tensor:
        return self.stem[0].weight


MODEL_KINDS = ("softmax", "logistic", "maxout", "rbf", "inception")


def build_model(kind: str, num_classes: int = 10, **params) -> nn.Module:
    """Build a model by kind; ``params`` are the model's keyword arguments (from the config)."""
    if kind == "softmax":
        return SoftmaxRegression(num_classes, **params)
    if kind == "logistic":
        if num_classes != 2:
            raise ValueError("the logistic model needs a binary task: set data.pair")
        return LogisticRegression(**params)
    if kind == "maxout":
        return Maxout(num_classes=num_classes, **params)
    if kind == "rbf":
        return RBFNet(num_classes, **params)
    if kind == "inception":
        return InceptionNet(num_classes, **params)
    raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
