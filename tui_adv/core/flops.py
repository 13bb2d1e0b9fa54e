"""Matrix-product FLOPs of the MLP models, counted from their layer shapes.

Only the products are counted (2·n·in·out per linear layer and pass); the elementwise work (dropout
masks, the max over maxout pieces, softmax, the optimizer's and max-norm's passes over the weights) is
what the hot path should hide, so achieved GFLOP/s against the machine's matrix rate says how much of a
step is arithmetic. Passes:

- forward: every layer;
- parameter gradients: every layer again;
- input gradients: every layer but the first when the input does not require a gradient (plain
  training), every layer when it does (the adversarial direction, an attack).
"""

from __future__ import annotations

from torch import nn


def linear_shapes(model: nn.Module) -> list[tuple[int, int]] | None:
    """(in, out) of every ``nn.Linear`` in forward order, or None for a model with convolutions (not
    an MLP: its FLOPs are not counted here)."""
    if any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()) or any(p.dim() > 2 for p in model.parameters()):
        return None  # (the CIFAR-10 conv maxout convolves with F.conv2d: its 4-d filters give it away)
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def forward_flops(shapes: list[tuple[int, int]], n: int) -> int:
    return sum(2 * n * i * o for i, o in shapes)


def _first(shapes: list[tuple[int, int]], n: int) -> int:
    i, o = shapes[0]
    return 2 * n * i * o


def input_gradient_flops(shapes: list[tuple[int, int]], n: int) -> int:
    """One forward and an input-only backward (no parameter gradients): an FGSM direction."""
    f = forward_flops(shapes, n)
    return f + f


def train_step_flops(shapes: list[tuple[int, int]], n: int, mode: str = "clean") -> int:
    """One training step on a batch of ``n``: clean = forward + parameter gradients + input gradients
    below the first layer; adversarial = the clean pass with the input gradient through the first layer
    too (the direction), then the same on the perturbed batch."""
    f = forward_flops(shapes, n)
    plain = f + f + (f - _first(shapes, n))
    if mode == "adversarial":
        return (f + f + f) + plain
    if mode in ("sign_noise", "uniform_noise"):
        return 2 * plain
    return plain


def evaluation_flops(shapes: list[tuple[int, int]], n: int, adversarial: bool = True) -> int:
    """The per-epoch evaluation of the trainer: a clean forward, and with ``adversarial`` an FGSM
    direction plus the forward of the perturbed images."""
    f = forward_flops(shapes, n)
    return f + (input_gradient_flops(shapes, n) + f if adversarial else 0)


def sweep_flops(shapes: list[tuple[int, int]], n: int, k: int) -> int:
    """A k-point FGSM sweep: one direction, then k forwards."""
    return input_gradient_flops(shapes, n) + k * forward_flops(shapes, n)


def epoch_flops(shapes: list[tuple[int, int]], n_train: int, batch_size: int, mode: str = "clean", n_eval: int = 0,
                eval_adv: bool = True) -> int:
    """One training epoch over ``n_train`` images (the last batch ragged) and its evaluation on ``n_eval``."""
    full, rest = divmod(n_train, batch_size)
    total = full * train_step_flops(shapes, batch_size, mode) + (train_step_flops(shapes, rest, mode) if rest else 0)
    return total + (evaluation_flops(shapes, n_eval, eval_adv) if n_eval else 0)
