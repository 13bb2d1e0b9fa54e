"""The CIFAR-10 convolutional maxout network (core/models.py ConvMaxout) and the dataset keys of configs."""

from __future__ import annotations

import copy

import pytest
import torch

from tui_adv.config import validate
from tui_adv.core.models import ConvMaxout, ConvMaxoutLayer, MaskDropout, build_model
from tui_adv.errors import UserError


def test_the_recipes_layer_sizes():
    m = build_model("conv_maxout")
    convs = [c for c in m.conv if isinstance(c, ConvMaxoutLayer)]
    assert [(c.channels, c.pieces, c.weight.shape[-1], c.pad, c.pool, c.stride, c.max_kernel_norm) for c in convs] == [
        (96, 2, 8, 4, 4, 2, 0.9), (192, 2, 8, 3, 4, 2, 1.9365), (192, 2, 5, 3, 2, 2, 1.9365)]
    assert [tuple(c.weight.shape[:2]) for c in convs] == [(192, 3), (384, 96), (384, 192)]
    assert m.features == 192 * 5 * 5 and m.hidden[1].units == 500 and m.hidden[1].pieces == 5 and m.out.out_features == 10
    x = torch.rand(2, 3, 32, 32)
    sizes = []
    with torch.no_grad():
        z = x
        for layer in m.conv:
            z = layer(z)
            if isinstance(layer, ConvMaxoutLayer):
                sizes.append(tuple(z.shape[1:]))
        assert sizes == [(96, 16, 16), (192, 7, 7), (192, 5, 5)]
        assert m.eval()(x).shape == (2, 10)
    drops = [d for d in m.modules() if isinstance(d, MaskDropout)]
    assert (drops[0].p, drops[0].rescale) == (0.2, False) and all((d.p, d.rescale) == (0.5, True) for d in drops[1:]) and len(drops) == 5
    # initial weights U(-.005, .005) as effective weights
    w = m.first_layer_weight().detach()
    assert float(w.abs().max()) <= 0.005 + 1e-9 and float(w.abs().max()) > 0.004


def test_lr_scale_reparametrization_equals_a_scaled_learning_rate():
    """SGD with momentum on the stored parameters moves the effective weights as SGD with lr × .05 does
    on a plain convolution with the same weights."""
    torch.manual_seed(0)
    layer = ConvMaxoutLayer(3, 4, 2, 3, 1, 2, 2, 0.05, 100.0, 0.05)
    plain_w = layer.effective_weight().detach().clone().requires_grad_(True)
    plain_b = (layer.bias * layer.s).detach().clone().requires_grad_(True)
    opt_a = torch.optim.SGD(layer.parameters(), lr=0.17, momentum=0.5)
    opt_b = torch.optim.SGD([plain_w, plain_b], lr=0.17 * 0.05, momentum=0.5)
    for step in range(4):
        x = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(step))
        for opt, fwd in ((opt_a, lambda: layer(x)), (opt_b, lambda: torch.nn.functional.max_pool2d(
                torch.nn.functional.conv2d(x, plain_w, plain_b, padding=1).view(5, 4, 2, 8, 8).amax(2), 2, 2, ceil_mode=True))):
            opt.zero_grad()
            (fwd() ** 2).sum().backward()
            opt.step()
    assert torch.allclose(layer.effective_weight(), plain_w, atol=1e-6)
    assert torch.allclose(layer.bias * layer.s, plain_b, atol=1e-6)


def test_max_norms_bound_the_effective_weights():
    m = build_model("conv_maxout", scale=0.1)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1000)
    m.apply_max_norm()
    for c, bound in zip([c for c in m.conv if isinstance(c, ConvMaxoutLayer)], (0.9, 1.9365, 1.9365)):
        assert float(c.effective_weight().detach().flatten(1).norm(dim=1).max()) == pytest.approx(bound, rel=1e-5)
    assert float(m.hidden[1].linear.weight.detach().norm(dim=1).max()) == pytest.approx(1.9, rel=1e-5)
    assert float(m.out.weight.detach().norm(dim=1).max()) == pytest.approx(1.9365, rel=1e-5)


def test_scale_shrinks_every_layer():
    m = ConvMaxout(scale=0.05)
    assert [c.channels for c in m.conv if isinstance(c, ConvMaxoutLayer)] == [5, 10, 10] and m.hidden[1].units == 25
    assert m.eval()(torch.rand(3, 3, 32, 32)).shape == (3, 10)


BASE = {"name": "t", "model": {"kind": "softmax"}}


def _cfg(**over):
    raw = copy.deepcopy(BASE)
    for k, v in over.items():
        sect, key = k.split("__")
        raw.setdefault(sect, {})[key] = v
    return validate(raw, "<t>")


def test_dataset_keys():
    assert _cfg().data.dataset == "mnist"
    for name in ("fashion_mnist", "kmnist"):
        assert _cfg(data__dataset=name).data.dataset == name
    with pytest.raises(UserError, match="data.dataset"):
        _cfg(data__dataset="svhn")
    with pytest.raises(UserError, match="needs model.kind = 'conv_maxout'"):
        _cfg(data__dataset="cifar10")
    with pytest.raises(UserError, match="needs data.dataset = 'cifar10'"):
        validate({"name": "t", "model": {"kind": "conv_maxout"}}, "<t>")
    c = validate({"name": "t", "data": {"dataset": "cifar10"}, "model": {"kind": "conv_maxout", "scale": 0.1}}, "<t>")
    assert c.has_dropout and c.model.params() == {"scale": 0.1}
    with pytest.raises(UserError, match="units do"):
        validate({"name": "t", "data": {"dataset": "cifar10"}, "model": {"kind": "conv_maxout", "units": 3}}, "<t>")


def test_a_stored_mnist_config_keeps_its_identity():
    """A config stored before data.dataset existed is the same experiment as one with the default."""
    import json

    from tui_adv.reproduce import identity

    old = json.dumps({"name": "a", "model": {"kind": "softmax"}, "data": {"pair": None, "validation": False, "train_limit": None, "test_limit": None}})
    new = validate({"name": "b", "model": {"kind": "softmax"}, "data": {"dataset": "mnist"}}).to_json()
    fashion = validate({"name": "b", "model": {"kind": "softmax"}, "data": {"dataset": "fashion_mnist"}}).to_json()
    assert identity(old) == identity(new) != identity(fashion)
