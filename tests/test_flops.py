"""The FLOP counts the benchmarks divide by are the products torch actually runs (FlopCounterMode)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tui_adv.core.flops import forward_flops, input_gradient_flops, linear_shapes, sweep_flops, train_step_flops
from tui_adv.core.models import build_model, head_loss


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as c:
        fn()
    return c.get_total_flops()


@pytest.mark.parametrize("mode", ["clean", "adversarial"])
def test_train_step_flops_match_torch_count(mode):
    torch.manual_seed(0)
    model = build_model("maxout", units=12, pieces=3)
    x, y = torch.rand(7, 1, 28, 28), torch.randint(0, 10, (7,))

    def step():
        if mode == "adversarial":
            xg = x.clone().requires_grad_(True)
            head_loss(model.head, model(xg), y).backward()
            head_loss(model.head, model((x + 0.25 * xg.grad.sign()).clamp(0, 1)), y).backward()
        else:
            head_loss(model.head, model(x), y).backward()

    assert _counted(step) == train_step_flops(linear_shapes(model), 7, mode)


def test_direction_and_sweep_flops_match_torch_count():
    torch.manual_seed(0)
    model = build_model("maxout", units=12, pieces=3).eval()
    x, y = torch.rand(9, 1, 28, 28), torch.randint(0, 10, (9,))
    shapes = linear_shapes(model)
    for p in model.parameters():  # the direction's input-only backward (FlopCounterMode cannot follow autograd.grad)
        p.requires_grad_(False)

    def direction():
        xg = x.clone().requires_grad_(True)
        head_loss(model.head, model(xg), y).backward()

    assert _counted(direction) == input_gradient_flops(shapes, 9)
    with torch.inference_mode():
        forwards = _counted(lambda: [model(x) for _ in range(3)])
    assert _counted(direction) + forwards == sweep_flops(shapes, 9, 3)
    assert forward_flops(shapes, 1) == 2 * (784 * 36 + 12 * 36 + 12 * 10)


def test_convolutional_models_are_not_counted():
    assert linear_shapes(build_model("inception")) is None
    assert linear_shapes(build_model("softmax")) == [(784, 10)]
