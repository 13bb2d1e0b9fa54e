"""The paper's unstated choices as options (issue #10): the dropout gradient, clipping, the attacked
cost, mask draws, sweep variants; and the recipe: unscaled input dropout, strict early stopping, the
continuation stage."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from tui_adv.config import Continuation, EarlyStopping, RunConfig, TrainConfig, validate
from tui_adv.core.attacks import fgsm, fgsm_direction, mask_generator, perturb
from tui_adv.core.data import MNISTData, Split
from tui_adv.core.models import MaskDropout, Maxout, build_model, head_attack_loss, head_loss, head_predict
from tui_adv.core.sweep import fgsm_sweep
from tui_adv.core.train import Trainer

EPS = [0.0, 0.1, 0.25, 0.3]


def _maxout(seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("maxout", units=16, pieces=3, init_range=0.05, **kw)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------ the dropout gradient
def test_dropout_gradient_draws_are_seeded_and_reproducible(images, labels):
    model = _maxout()
    x, y = images(20), labels(20)
    a = fgsm_direction(model, x, y, gradient="dropout", generator=mask_generator(0, 0))
    b = fgsm_direction(model, x, y, gradient="dropout", generator=mask_generator(0, 0))
    c = fgsm_direction(model, x, y, gradient="dropout", generator=mask_generator(0, 1))
    e = fgsm_direction(model, x, y)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # another draw, other masks
    assert not torch.equal(a, e)  # not the eval-mode gradient
    # the input mask keeps 80%: about a fifth of the pixels get no gradient at all (sign 0)
    zero = (a == 0).double().mean().item()
    assert 0.12 < zero < 0.28, zero
    assert (e == 0).double().mean().item() < 0.01


def test_dropout_gradient_leaves_modes_parameters_and_global_rng_alone(images, labels):
    model = _maxout()
    model.train()
    model.hidden[0].eval()  # a mixed state, to see each module's own flag restored
    flags = [m.training for m in model.modules()]
    before = _state(model)
    rng = torch.get_rng_state()
    fgsm_direction(model, images(8), labels(8), gradient="dropout", generator=mask_generator(3, 0))
    assert [m.training for m in model.modules()] == flags
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(m.generator is None for m in model.modules() if isinstance(m, MaskDropout))


def test_dropout_gradient_predictions_stay_deterministic(images, labels):
    """Predicted labels for the attack come from the deterministic model, whatever the gradient."""
    model = _maxout()
    x, y = images(16), labels(16)
    with torch.no_grad():
        model.eval()
        pred, _ = head_predict("softmax", model(x))
    d1 = fgsm_direction(model, x, y, labels="predicted", gradient="dropout", generator=mask_generator(0, 0))
    d2 = fgsm_direction(model, x, pred, labels="true", gradient="dropout", generator=mask_generator(0, 0))
    assert torch.equal(d1, d2)


def test_dropout_gradient_keeps_batchnorm_in_eval_mode(tiny_model, images, labels):
    """A model without dropout masks (the CNN) has the same gradient in both readings: BatchNorm is not
    switched to training statistics by the dropout reading."""
    model = tiny_model("inception")
    x, y = images(4), labels(4)
    rm = model.stem[1].running_mean.clone()
    assert torch.equal(fgsm_direction(model, x, y), fgsm_direction(model, x, y, gradient="dropout", generator=mask_generator(0, 0)))
    assert torch.equal(model.stem[1].running_mean, rm)


# ------------------------------------------------------------------------------------------ clipping, cost
def test_clip_off_leaves_the_box_by_exactly_eps(images, labels):
    model = _maxout()
    x, y = images(10), labels(10)
    d = fgsm_direction(model, x, y)
    for eps in (0.1, 0.25):
        xa = fgsm(model, x, y, eps, clip=False)
        torch.testing.assert_close(xa, x + eps * d, rtol=0, atol=0)
        assert xa.min().item() == pytest.approx(-eps) and xa.max().item() == pytest.approx(1 + eps)
        clipped = fgsm(model, x, y, eps)
        assert clipped.min().item() >= 0 and clipped.max().item() <= 1
        assert torch.equal(clipped, perturb(x, d, eps))


def test_true_class_cost_differs_for_rbf_only(tiny_model, images, labels):
    x, y = images(12), labels(12)
    rbf = tiny_model("rbf")
    assert not torch.equal(fgsm_direction(rbf, x, y), fgsm_direction(rbf, x, y, cost="true_class"))
    logits = rbf(x)
    assert head_attack_loss("rbf", logits, y, "true_class").item() == pytest.approx(-logits.gather(1, y.view(-1, 1)).sum().item())
    soft = tiny_model("softmax")
    assert torch.equal(fgsm_direction(soft, x, y), fgsm_direction(soft, x, y, cost="true_class"))


def test_sigmoid_head_one_vs_rest(images, labels):
    model = _maxout(output="sigmoid")
    assert model.head == "sigmoid"
    x, y = images(6), labels(6)
    z = model.eval()(x)
    want = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.nn.functional.one_hot(y, 10).float(), reduction="none").sum(1).mean()
    torch.testing.assert_close(head_loss("sigmoid", z, y), want)
    pred, conf = head_predict("sigmoid", z)
    assert torch.equal(pred, z.argmax(1)) and torch.allclose(conf, torch.sigmoid(z.max(1).values))


# ------------------------------------------------------------------------------------------ sweeps of every reading
@pytest.mark.parametrize("gradient,clip,cost", [("eval", True, "train"), ("eval", False, "train"), ("dropout", True, "train"),
                                                 ("dropout", False, "train"), ("eval", False, "true_class")])
def test_sweep_equals_per_eps_recomputation_for_every_reading(gradient, clip, cost, images, labels):
    model = _maxout()
    x, y = images(30), labels(30)
    res = fgsm_sweep(model, x, y, EPS, batch_size=7, gradient=gradient, clip=clip, cost=cost,
                     generator=mask_generator(0, 2) if gradient == "dropout" else None)
    assert (res.gradient, res.clip, res.cost) == (gradient, clip, cost)
    for p in res.points:
        gen = mask_generator(0, 2) if gradient == "dropout" else None  # the same draw, recomputed for this ε alone
        xa = fgsm(model, x, y, p.epsilon, batch_size=7, gradient=gradient, clip=clip, cost=cost, generator=gen)
        model.eval()
        with torch.no_grad():
            pred, _ = head_predict("softmax", model(xa))
        assert p.n_wrong == int((pred != y).sum())


def test_one_gradient_per_reading_and_draw(monkeypatch, images, labels):
    import tui_adv.core.sweep as sw

    calls = []
    real = sw.fgsm_direction
    monkeypatch.setattr(sw, "fgsm_direction", lambda *a, **k: calls.append(k.get("gradient")) or real(*a, **k))
    model = _maxout()
    fgsm_sweep(model, images(10), labels(10), EPS, gradient="dropout", generator=mask_generator(0, 0))
    fgsm_sweep(model, images(10), labels(10), EPS)
    assert calls == ["dropout", "eval"]


def _cfg(**sweep) -> RunConfig:
    return validate({"name": "t", "model": {"kind": "maxout", "units": 16, "pieces": 2}, "sweep": sweep})


def test_readings_of_a_config():
    assert [r.name for r in _cfg().readings()] == ["eval+clip"]
    r = _cfg(variants=[{"gradient": "dropout", "masks": 3}, {"clip": False}, {"clip": False}]).readings()
    assert [(x.name, x.masks) for x in r] == [("eval+clip", 1), ("dropout+clip", 3), ("eval+noclip", 1)]
    m = _cfg(matrix=True, matrix_masks=2).readings()
    assert [(x.name, x.masks) for x in m] == [("eval+clip", 1), ("eval+noclip", 1), ("dropout+clip", 2), ("dropout+noclip", 2)]
    rbf = validate({"name": "r", "model": {"kind": "rbf"}, "sweep": {"matrix": True}}).readings()
    assert [x.name for x in rbf] == ["eval+clip", "eval+clip+true_class", "eval+noclip", "eval+noclip+true_class"]
    with pytest.raises(Exception, match="masks"):
        _cfg(variants=[{"masks": 0}])


def test_run_json_reports_every_sweep_with_its_reading(cli, tmp_path, mnist_root):
    db = tmp_path / "runs.db"
    p = cli("run", "configs/maxout.toml", "--headless", "--json", "--db", str(db), "--data-dir", str(mnist_root),
            "--set", "train.epochs=1", "--set", "data.train_limit=500", "--set", "data.test_limit=300",
            "--set", "model.units=32", "--set", "sweep.epsilons=[0,.25]", "--set", "sweep.matrix=false",
            "--set", 'sweep.variants=[{gradient="dropout", masks=3}]')
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    sweeps = {(s["gradient"], s["clip"], s["cost"]): s for s in d["sweeps"]}
    assert set(sweeps) == {("eval", True, "train"), ("dropout", True, "train")}
    assert sweeps[("eval", True, "train")]["masks"] == 1 and sweeps[("dropout", True, "train")]["masks"] == 3
    for s in d["sweeps"]:
        assert s["attack"] == "fgsm" and s["labels"] == "true" and [pt["epsilon"] for pt in s["points"]] == [0.0, 0.25]
    drop = sweeps[("dropout", True, "train")]["points"][1]
    assert drop["draws"] == 3 and drop["error_spread"] >= 0
    # the three draws are independent sweeps in the catalog: mask 0, 1, 2
    from tui_adv.catalog import Store

    store = Store(str(db))
    masks = sorted({p.mask for p in store.sweep_points(d["run_id"]) if p.gradient == "dropout"})
    assert masks == [0, 1, 2]
    full = store.sweeps(d["run_id"], draws=True)
    per_draw = next(s for s in full if s["gradient"] == "dropout")["draws"]
    assert len(per_draw) == 3 and sum(x[1]["error"] for x in per_draw) / 3 == pytest.approx(drop["error"])
    shown = cli("runs", "show", str(d["run_id"]), "--json", "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    assert {(s["gradient"], s["masks"]) for s in json.loads(shown.stdout)["sweeps"]} == {("eval", 1), ("dropout", 3)}


# ------------------------------------------------------------------------------------------ the recipe
def test_input_dropout_keeps_pixels_unscaled():
    torch.manual_seed(0)
    m = Maxout(units=8, pieces=2)
    assert isinstance(m.input_dropout, MaskDropout) and not m.input_dropout.rescale
    assert all(isinstance(b, MaskDropout) and b.rescale for b in m.hidden if isinstance(b, MaskDropout))
    x = torch.full((200, 784), 0.5)
    m.input_dropout.train()
    out = m.input_dropout(x)
    kept = out[out != 0]
    assert torch.all(kept == 0.5)  # the recipe: input_scales 1
    assert 0.75 < (out != 0).double().mean().item() < 0.85  # keep .8
    hidden = m.hidden[1].train()(x)
    assert set(hidden.unique().tolist()) == {0.0, 1.0}  # keep .5, ×2
    r = Maxout(units=8, pieces=2, input_dropout_rescale=True).input_dropout.train()(x)
    assert torch.allclose(r[r != 0], torch.tensor(0.625))  # nn.Dropout's ×1.25
    m.eval()
    assert torch.equal(m.input_dropout(x), x)


def _split_data(n_train=300, n_valid=200, seed=0) -> MNISTData:
    g = torch.Generator().manual_seed(seed)
    mk = lambda n: Split(torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))  # noqa: E731
    return MNISTData(train=mk(n_train), valid=mk(n_valid), test=mk(100), classes=tuple(range(10)))


def test_early_stopping_is_strict_with_the_configured_patience(monkeypatch, mnist_small):
    """An equal validation error is no improvement: 0.3, 0.3, 0.3 with patience 2 stops after epoch 3,
    keeping epoch 1."""
    errors = iter([0.3, 0.3, 0.3, 0.1, 0.1])
    monkeypatch.setattr(Trainer, "_evaluate", lambda self: {"valid_error": next(errors)})
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=5, early_stopping=EarlyStopping(metric="valid_error", patience=2), eval_adv=False)
    t = Trainer(build_model("softmax"), mnist_small, cfg, seed=0)
    assert t.run() == {"epochs_run": 3.0, "best_epoch": 1.0}
    errors = iter([0.3, 0.3, 0.3, 0.1, 0.1])
    cfg = TrainConfig(epochs=5, early_stopping=EarlyStopping(metric="valid_error", patience=3), eval_adv=False)
    t = Trainer(build_model("softmax"), mnist_small, cfg, seed=0)
    assert t.run() == {"epochs_run": 5.0, "best_epoch": 4.0}  # the improvement at epoch 4 resets the count


def test_continuation_stops_when_the_objectives_match(monkeypatch):
    """Stage one early-stops; the continuation trains on train+valid from the best weights, with the
    best point's learning rate, and stops at the first epoch whose validation objective ≤ the target."""
    data = _split_data()
    errors = iter([0.5, 0.4, 0.45, 0.46])
    monkeypatch.setattr(Trainer, "_evaluate", lambda self: {"valid_error": next(errors, 0.9)})
    objectives = []
    real = Trainer._objective

    def scripted(self, split):
        v = real(self, split)
        if self.state.phase == "continuation":
            v = [9.0, 9.0, 0.0][len(objectives)]  # the target is met at the third continuation epoch
            objectives.append(v)
        return v

    monkeypatch.setattr(Trainer, "_objective", scripted)
    torch.manual_seed(0)
    model = _maxout()
    cfg = TrainConfig(epochs=10, lr_decay=0.99, early_stopping=EarlyStopping(patience=2), eval_adv=False, continuation=Continuation(max_epochs=6))
    events = []
    t = Trainer(model, data, cfg, seed=0, emit=events.append)
    out = t.run()
    assert out["best_epoch"] == 2.0 and out["continuation_epochs"] == 3.0 and out["objectives_matched"] == 1.0
    assert out["epochs_run"] == 7.0  # 4 epochs of stage one (patience 2 after the best, epoch 2) + 3
    assert out["objective_target"] == t.state.best_train_objective is not None
    assert len(t.train_split) == 500  # all training images: train + validation
    # the continuation's first step has the lr the schedule had at the best epoch's last step
    # (the lr metric is the last step's: best epoch 2 × 3 steps, then the continuation's 5 steps on 500 images)
    lr_first = [e for e in events if e["type"] == "epoch_end"][4]["metrics"]["lr"]
    assert lr_first == pytest.approx(0.1 * 0.99 ** (2 * 3 + 5 - 1))
    assert any("objective reached the target" in e.get("message", "") for e in events)


def test_continuation_is_bounded_and_resumes(monkeypatch):
    data = _split_data()
    errors = iter([0.5, 0.6])
    monkeypatch.setattr(Trainer, "_evaluate", lambda self: {"valid_error": next(errors, 0.9)})
    cfg = TrainConfig(epochs=5, early_stopping=EarlyStopping(patience=1), eval_adv=False, continuation=Continuation(max_epochs=2))

    def fresh():
        torch.manual_seed(0)
        return Trainer(_maxout(), data, cfg, seed=0)

    straight = fresh()
    out = straight.run()
    assert out["continuation_epochs"] == 2.0  # random data: the validation objective never reaches the target
    # stop after stage one, resume from the checkpoint mid-way: the same weights
    states = []
    t = fresh()
    t.checkpoint_fn = lambda tr: states.append(copy.deepcopy(tr.state_dict()))  # as written to disk at that moment
    errors = iter([0.5, 0.6])
    t.run()
    mid = next(s for s in states if s["train_state"]["phase"] == "continuation" and s["train_state"]["cont_epochs"] == 1)
    errors = iter([])
    r = fresh()
    r.load_state_dict(mid)
    r.run()
    assert all(torch.equal(a, b) for a, b in zip(straight.model.state_dict().values(), r.model.state_dict().values()))


def test_train_clip_off_trains_on_unclamped_examples(mnist_small):
    """train.clip = false: the training-time noise and adversarial examples leave [0, 1] by ε."""
    x = mnist_small.train.x[:50]
    t = Trainer(build_model("softmax"), mnist_small, TrainConfig(mode="sign_noise", epsilon=0.25, clip=False), seed=3)
    a = t._noise(x)
    torch.testing.assert_close((a - x).abs(), torch.full_like(x, 0.25), rtol=0, atol=1e-6)
    assert a.min().item() == pytest.approx(-0.25)
    seen = []
    real = Trainer._loss_and_backward

    def spy(self, xb, yb):
        import tui_adv.core.train as tr

        # the adversarial step perturbs through perturb_sign (the fused sign step) or perturb: watch both
        origs = {name: getattr(tr, name) for name in ("perturb", "perturb_sign")}
        for name, orig in origs.items():
            setattr(tr, name, lambda *a, _o=orig, **k: seen.append(a[3] if len(a) > 3 else k.get("clip", True)) or _o(*a, **k))
        try:
            return real(self, xb, yb)
        finally:
            for name, orig in origs.items():
                setattr(tr, name, orig)

    for clip in (True, False):
        seen.clear()
        torch.manual_seed(0)
        cfg = TrainConfig(mode="adversarial", epochs=1, clip=clip, eval_adv=False)
        tr = Trainer(build_model("softmax"), MNISTData(train=Split(x, mnist_small.train.y[:50]), test=mnist_small.test, valid=None, classes=tuple(range(10))), cfg)
        Trainer._loss_and_backward = spy
        try:
            tr.run()
        finally:
            Trainer._loss_and_backward = real
        assert seen and all(c is clip for c in seen)
