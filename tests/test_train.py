"""Training modes on a small real-MNIST subset; determinism; early stopping; divergence; closed forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tui_adv.config import EarlyStopping, TrainConfig
from tui_adv.core.attacks import fgsm
from tui_adv.core.data import MNISTData, Split
from tui_adv.core.models import LogisticRegression, SoftmaxRegression, build_model, head_loss
from tui_adv.core.sweep import evaluate
from tui_adv.core.train import Cancelled, Diverged, Trainer, analytic_loss, lr_at, momentum_at


@pytest.fixture(scope="module")
def mnist_valid_small(mnist_root):
    from tui_adv.core.data import load_mnist

    return load_mnist(mnist_root, "cpu", validation=True, train_limit=1000, test_limit=500)


def _train(data, kind="softmax", seed=0, model_params=None, **cfg):
    cfg.setdefault("epochs", 2)
    torch.manual_seed(seed)
    model = build_model(kind, num_classes=len(data.classes), **(model_params or {}))
    events: list[dict] = []
    trainer = Trainer(model, data, TrainConfig(**cfg), seed=seed, emit=events.append)
    before = evaluate(model, data.test.x, data.test.y).error
    summary = trainer.run()
    after = evaluate(model, data.test.x, data.test.y).error
    return model, trainer, before, after, summary, events


# --------------------------------------------------------------------------------- every mode learns
@pytest.mark.parametrize(
    "mode,extra",
    [
        ("clean", {}),
        ("adversarial", {}),
        ("adversarial", {"alpha": 0.0}),  # pure adversarial objective: the direction needs its own gradient
        ("analytic", {}),
        ("l1", {"l1": 1e-4}),
        ("sign_noise", {}),
        ("uniform_noise", {}),
        ("augment", {"augment_after": 1}),
    ],
)
def test_softmax_mode_learns(mode, extra, mnist_small):
    model, trainer, before, after, summary, events = _train(mnist_small, mode=mode, **extra)
    assert before > 0.7, "an untrained 10-class model should be near chance"
    assert after < before - 0.35, f"mode {mode}: test error {before:.3f} -> {after:.3f}"
    h = trainer.state.history
    assert [e["epoch"] for e in h] == [1, 2]
    for e in h:
        assert math.isfinite(e["train_loss"]) and 0 <= e["train_error"] <= 1
        assert {"test_error", "test_adv_error", "lr"} <= set(e)
    assert h[-1]["test_error"] == pytest.approx(after)
    assert summary["epochs_run"] == 2.0
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    kinds = [e["type"] for e in events]
    assert kinds.count("epoch_start") == 2 and kinds.count("epoch_end") == 2 and "batch" in kinds


def test_logistic_modes_learn(mnist_3v7_small):
    for mode in ("clean", "analytic", "adversarial"):
        _, _, before, after, _, _ = _train(mnist_3v7_small, kind="logistic", mode=mode, epochs=2)
        assert after < 0.1 and after < before, f"{mode}: {before:.3f} -> {after:.3f}"


def test_maxout_adversarial_learns(mnist_small):
    # PyTorch's default init (init_range unset): the pylearn2 U(±.005) init needs far more than 40 steps
    params = {"units": 32, "pieces": 2, "input_dropout": 0.2, "hidden_dropout": 0.5, "init_range": None, "max_col_norm": 1.9365}
    model, _, before, after, _, _ = _train(mnist_small, kind="maxout", model_params=params, mode="adversarial", epochs=3, lr=0.1)
    assert after < before - 0.3
    # the max column norm holds after training
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            assert m.weight.norm(dim=1).max() <= 1.9365 + 1e-4


def test_adversarial_training_improves_fgsm_error(mnist_small):
    """The point of the objective: FGSM error at the training ε is lower than after clean training."""
    _, tc, *_ = _train(mnist_small, mode="clean", epochs=3)
    _, ta, *_ = _train(mnist_small, mode="adversarial", epochs=3)
    assert ta.state.history[-1]["test_adv_error"] < tc.state.history[-1]["test_adv_error"] - 0.1


def test_l1_shrinks_first_layer(mnist_small):
    mc, *_ = _train(mnist_small, mode="clean")
    ml, *_ = _train(mnist_small, mode="l1", l1=0.0025)
    assert ml.linear.weight.abs().sum() < 0.8 * mc.linear.weight.abs().sum()


def test_augment_adds_fgsm_examples(mnist_small):
    model, trainer, *_ , events = _train(mnist_small, mode="augment", augment_after=1, augment_ratio=0.5, epsilon=0.2)
    n = len(mnist_small.train)
    split = trainer.train_split
    assert trainer.state.augmented and len(split) == n + n // 2
    assert split.x.shape[1:] == (1, 28, 28)
    assert torch.equal(split.x[:n], mnist_small.train.x) and torch.equal(split.y[:n], mnist_small.train.y)
    added = split.x[n:]
    assert added.min() >= 0 and added.max() <= 1
    # every added image is within ε (L∞) of a training image with the same label, and not a copy of one
    dist = torch.cdist(added.flatten(1).double(), mnist_small.train.x.flatten(1).double(), p=float("inf"))
    near = dist <= 0.2 + 1e-6
    same_label = split.y[n:].unsqueeze(1) == mnist_small.train.y.unsqueeze(0)
    assert (near & same_label).any(dim=1).all()
    assert (dist.min(dim=1).values > 0.1).all()
    assert any("FGSM examples" in e.get("message", "") for e in events if e["type"] == "log")
    assert len(mnist_small.train) == n, "augmenting must not modify the data object"


def test_noise_modes(mnist_small):
    x = mnist_small.train.x[:50]
    inside = (x >= 0.25) & (x <= 0.75)
    for mode in ("sign_noise", "uniform_noise"):
        torch.manual_seed(0)
        t = Trainer(build_model("softmax"), mnist_small, TrainConfig(mode=mode, epsilon=0.25), seed=3)
        a = t._noise(x)
        d = (a - x).abs()
        assert a.min() >= 0 and a.max() <= 1 and d.max() <= 0.25 + 1e-6
        if mode == "sign_noise":
            torch.testing.assert_close(d[inside], torch.full_like(d[inside], 0.25), rtol=0, atol=1e-6)
        else:
            assert d[inside].mean() < 0.2 and d[inside].std() > 0.03
        t2 = Trainer(build_model("softmax"), mnist_small, TrainConfig(mode=mode, epsilon=0.25), seed=3)
        assert torch.equal(t2._noise(x), a), "the noise is seeded"


# --------------------------------------------------------------------------------- determinism
def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "kind,params,mode",
    [
        ("maxout", {"units": 16, "pieces": 2, "input_dropout": 0.2, "hidden_dropout": 0.5}, "adversarial"),
        ("softmax", {}, "sign_noise"),
        ("softmax", {}, "augment"),
    ],
)
def test_seeded_training_is_deterministic(kind, params, mode, mnist_small):
    runs = []
    for _ in range(2):
        model, trainer, *_ = _train(mnist_small, kind=kind, model_params=params, mode=mode, epochs=2, augment_after=1)
        runs.append((_weights(model), trainer.state.history))
    (w1, h1), (w2, h2) = runs
    assert h1 == h2
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    model3, trainer3, *_ = _train(mnist_small, kind=kind, model_params=params, mode=mode, epochs=2, augment_after=1, seed=1)
    w3 = _weights(model3)
    assert not all(torch.equal(w1[k], w3[k]) for k in w1), "a different seed should give different weights"


def test_trainer_seed_controls_batch_order(mnist_small):
    """The data order comes from the trainer's own seeded generator, not from the global RNG."""
    torch.manual_seed(0)
    init = build_model("softmax").state_dict()

    def run(seed, global_seed):
        model = build_model("softmax")
        model.load_state_dict(init)
        torch.manual_seed(global_seed)
        Trainer(model, mnist_small, TrainConfig(epochs=1, eval_adv=False), seed=seed).run()
        return model.linear.weight.detach().clone()

    a, b, c = run(0, 1), run(0, 2), run(1, 1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_modes_train_different_objectives(mnist_small):
    """Same seed, same init, one epoch: every mode ends at different weights (no mode silently falls back
    to clean training)."""
    torch.manual_seed(0)
    init = build_model("softmax").state_dict()
    weights = {}
    for mode in ("clean", "adversarial", "analytic", "l1", "sign_noise", "uniform_noise"):
        model = build_model("softmax")
        model.load_state_dict(init)
        Trainer(model, mnist_small, TrainConfig(epochs=1, mode=mode, eval_adv=False), seed=0).run()
        weights[mode] = model.linear.weight.detach().clone()
    modes = list(weights)
    for i, m1 in enumerate(modes):
        for m2 in modes[i + 1 :]:
            assert (weights[m1] - weights[m2]).abs().max() > 1e-4, f"{m1} and {m2} trained the same weights"


def test_resume_from_state_dict_is_exact(mnist_small):
    """Stopping after epoch 1 and continuing from the trainer's state_dict gives the same weights."""
    params = {"units": 16, "pieces": 2}
    straight, *_ = _train(mnist_small, kind="maxout", model_params=params, mode="adversarial", epochs=2)

    torch.manual_seed(0)
    m1 = build_model("maxout", **params)
    t1 = Trainer(m1, mnist_small, TrainConfig(mode="adversarial", epochs=1), seed=0)
    t1.run()
    state = t1.state_dict()
    torch.manual_seed(12345)  # the global RNG must come from the checkpoint, not from here
    m2 = build_model("maxout", **params)
    t2 = Trainer(m2, mnist_small, TrainConfig(mode="adversarial", epochs=2), seed=0)
    t2.load_state_dict(state)
    t2.run()
    w, r = _weights(straight), _weights(m2)
    assert all(torch.equal(w[k], r[k]) for k in w)


# --------------------------------------------------------------------------------- early stopping
def test_early_stopping_restores_best_weights(mnist_small, monkeypatch):
    """Scripted validation errors 0.5, 0.3, 0.4, 0.45 with patience 2: stop after epoch 4, keep epoch 2."""
    errors = iter([0.5, 0.3, 0.4, 0.45, 0.2, 0.1])
    monkeypatch.setattr(Trainer, "_evaluate", lambda self: {"valid_error": next(errors)})
    torch.manual_seed(0)
    model = build_model("softmax")
    snapshots = {}

    def emit(e):
        if e["type"] == "epoch_end":
            snapshots[e["epoch"]] = _weights(model)

    cfg = TrainConfig(epochs=6, early_stopping=EarlyStopping(metric="valid_error", patience=2), eval_adv=False)
    trainer = Trainer(model, mnist_small, cfg, seed=0, emit=emit)
    summary = trainer.run()
    assert summary == {"epochs_run": 4.0, "best_epoch": 2.0}
    assert sorted(snapshots) == [1, 2, 3, 4]
    final = _weights(model)
    assert all(torch.equal(final[k], snapshots[2][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[4][k]) for k in final)


def test_early_stopping_real_validation(mnist_valid_small):
    """Without scripting: the returned model's validation error is the best one seen."""
    assert mnist_valid_small.valid is not None and len(mnist_valid_small.valid) == 500
    cfg = dict(epochs=4, lr=0.5, eval_adv=False, early_stopping=EarlyStopping(metric="valid_error", patience=10))
    model, trainer, *_ = _train(mnist_valid_small, **cfg)
    best = min(e["valid_error"] for e in trainer.state.history)
    assert "test_error" not in trainer.state.history[0]
    assert evaluate(model, mnist_valid_small.valid.x, mnist_valid_small.valid.y).error == best
    assert trainer.state.history[trainer.state.best_epoch - 1]["valid_error"] == best


def test_early_stopping_on_adv_error_needs_eval_adv(mnist_valid_small):
    cfg = TrainConfig(epochs=1, eval_adv=False, early_stopping=EarlyStopping(metric="valid_adv_error"))
    with pytest.raises(ValueError, match="eval_adv"):
        Trainer(build_model("softmax"), mnist_valid_small, cfg).run()


# --------------------------------------------------------------------------------- divergence, cancel
def _synthetic(n=200, nan=False):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    if nan:
        x[7, 0, 3, 3] = float("nan")
    test = Split(torch.rand(50, 1, 28, 28, generator=g), torch.randint(0, 10, (50,), generator=g))
    return MNISTData(train=Split(x, y), test=test, valid=None, classes=tuple(range(10)))


def test_nan_in_data_raises_diverged():
    torch.manual_seed(0)
    t = Trainer(build_model("softmax"), _synthetic(nan=True), TrainConfig(epochs=1, batch_size=200), seed=0)
    with pytest.raises(Diverged, match="lr"):
        t.run()


def test_huge_learning_rate_raises_diverged():
    # softmax regression's CE gradient is bounded, so only an lr that overflows float32 weights diverges
    torch.manual_seed(0)
    data = _synthetic()
    t = Trainer(build_model("softmax"), data, TrainConfig(epochs=20, lr=1e37, momentum=0.9, batch_size=20), seed=0)
    with pytest.raises(Diverged):
        t.run()
    assert t.state.epoch < 20


def test_should_stop_cancels():
    torch.manual_seed(0)
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 3

    t = Trainer(build_model("softmax"), _synthetic(), TrainConfig(epochs=5, batch_size=20), seed=0, should_stop=stop)
    with pytest.raises(Cancelled):
        t.run()
    assert t.state.step == 3


# --------------------------------------------------------------------------------- schedules
def test_momentum_and_lr_schedules():
    cfg = TrainConfig(momentum=0.5, final_momentum=0.7, momentum_saturate=11, lr=0.1, lr_decay=0.5, min_lr=0.01)
    assert momentum_at(cfg, 1) == pytest.approx(0.5)
    assert momentum_at(cfg, 6) == pytest.approx(0.6)
    assert momentum_at(cfg, 11) == pytest.approx(0.7) and momentum_at(cfg, 500) == pytest.approx(0.7)
    assert momentum_at(TrainConfig(momentum=0.3), 100) == 0.3
    assert lr_at(cfg, 0) == pytest.approx(0.1) and lr_at(cfg, 1) == pytest.approx(0.05)
    assert lr_at(cfg, 100) == pytest.approx(0.01)
    assert lr_at(TrainConfig(lr=0.2), 10**6) == 0.2


# --------------------------------------------------------------------------------- analytic = FGSM
def test_analytic_logistic_equals_fgsm_loss_away_from_clamp(images, labels):
    """ζ(ε‖w‖₁ − y(wᵀx+b)) is the loss at the FGSM point x − yε·sign(w) when the clamp is inactive."""
    torch.manual_seed(0)
    model = LogisticRegression()
    with torch.no_grad():
        model.linear.weight.normal_(0, 0.05)
    x = images(64, seed=11, low=0.3, high=0.7)
    y = labels(64, num_classes=2, seed=11)
    for eps in (0.0, 0.05, 0.2):
        xa = fgsm(model, x, y, eps)
        assert ((xa - x).abs() - eps).abs().max() < 1e-6, "the clamp must be inactive for this check"
        with torch.no_grad():
            fgsm_loss = head_loss("binary", model(xa), y)
            closed = analytic_loss(model, x, y, eps)
        torch.testing.assert_close(closed, fgsm_loss, rtol=1e-5, atol=1e-6)
    # and it really depends on ε (the check is not vacuous)
    with torch.no_grad():
        assert analytic_loss(model, x, y, 0.2) > analytic_loss(model, x, y, 0.0) + 0.1


def test_analytic_seed_form_is_worst_case_for_positives_only(images, labels):
    """The seed's ζ(−y(wᵀx+b − ε‖w‖₁)): equal to the worst case on y = +1 examples, and on y = −1
    examples equal to the loss at the perturbation that *helps* (x − ε·sign(w), the opposite of FGSM)."""
    torch.manual_seed(1)
    model = LogisticRegression()
    with torch.no_grad():
        model.linear.weight.normal_(0, 0.05)
    x = images(64, seed=13, low=0.3, high=0.7)
    y = labels(64, num_classes=2, seed=13)
    eps = 0.2
    pos, neg = y == 1, y == 0
    assert pos.any() and neg.any()
    with torch.no_grad():
        seed_pos = analytic_loss(model, x[pos], y[pos], eps, "seed")
        worst_pos = analytic_loss(model, x[pos], y[pos], eps)
        seed_neg = analytic_loss(model, x[neg], y[neg], eps, "seed")
        helped = x[neg] - eps * model.linear.weight.sign().view(1, 1, 28, 28)  # lowers z: helps y = −1
        torch.testing.assert_close(seed_pos, worst_pos)
        torch.testing.assert_close(seed_neg, head_loss("binary", model(helped), y[neg]), rtol=1e-5, atol=1e-6)
        assert seed_neg < head_loss("binary", model(x[neg]), y[neg]) < analytic_loss(model, x[neg], y[neg], eps)


def test_analytic_softmax_bounds_fgsm_loss(images, labels):
    """Softmax: the pessimistic closed form is an upper bound on the loss at any L∞ perturbation
    (FGSM included), exact for two classes (where the FGSM step is the worst case)."""
    x = images(64, seed=12, low=0.3, high=0.7)
    for classes in (10, 2):
        torch.manual_seed(classes)
        model = SoftmaxRegression(classes)
        with torch.no_grad():
            model.linear.weight.normal_(0, 0.05)
        y = labels(64, num_classes=classes, seed=12)
        eps = 0.1
        with torch.no_grad():
            fgsm_loss = head_loss("softmax", model(fgsm(model, x, y, eps)), y)
            closed = analytic_loss(model, x, y, eps)
            clean = head_loss("softmax", model(x), y)
            rand = head_loss("softmax", model((x + eps * torch.randn_like(x).sign()).clamp(0, 1)), y)
        assert closed >= fgsm_loss - 1e-5 and closed >= rand and fgsm_loss > clean
        if classes == 2:
            torch.testing.assert_close(closed, fgsm_loss, rtol=1e-5, atol=1e-6)
        else:
            assert closed > fgsm_loss
        # per example, for two classes: CE = softplus(z_other − z_y + ε‖w_other − w_y‖₁)
        if classes == 2:
            with torch.no_grad():
                z = model(x)
                w = model.linear.weight
                margin = z[torch.arange(64), 1 - y] - z[torch.arange(64), y] + eps * (w[1] - w[0]).abs().sum()
                torch.testing.assert_close(F.softplus(margin).mean(), closed, rtol=1e-5, atol=1e-6)
