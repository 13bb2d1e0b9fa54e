"""The performance work changes no result: the optimized hot loops compute what the plain ones do.

- The trainer's epoch (index_select gathers, finiteness checked only where the loss is read) gives the
  same weights, bit for bit, as a plain reference loop (``x[idx]``, a check every batch) on CPU.
- A non-finite loss still fails the run within the epoch, before any epoch end or checkpoint.
- The benchmark's lower bound and per-ε loop agree with the sweep (the benchmark would be measuring
  different work otherwise).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from tui_adv.config import TrainConfig
from tui_adv.core.data import MNISTData, Split
from tui_adv.core.models import build_model, head_loss
from tui_adv.core.sweep import fgsm_sweep
from tui_adv.core.train import Diverged, Trainer, lr_at, momentum_at

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _data(n=230, seed=0) -> MNISTData:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    test = Split(torch.rand(40, 1, 28, 28, generator=g), torch.randint(0, 10, (40,), generator=g))
    return MNISTData(train=Split(x, y), test=test, valid=None, classes=tuple(range(10)))


def _reference_epoch(model, data, cfg, seed, epoch=1):
    """The loop as written before the optimizations: advanced indexing, a finiteness check every batch."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=momentum_at(cfg, epoch))
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = data.train.x, data.train.y
    perm = torch.randperm(len(y_all), generator=gen)
    model.train()
    for step, s in enumerate(range(0, len(y_all), cfg.batch_size)):
        idx = perm[s : s + cfg.batch_size]
        x, y = x_all[idx], y_all[idx]
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, step)
        opt.zero_grad(set_to_none=True)
        if cfg.mode == "adversarial":
            xg = x.detach().requires_grad_(True)
            clean = head_loss(model.head, model(xg), y)
            (cfg.alpha * clean).backward()
            x_adv = (x + cfg.epsilon * xg.grad.sign()).clamp_(0, 1)
            adv = head_loss(model.head, model(x_adv), y)
            ((1 - cfg.alpha) * adv).backward()
            loss = cfg.alpha * clean + (1 - cfg.alpha) * adv
        else:
            loss = head_loss(model.head, model(x), y)
            loss.backward()
        assert torch.isfinite(loss)
        opt.step()
        if hasattr(model, "apply_max_norm"):
            model.apply_max_norm()


@pytest.mark.parametrize("mode", ["clean", "adversarial"])
@pytest.mark.parametrize("kind,params", [("softmax", {}), ("maxout", {"units": 16, "pieces": 3})])
def test_trainer_epoch_equals_reference_loop_bit_for_bit(kind, params, mode):
    data = _data()
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.05, lr_decay=0.99, mode=mode, eval_adv=False)  # ragged last batch
    torch.manual_seed(3)  # the init and then the dropout masks come from the global generator
    ours = build_model(kind, **params)
    Trainer(ours, data, cfg, seed=5, batch_every=4)._epoch(1)
    torch.manual_seed(3)
    ref = build_model(kind, **params)
    _reference_epoch(ref, data, cfg, seed=5)
    for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), f"{kind}/{mode}: parameter {name} differs from the reference loop"


@pytest.mark.parametrize("batch_every", [1, 3, 1000])
def test_nan_loss_still_fails_within_the_epoch(batch_every):
    data = _data(n=300)
    data.train.x[40, 0, 5, 5] = float("nan")  # batch 2 of 10 (batch size 30)
    events: list[dict] = []
    saved: list[int] = []
    torch.manual_seed(0)
    t = Trainer(
        build_model("softmax"),
        data,
        TrainConfig(epochs=2, batch_size=30, eval_adv=False),
        seed=0,
        emit=events.append,
        checkpoint=lambda tr: saved.append(tr.state.epoch),
        batch_every=batch_every,
    )
    with pytest.raises(Diverged, match="lr"):
        t.run()
    assert t.state.epoch == 0 and not saved
    assert not any(e["type"] == "epoch_end" for e in events)
    assert all(math.isfinite(e["loss"]) for e in events if e["type"] == "batch")


def test_benchmark_variants_compute_the_same_sweep():
    sys.path.insert(0, str(BENCH))
    try:
        import sweep as bench  # benchmarks/sweep.py
    finally:
        sys.path.remove(str(BENCH))
    torch.manual_seed(0)
    model = build_model("maxout", units=16, pieces=3, init_range=None).eval()
    data = _data(n=10)
    x, y = data.test.x, data.test.y
    eps = bench.epsilons(5)
    ours = [p.as_dict() for p in fgsm_sweep(model, x, y, eps, batch_size=16).points]
    assert bench.per_eps(model, x, y, eps, 16) == ours
    assert bench.lower_bound(model, x, y, eps, 16) == [p["n_wrong"] for p in ours]
    assert all(p.requires_grad for p in model.parameters()), "the lower bound must restore requires_grad"
