"""Models of the paper. Each maps (N,1,28,28) images in [0,1] to logits (the CIFAR-10 conv maxout:
(N,3,32,32)).

Every model carries a ``head`` (``softmax``, ``binary``, ``sigmoid`` or ``rbf``) that says how its
outputs become a loss, predictions and confidences; the heads' functions are in
:mod:`tui_adv.core.heads` and importable from here too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .heads import head_attack_loss as head_attack_loss
from .heads import head_loss as head_loss
from .heads import head_predict as head_predict
from .heads import head_probs as head_probs


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
                clip_row_norms_(m.weight, self.max_col_norm)  # (out, in): a row per unit = a column in pylearn2's (in, out)


@torch.no_grad()
def clip_row_norms_(w: torch.Tensor, bound: float) -> None:
    """Scale every row of ``w`` whose L2 norm exceeds ``bound`` down to ``bound``, in place.

    The plain form multiplies every row by ``clamp(n, max=bound) / n``; for a row within the bound that
    ratio is n / n, exactly 1.0 in IEEE arithmetic, so the multiplication changes nothing. On CPU only the
    rows over the bound are rescaled (usually none: early in training no row is near 1.9365), which saves
    a pass over the weights every step with bit-identical results; on a GPU the plain form runs (deciding
    which rows to touch would be a host sync every step)."""
    norms = w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    ratio = norms.clamp(max=bound) / norms
    if w.device.type != "cpu":
        w.mul_(ratio)
        return
    over = (norms.view(-1) > bound).nonzero().view(-1)
    if over.numel() == 0:
        return
    if over.numel() == w.shape[0]:
        w.mul_(ratio)
        return
    w.index_copy_(0, over, w.index_select(0, over) * ratio.index_select(0, over))


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


class ConvMaxoutLayer(nn.Module):
    """A convolutional maxout layer (pylearn2 ``MaxoutConvC01B``): ``channels × pieces`` filters, each
    output channel the max over its unit's ``pieces`` consecutive filters (pylearn2's ``z[i::pieces]``),
    then max pooling (``pool`` × ``pool``, stride ``stride``; cuda-convnet's output size, which is
    PyTorch's ``ceil_mode=True`` here). One bias per filter (``tied_b``).

    ``lr_scale`` is pylearn2's ``W_lr_scale``/``b_lr_scale``, without a second optimiser parameter group:
    the parameters are stored divided by √lr_scale and multiplied by it in the forward pass, so plain SGD
    with momentum moves the effective weights exactly as it would with the learning rate × lr_scale
    (the gradient of the stored parameter is √s × the effective one, and its step counts √s times again).
    ``max_kernel_norm`` bounds each filter's L2 norm (over input channels and kernel positions), applied
    to the effective weights after every step as pylearn2 does."""

    def __init__(self, cin: int, channels: int, pieces: int, kernel: int, pad: int, pool: int, stride: int,
                 init_range: float, max_kernel_norm: float, lr_scale: float):
        super().__init__()
        self.channels, self.pieces, self.pad, self.pool, self.stride = channels, pieces, pad, pool, stride
        self.max_kernel_norm = max_kernel_norm
        self.s = math.sqrt(lr_scale)
        self.weight = nn.Parameter(torch.empty(channels * pieces, cin, kernel, kernel).uniform_(-init_range, init_range) / self.s)
        self.bias = nn.Parameter(torch.zeros(channels * pieces))

    def effective_weight(self) -> torch.Tensor:
        return self.weight * self.s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.conv2d(x, self.weight * self.s, self.bias * self.s, padding=self.pad)
        n, _, h, w = z.shape
        z = z.view(n, self.channels, self.pieces, h, w).amax(dim=2)
        return F.max_pool2d(z, self.pool, self.stride, ceil_mode=True)

    @torch.no_grad()
    def apply_max_norm(self) -> None:
        w = self.weight
        norms = (w.flatten(1).norm(dim=1) * self.s).clamp_min(1e-12)
        w.mul_((norms.clamp(max=self.max_kernel_norm) / norms).view(-1, 1, 1, 1))


class ConvMaxout(nn.Module):
    """The convolutional maxout network of the maxout paper's CIFAR-10 experiment, which the adversarial
    paper attacks (ε = .1: 87.15% error). Every number is pylearn2's
    ``pylearn2/scripts/papers/maxout/cifar10.yaml`` (Goodfellow et al. 2013, "Maxout Networks", sec. 5.3:
    three convolutional maxout layers with max pooling, a fully connected maxout layer, softmax):

    - input: 32 × 32 × 3 (``input_space: Conv2DSpace shape [32, 32], num_channels: 3``)
    - h0: 96 units × 2 pieces (``num_channels: 96, num_pieces: 2``), 8×8 kernels, pad 4
      (``kernel_shape: [8, 8], pad: 4``), pool 4×4 stride 2 (``pool_shape: [4, 4], pool_stride: [2, 2]``),
      max kernel norm .9 (``max_kernel_norm: .9``): 33×33 → pooled 16×16
    - h1: 192 × 2, 8×8, pad 3, pool 4 stride 2, max kernel norm 1.9365: 15×15 → 7×7
    - h2: 192 × 2, 5×5, pad 3, pool 2 stride 2, max kernel norm 1.9365: 9×9 → 5×5
    - h3: maxout 500 units × 5 pieces (``num_units: 500, num_pieces: 5``), max column norm 1.9
    - y: softmax over 10 classes, max column norm 1.9365
    - weights U(−.005, .005) (``irange: .005``) everywhere, biases 0; the conv layers learn at .05 × the
      learning rate (``W_lr_scale: .05, b_lr_scale: .05``)
    - dropout (the ``Dropout`` cost): the pixels keep .8 with scale 1 (``input_include_probs: {h0: .8},
      input_scales: {h0: 1.}``), every other layer's input keeps .5 with scale 2 (pylearn2's defaults)

    ``scale`` multiplies every channel and unit count (1 = the paper's network)."""

    head = "softmax"

    # (units, pieces, kernel, pad, pool, pool stride, max kernel norm) of h0, h1, h2 (cifar10.yaml)
    CONV = ((96, 2, 8, 4, 4, 2, 0.9), (192, 2, 8, 3, 4, 2, 1.9365), (192, 2, 5, 3, 2, 2, 1.9365))
    DENSE = (500, 5, 1.9)  # h3: units, pieces, max column norm
    OUT_NORM = 1.9365  # y: max column norm
    IMAGE = (3, 32, 32)

    def __init__(self, num_classes: int = 10, input_dropout: float = 0.2, hidden_dropout: float = 0.5, init_range: float = 0.005,
                 input_dropout_rescale: bool = False, scale: float = 1.0, conv_lr_scale: float = 0.05):
        super().__init__()
        self.input_dropout = MaskDropout(input_dropout, rescale=input_dropout_rescale)
        blocks: list[nn.Module] = []
        cin, size = self.IMAGE[0], self.IMAGE[1]
        for i, (units, pieces, kernel, pad, pool, stride, norm) in enumerate(self.CONV):
            if i:
                blocks.append(MaskDropout(hidden_dropout))
            units = max(1, round(units * scale))
            blocks.append(ConvMaxoutLayer(cin, units, pieces, kernel, pad, pool, stride, init_range, norm, conv_lr_scale))
            conv = size + 2 * pad - kernel + 1
            size = math.ceil((conv - pool) / stride) + 1
            cin = units
        self.conv = nn.Sequential(*blocks)
        self.features = cin * size * size  # 192 · 5 · 5 = 4800 at scale 1
        units, pieces, self.dense_norm = self.DENSE
        self.hidden = nn.Sequential(MaskDropout(hidden_dropout), MaxoutLinear(self.features, max(1, round(units * scale)), pieces, init_range),
                                    MaskDropout(hidden_dropout))
        self.out = nn.Linear(self.hidden[1].units, num_classes)
        nn.init.uniform_(self.out.weight, -init_range, init_range)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(self.input_dropout(x))
        return self.out(self.hidden(z.flatten(1)))

    def first_layer_weight(self) -> torch.Tensor:
        return self.conv[0].effective_weight()

    @torch.no_grad()
    def apply_max_norm(self) -> None:
        for m in self.conv:
            if isinstance(m, ConvMaxoutLayer):
                m.apply_max_norm()
        for lin, bound in ((self.hidden[1].linear, self.dense_norm), (self.out, self.OUT_NORM)):
            w = lin.weight
            norms = w.norm(dim=1, keepdim=True).clamp_min(1e-12)
            w.mul_(norms.clamp(max=bound) / norms)


MODEL_KINDS = ("softmax", "logistic", "maxout", "rbf", "inception", "conv_maxout")


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
    if kind == "conv_maxout":
        return ConvMaxout(num_classes, **params)
    raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
