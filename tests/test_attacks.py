"""The FGSM contract, on small random models of every kind, and autograd = closed form for linear models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tui_adv.core.attacks import (
    attack_labels,
    eval_mode,
    fgsm,
    fgsm_direction,
    gradient_sign,
    logistic_direction_closed_form,
    perturb,
    softmax_direction_closed_form,
)
from tui_adv.core.models import head_loss, head_predict

KINDS = ["softmax", "logistic", "maxout", "rbf", "inception"]
EPSILONS = [0.0, 0.007, 0.1, 0.25, 0.5]


def _data(name, images, labels, n=12, seed=0):
    if name == "inception":
        n = min(n, 6)  # the CNN is slow on a shared 2-core CPU; 6 images still test every property
    x = images(n, seed=seed)
    y = labels(n, num_classes=2 if name == "logistic" else 10, seed=seed)
    return x, y


# ------------------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("name", KINDS)
def test_linf_bound_and_box(name, tiny_model, images, labels):
    model = tiny_model(name)
    x, y = _data(name, images, labels)
    for eps in EPSILONS:
        xa = fgsm(model, x, y, eps)
        assert xa.shape == x.shape and xa.dtype == x.dtype
        assert (xa - x).abs().max().item() <= eps + 1e-6
        assert xa.min().item() >= 0.0 and xa.max().item() <= 1.0
    # the step really is taken: away from the box edges, every pixel with a non-zero gradient moves by ε
    xa = fgsm(model, x, y, 0.1)
    d = fgsm_direction(model, x, y)
    inside = (x >= 0.1) & (x <= 0.9) & (d != 0)
    assert inside.sum() > 100
    torch.testing.assert_close((xa - x)[inside].abs(), torch.full_like(x[inside], 0.1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", KINDS)
def test_eps_zero_returns_x_exactly(name, tiny_model, images, labels):
    model = tiny_model(name)
    x, y = _data(name, images, labels)
    xa = fgsm(model, x, y, 0.0)
    assert torch.equal(xa, x)


@pytest.mark.parametrize("name", KINDS)
def test_input_untouched_and_result_detached(name, tiny_model, images, labels):
    model = tiny_model(name)
    x, y = _data(name, images, labels)
    x = x.requires_grad_(True)  # even an input that requires grad must come back detached
    x_before, y_before = x.detach().clone(), y.clone()
    version = x._version
    xa = fgsm(model, x, y, 0.25)
    assert torch.equal(x.detach(), x_before) and torch.equal(y, y_before)
    assert x._version == version, "the input tensor was modified in place"
    assert x.grad is None, "the attack wrote a gradient into the caller's tensor"
    assert not xa.requires_grad and xa.grad_fn is None
    assert xa.data_ptr() != x.data_ptr()
    d = fgsm_direction(model, x, y)
    assert not d.requires_grad and d.grad_fn is None


@pytest.mark.parametrize("name", KINDS)
def test_batch_consistency(name, tiny_model, images, labels):
    """Attacking in batches (any size, including a ragged last batch) equals attacking all at once."""
    model = tiny_model(name)
    x, y = _data(name, images, labels, n=10)
    whole = fgsm(model, x, y, 0.1)
    for bs in (1, 4, 64) if name == "inception" else (1, 3, 4, 10, 64):
        batched = fgsm(model, x, y, 0.1, batch_size=bs)
        assert torch.equal(batched, whole), f"batch_size={bs}"
    # and per example, one at a time, by hand
    rows = torch.cat([fgsm(model, x[i : i + 1], y[i : i + 1], 0.1) for i in range(len(y))])
    assert torch.equal(rows, whole)


@pytest.mark.parametrize("name", KINDS)
def test_no_parameter_grad_touched(name, tiny_model, images, labels):
    model = tiny_model(name)
    x, y = _data(name, images, labels)
    assert all(p.grad is None for p in model.parameters())
    fgsm(model, x, y, 0.25)
    fgsm(model, x, y, 0.25, labels="predicted", batch_size=5)
    assert all(p.grad is None for p in model.parameters()), "the attack touched a parameter's .grad"


def test_existing_parameter_grads_preserved(tiny_model, images, labels):
    model = tiny_model("maxout")
    x, y = _data("maxout", images, labels)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    fgsm(model, x, y, 0.25)
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())


@pytest.mark.parametrize("name", KINDS)
def test_training_flags_restored_per_submodule(name, tiny_model, images, labels):
    model = tiny_model(name)
    x, y = _data(name, images, labels)
    # a mixed state: the model in training mode with every other submodule in eval mode
    model.train()
    for i, m in enumerate(model.modules()):
        if i % 2:
            m.eval()
    flags = [m.training for m in model.modules()]
    assert flags[0] and (len(flags) == 1 or not all(flags))  # rbf is a single module
    seen: list[bool] = []
    real_forward = model.forward

    def spy(inp):
        seen.append(any(m.training for m in model.modules()))
        return real_forward(inp)

    model.forward = spy
    fgsm(model, x, y, 0.25)
    fgsm(model, x, y, 0.25, labels="predicted")
    del model.forward
    assert seen and not any(seen), "some module was in training mode during the attack"
    assert [m.training for m in model.modules()] == flags
    # restored even when the attack raises
    with pytest.raises(ValueError):
        fgsm(model, x, y, 0.25, labels="bogus")
    assert [m.training for m in model.modules()] == flags


def test_eval_mode_context_restores_after_exception(tiny_model):
    model = tiny_model("maxout").train()
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            assert not any(m.training for m in model.modules())
            raise RuntimeError("boom")
    assert all(m.training for m in model.modules())


def test_attack_in_eval_mode_ignores_dropout(tiny_model, images, labels):
    """Maxout with dropout: the attack is deterministic (eval mode) even when the model is training."""
    model = tiny_model("maxout").train()
    x, y = _data("maxout", images, labels)
    torch.manual_seed(1)
    a = fgsm(model, x, y, 0.25)
    torch.manual_seed(2)
    b = fgsm(model, x, y, 0.25)
    assert torch.equal(a, b)
    with eval_mode(model):
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(head_loss("softmax", model(xg), y, reduction="sum"), xg)
    assert torch.equal(a, (x + 0.25 * g.sign()).clamp(0, 1))


def test_negative_epsilon_rejected(tiny_model, images, labels):
    model = tiny_model("softmax")
    x, y = _data("softmax", images, labels)
    with pytest.raises(ValueError):
        fgsm(model, x, y, -0.1)


def test_perturb_formula_and_no_mutation(images):
    x = images(4)
    d = torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(3)))
    before = x.clone()
    out = perturb(x, d, 0.3)
    assert torch.equal(x, before)
    assert torch.equal(out, torch.clamp(before + 0.3 * d, 0, 1))


# ------------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("name", ["softmax", "logistic", "maxout", "rbf"])
def test_predicted_label_mode(name, tiny_model, images, labels):
    model = tiny_model(name).train()
    x, y = _data(name, images, labels, n=40)
    with eval_mode(model), torch.no_grad():
        pred, _ = head_predict(model.head, model(x))
    assert torch.equal(attack_labels(model, x, y, "predicted"), pred)
    assert attack_labels(model, x, y, "true") is y
    xa_pred = fgsm(model, x, y, 0.2, labels="predicted")
    # = the true-label attack with the predictions as labels
    assert torch.equal(xa_pred, fgsm(model, x, pred, 0.2))
    # and differs from the true-label attack exactly where the model is wrong (random model: many)
    xa_true = fgsm(model, x, y, 0.2)
    wrong = pred != y
    assert wrong.any()
    assert torch.equal(xa_pred[~wrong], xa_true[~wrong])
    assert not torch.equal(xa_pred[wrong], xa_true[wrong])


def test_unknown_label_mode(tiny_model, images, labels):
    model = tiny_model("softmax")
    x, y = _data("softmax", images, labels)
    with pytest.raises(ValueError, match="labels"):
        attack_labels(model, x, y, "gold")


# ------------------------------------------------------------------------------------- closed forms
def _random_logistic(seed: int, zero_weights: int = 50):
    from tui_adv.core.models import LogisticRegression

    torch.manual_seed(seed)
    m = LogisticRegression()
    with torch.no_grad():
        m.linear.weight.normal_(0, 0.1)
        m.linear.weight[0, :zero_weights] = 0.0  # sign(0) = 0: no step on those pixels
        m.linear.bias.fill_(0.3)
    return m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logistic_autograd_equals_closed_form(seed, images, labels):
    """Binary logistic regression, labels ±1: sign(∇ₓ ζ(−y(wᵀx+b))) = −y·sign(w), for every pixel."""
    model = _random_logistic(seed)
    x = images(64, seed=seed)
    y = labels(64, num_classes=2, seed=seed)
    assert 0 < y.sum() < len(y)
    w = model.linear.weight.detach()
    auto = fgsm_direction(model, x, y)
    closed = logistic_direction_closed_form(w, x, y)
    assert torch.equal(auto, closed)
    # and the closed form itself is the formula −y·sign(w) (labels 0/1 read as −1/+1)
    s = (2 * y - 1).float().reshape(-1, 1, 1, 1)
    assert torch.equal(closed, -s * w.sign().reshape(1, 1, 28, 28).expand_as(x))
    # the FGSM example is then x − y·ε·sign(w), clamped
    torch.testing.assert_close(fgsm(model, x, y, 0.25), (x - 0.25 * s * w.sign().reshape(1, 1, 28, 28)).clamp(0, 1), rtol=0, atol=0)


def test_logistic_fgsm_lowers_margin_by_eps_l1(images, labels):
    """Away from the clamp, FGSM lowers y·z by exactly ε‖w‖₁ (the paper's closed form)."""
    model = _random_logistic(4)
    x = images(32, seed=4, low=0.3, high=0.7)
    y = labels(32, num_classes=2, seed=4)
    eps = 0.1
    s = (2 * y - 1).double()
    with torch.no_grad():
        z = model(x).reshape(-1).double()
        za = model(fgsm(model, x, y, eps)).reshape(-1).double()
    l1 = model.linear.weight.double().abs().sum()
    torch.testing.assert_close(s * za, s * z - eps * l1, rtol=0, atol=1e-4)


def _random_softmax(seed: int, dtype=torch.float32):
    from tui_adv.core.models import SoftmaxRegression

    torch.manual_seed(seed)
    m = SoftmaxRegression()
    with torch.no_grad():
        m.linear.weight.normal_(0, 0.05)
        m.linear.bias.normal_(0, 0.1)
    return m.to(dtype)


@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_autograd_equals_closed_form_float64(seed, images, labels):
    """In float64 the two paths agree on every pixel whose gradient is not exactly 0."""
    model = _random_softmax(seed, torch.float64)
    x = images(32, seed=seed).double()
    y = labels(32, seed=seed)
    auto = fgsm_direction(model, x, y)
    closed = softmax_direction_closed_form(model.linear.weight.detach(), model.linear.bias.detach(), x, y)
    assert torch.equal(auto, closed)
    assert (auto != 0).float().mean() > 0.99


@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_autograd_equals_closed_form_float32(seed, images, labels):
    """float32 autograd vs the exact (float64) closed-form gradient Wᵀ(softmax(Wx+b) − onehot(y)):
    the signs agree wherever the gradient is clearly non-zero (ties / exact zeros are ignored)."""
    model = _random_softmax(seed)
    x = images(64, seed=seed)
    y = labels(64, seed=seed)
    auto = fgsm_direction(model, x, y)
    W, b = model.linear.weight.detach().double(), model.linear.bias.detach().double()
    p = (x.reshape(len(y), -1).double() @ W.t() + b).softmax(dim=1)
    p[torch.arange(len(y)), y] -= 1
    g = (p @ W).reshape(x.shape)
    clear = g.abs() > 1e-6 * g.abs().amax(dim=(1, 2, 3), keepdim=True)
    assert clear.float().mean() > 0.99, "the comparison would be vacuous"
    assert torch.equal(auto[clear], g.sign()[clear])
    closed = softmax_direction_closed_form(model.linear.weight.detach(), model.linear.bias.detach(), x, y)
    assert torch.equal(closed[clear], g.sign()[clear])


def test_gradient_sign_matches_manual_autograd(tiny_model, images, labels):
    """gradient_sign in the model's current mode = sign of torch.autograd.grad of the summed loss."""
    model = tiny_model("rbf").eval()
    x, y = _data("rbf", images, labels)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(head_loss("rbf", model(xg), y, reduction="sum"), xg)
    assert torch.equal(gradient_sign(model, x, y), g.sign())


def test_fgsm_increases_loss_of_linear_model(images, labels):
    """A sanity check with teeth: FGSM raises the loss of every example of a linear model
    (the first-order step is exact for a linear logit), while the opposite step lowers it."""
    model = _random_logistic(5, zero_weights=0)
    x = images(50, seed=5, low=0.3, high=0.7)
    y = labels(50, num_classes=2, seed=5)
    with torch.no_grad():
        clean = head_loss("binary", model(x), y, reduction="none")
        adv = head_loss("binary", model(fgsm(model, x, y, 0.05)), y, reduction="none")
        d = fgsm_direction(model, x, y)
        anti = head_loss("binary", model(perturb(x, -d, 0.05)), y, reduction="none")
    assert (adv > clean).all() and (anti < clean).all()


def test_works_on_a_plain_module_with_head(images, labels):
    """Any nn.Module with a ``head`` attribute can be attacked (used by tests and scripts)."""

    class Tiny(nn.Module):
        head = "softmax"

        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

        def forward(self, x):
            return self.f(x)

    torch.manual_seed(0)
    m = Tiny()
    x, y = images(5), labels(5)
    xa = fgsm(m, x, y, 0.1)
    assert (xa - x).abs().max() <= 0.1 + 1e-6
