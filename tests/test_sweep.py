"""fgsm_sweep: one gradient for the whole sweep, points equal to a per-ε recomputation exactly."""

from __future__ import annotations

import math

import pytest
import torch

from tui_adv.core.attacks import fgsm, fgsm_direction
from tui_adv.core.sweep import evaluate, fgsm_sweep, predict

EPS = [0.0, 0.05, 0.1, 0.25, 0.3]
FIELDS = ("epsilon", "accuracy", "error", "mean_confidence", "mean_confidence_wrong", "n", "n_wrong")


def _per_eps(model, x, y, eps, labels, batch_size):
    """The reference: a full FGSM attack at this ε, then batched predictions, statistics by hand."""
    xa = fgsm(model, x, y, eps, labels=labels, batch_size=batch_size)
    pred, conf = predict(model, xa, batch_size)
    wrong = pred != y
    n, nw = len(y), int(wrong.sum())
    return {
        "epsilon": eps,
        "accuracy": (n - nw) / n,
        "error": nw / n,
        "mean_confidence": float(conf.double().mean()),
        "mean_confidence_wrong": float(conf[wrong].double().mean()) if nw else None,
        "n": n,
        "n_wrong": nw,
    }


@pytest.mark.parametrize("name", ["softmax", "logistic", "maxout", "rbf", "inception"])
@pytest.mark.parametrize("labels_mode", ["true", "predicted"])
def test_sweep_equals_per_eps_recomputation_exactly(name, labels_mode, tiny_model, images, labels):
    n = 12 if name == "inception" else 70
    model = tiny_model(name).train()  # the sweep must not depend on the mode the model was left in
    x = images(n, seed=7)
    y = labels(n, num_classes=2 if name == "logistic" else 10, seed=7)
    bs = 5 if name == "inception" else 16  # a ragged last batch
    res = fgsm_sweep(model, x, y, EPS, labels=labels_mode, batch_size=bs)
    assert res.attack == "fgsm" and res.labels == labels_mode
    assert [p.epsilon for p in res.points] == EPS
    for p in res.points:
        ref = _per_eps(model, x, y, p.epsilon, labels_mode, bs)
        got = p.as_dict()
        assert got == ref, f"ε={p.epsilon}: sweep {got} != recomputation {ref}"
    assert all(m.training for m in model.modules())


def test_sweep_on_real_mnist_points_equal_recomputation(mnist_small):
    """A briefly trained softmax model on real digits: the error rises with ε, exact equality holds."""
    from tui_adv.config import TrainConfig
    from tui_adv.core.models import build_model
    from tui_adv.core.train import Trainer

    torch.manual_seed(0)
    model = build_model("softmax")
    Trainer(model, mnist_small, TrainConfig(epochs=1, eval_adv=False), seed=0).run()
    x, y = mnist_small.test.x, mnist_small.test.y
    res = fgsm_sweep(model, x, y, EPS, batch_size=128)
    for p in res.points:
        assert p.as_dict() == _per_eps(model, x, y, p.epsilon, "true", 128)
    errors = [p.error for p in res.points]
    assert errors[0] < 0.3 and errors[-1] > 0.9
    assert errors == sorted(errors)


def test_eps_zero_is_clean_evaluation(tiny_model, images, labels):
    model = tiny_model("maxout")
    x, y = images(50, seed=3), labels(50, seed=3)
    res = fgsm_sweep(model, x, y, [0.0, 0.2], batch_size=16)
    clean = evaluate(model, x, y, batch_size=16)
    assert res.points[0] == clean
    pred, conf = predict(model, x, 16)
    assert clean.accuracy == float((pred == y).double().mean())
    assert clean.mean_confidence == float(conf.double().mean())


def test_statistics_are_consistent(tiny_model, images, labels):
    model = tiny_model("softmax")
    x, y = images(64, seed=5), labels(64, seed=5)
    res = fgsm_sweep(model, x, y, EPS, batch_size=None)
    for p in res.points:
        assert p.n == 64
        assert p.n_wrong == round(p.error * p.n)
        assert math.isclose(p.error, 1 - p.accuracy, abs_tol=1e-12)
        assert 0 <= p.accuracy <= 1
        assert 0.1 <= p.mean_confidence <= 1  # softmax over 10 classes: confidence ≥ 1/10
        if p.n_wrong:
            assert 0.1 <= p.mean_confidence_wrong <= 1


def test_mean_confidence_wrong_none_without_mistakes(tiny_model, images):
    model = tiny_model("softmax")
    x = images(20, seed=1)
    pred, conf = predict(model, x)
    pred = pred.clone()  # predict() returns inference-mode tensors, which autograd refuses as targets
    res = fgsm_sweep(model, x, pred, [0.0])  # labels = the model's own predictions: no clean mistakes
    p = res.points[0]
    assert p.n_wrong == 0 and p.error == 0.0 and p.accuracy == 1.0
    assert p.mean_confidence_wrong is None
    # and with mistakes it is the mean confidence over exactly the misclassified examples
    y = pred.clone()
    y[:5] = (y[:5] + 1) % 10
    q = fgsm_sweep(model, x, y, [0.0]).points[0]
    assert q.n_wrong == 5
    assert q.mean_confidence_wrong == pytest.approx(float(conf[:5].double().mean()), abs=1e-12)


def test_one_gradient_for_the_whole_sweep(tiny_model, images, labels):
    """k points cost one gradient pass (ceil(n/bs) backward-able forwards) plus k forward passes."""
    model = tiny_model("softmax")
    x, y = images(50, seed=2), labels(50, seed=2)
    calls = {"grad": 0, "nograd": 0}
    real = model.forward

    def counting(inp):
        calls["grad" if torch.is_grad_enabled() and inp.requires_grad else "nograd"] += 1
        return real(inp)

    model.forward = counting
    eps = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    fgsm_sweep(model, x, y, eps, batch_size=20)
    assert calls["grad"] == 3, "the input gradient was computed more than once per batch"
    assert calls["nograd"] == 3 * len(eps)


def test_direction_not_dependent_on_eps(tiny_model, images, labels):
    model = tiny_model("maxout")
    x, y = images(20, seed=4), labels(20, seed=4)
    d = fgsm_direction(model, x, y, batch_size=7)
    for eps in (0.05, 0.3):
        assert torch.equal(fgsm(model, x, y, eps, batch_size=7), (x + eps * d).clamp(0, 1))


def test_on_point_and_should_stop(tiny_model, images, labels):
    model = tiny_model("softmax")
    x, y = images(20), labels(20)
    seen = []
    res = fgsm_sweep(model, x, y, EPS, on_point=seen.append)
    assert seen == res.points
    stop_after = 2
    res = fgsm_sweep(model, x, y, EPS, should_stop=lambda: len(seen) >= len(EPS) + stop_after, on_point=seen.append)
    assert [p.epsilon for p in res.points] == EPS[:stop_after]


@pytest.mark.parametrize("bad", [[-0.1], [0.1, float("nan")], [float("inf")]])
def test_invalid_epsilons_rejected(bad, tiny_model, images, labels):
    model = tiny_model("softmax")
    with pytest.raises(ValueError):
        fgsm_sweep(model, images(4), labels(4), bad)


def test_sample_views(tiny_model, images, labels):
    model = tiny_model("maxout")
    n = 25
    x, y = images(n, seed=6), labels(n, seed=6)
    idx, seps = [0, 3, 24, 99, -1], [0.1, 0.25]  # 99 and -1 are out of range: ignored
    res = fgsm_sweep(model, x, y, [0.0, 0.25], batch_size=10, sample_indices=idx, sample_epsilons=seps)
    assert len(res.samples) == 3 * len(seps)
    assert [(s.epsilon, s.index) for s in res.samples] == [(e, i) for e in seps for i in (0, 3, 24)]
    d = fgsm_direction(model, x, y, batch_size=10)
    pred, conf = predict(model, x)
    for s in res.samples:
        for t in (s.clean, s.sign, s.adversarial):
            assert t.shape == (28, 28) and not t.requires_grad and t.device.type == "cpu"
        assert torch.equal(s.clean, x[s.index, 0])
        assert torch.equal(s.sign, d[s.index, 0])
        assert set(s.sign.unique().tolist()) <= {-1.0, 0.0, 1.0}
        assert torch.equal(s.adversarial, (s.clean + s.epsilon * s.sign).clamp(0, 1))
        assert (s.adversarial - s.clean).abs().max() <= s.epsilon + 1e-6
        assert s.label == int(y[s.index])
        assert s.clean_pred == int(pred[s.index])
        assert s.clean_conf == pytest.approx(float(conf[s.index]), abs=1e-5)
        ap, ac = predict(model, s.adversarial.reshape(1, 1, 28, 28))
        assert s.adv_pred == int(ap) and s.adv_conf == pytest.approx(float(ac), abs=1e-5)
    assert fgsm_sweep(model, x, y, [0.1], sample_indices=[1], sample_epsilons=[]).samples == []
