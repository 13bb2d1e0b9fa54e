"""Seeds and ensemble members trained as one stacked model (issue 11, ``tui_adv/core/stacked.py``).

Each member of a stack must compute what it computes alone: the same seed, trained by the plain
:class:`~tui_adv.core.train.Trainer`, gives the same weights and the same per-epoch history, bit for bit
on CPU, clean and adversarial, with a ragged last batch, a max norm that some rows exceed and the
momentum ramp. Configs a stack cannot train are refused with the reason.
"""

from __future__ import annotations

import pytest
import torch

from tui_adv.config import TrainConfig
from tui_adv.core.data import MNISTData, Split
from tui_adv.core.models import Maxout
from tui_adv.core.stacked import StackedTrainer, build_stack, stack_refusal
from tui_adv.core.train import Trainer


def _data(n=230, seed=0) -> MNISTData:
    g = torch.Generator().manual_seed(seed)

    def split(m):
        return Split(torch.rand(m, 1, 28, 28, generator=g), torch.randint(0, 10, (m,), generator=g))

    return MNISTData(train=split(n), test=split(50), valid=None, classes=tuple(range(10)))


def _solo(make, seed, data, cfg):
    torch.manual_seed(seed)  # as the runner does: the init, then the dropout masks, from the global generator
    model = make()
    trainer = Trainer(model, data, cfg, seed=seed, batch_every=3)
    trainer.run()
    return model, trainer.state.history


@pytest.mark.parametrize("params,extra", [
    ({"units": 16, "pieces": 3}, {}),
    ({"units": 16, "pieces": 3}, {"mode": "adversarial", "alpha": 0.5, "epsilon": 0.25}),
    ({"units": 24, "pieces": 2, "max_col_norm": 0.09, "init_range": None}, {"mode": "adversarial", "alpha": 0.3, "epsilon": 0.1, "clip": False}),
], ids=["clean", "adversarial", "max_norm_unclipped"])
def test_every_member_of_a_stack_trains_as_it_would_alone(params, extra):
    data = _data()
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, lr_decay=0.99, momentum=0.5, final_momentum=0.7, momentum_saturate=3,
                      eval_adv=True, **extra)  # 230 images: 7 batches of 32 and a ragged one of 6

    def make():
        return Maxout(**params)

    seeds = [7, 100, 3]
    stack = build_stack(make, seeds)
    before = torch.get_rng_state()
    trainer = StackedTrainer(stack, data, cfg, seeds, batch_every=3)
    trainer.run()
    assert torch.equal(before, torch.get_rng_state())  # the stack draws its masks from its own generators
    for k, seed in enumerate(seeds):
        alone, history = _solo(make, seed, data, cfg)
        member = stack.member(k)
        for (name, a), b in zip(member.state_dict().items(), alone.state_dict().values()):
            assert torch.equal(a, b), f"member {k} (seed {seed}): {name} differs from training it alone"
        assert trainer.history[k] == history, f"member {k}'s per-epoch metrics differ from its solo run"
    # the members really differ (a stack of copies would pass the checks above trivially)
    assert not torch.equal(stack.weights[0][0], stack.weights[0][1])


def test_the_batched_products_train_what_the_plain_ones_do_within_float_tolerance():
    """The GPU's path (hidden layers as one batched product for all members), run on CPU: the same
    training within float tolerance of the exact per-member path."""
    data = _data()
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05, mode="adversarial", alpha=0.5, epsilon=0.25, eval_adv=False)

    def make():
        return Maxout(units=16, pieces=3)

    exact, batched = build_stack(make, [1, 2]), build_stack(make, [1, 2])
    batched.batched = True
    StackedTrainer(exact, data, cfg, [1, 2]).run()
    StackedTrainer(batched, data, cfg, [1, 2]).run()
    for a, b in zip(batched.parameters(), exact.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_building_a_stack_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    build_stack(lambda: Maxout(units=8, pieces=2), [1, 2])
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("extra,why", [
    ({"mode": "sign_noise"}, "not stackable"),
    ({"mode": "adversarial", "alpha": 0.0}, "alpha = 0"),
    ({"early_stopping": {"metric": "valid_error", "patience": 2}}, "different epochs"),
    ({"optimizer": "adam"}, "only SGD"),
])
def test_configs_a_stack_cannot_train_are_refused_with_the_reason(extra, why):
    cfg = TrainConfig(epochs=1, **extra)
    assert why in (stack_refusal(cfg) or "")
    with pytest.raises(ValueError, match=why):
        StackedTrainer(build_stack(lambda: Maxout(units=8, pieces=2), [0]), _data(n=40), cfg, [0])
    assert stack_refusal(TrainConfig(epochs=1)) is None
