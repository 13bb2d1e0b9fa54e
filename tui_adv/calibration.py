"""The calibration behind ``reproduce --plan`` (:mod:`tui_adv.plan`): how fast this device runs each
model's training step, forward and FGSM direction, measured now on random images (nothing is trained
for keeps, nothing written), and the device's float32 matrix rate.

Each rate is the fastest of at least ``CAL_MIN_ROUNDS`` timed rounds (:func:`_fastest`): on a shared
machine other work only adds time to a round, so the fastest is the device's own speed. Measured under
a competing 2-thread matmul load: the mean of the rounds put a 12 s step at 58 to 733 s, the fastest at
18 to 21 s (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import torch

from .config import RunConfig

CAL_BATCHES = 3  # timed batches per calibration (after 1 warm-up batch)
CAL_EVAL = 500  # images for the forward / direction rates (once per model)
CAL_MIN_S = 0.3  # a cheap model's batches are repeated until this long has been timed
CAL_MIN_ROUNDS = 3  # and every model's at least this often: the fastest round is the estimate's (other work
CAL_MAX_ROUNDS = 20  # on a shared machine only adds time to a round)


@dataclass
class _Rates:
    step_s: float  # seconds per training batch of the config's batch size
    forward_s: float  # seconds per image, eval forward
    direction_s: float  # seconds per image, FGSM direction


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _calibrate(cfg: RunConfig, classes: int, device: torch.device, eval_rates: dict[str, tuple[float, float]]) -> _Rates:
    from .core.attacks import fgsm_direction
    from .core.data import MNISTData
    from .core.models import build_model
    from .core.sweep import predict
    from .core.train import Trainer

    torch.manual_seed(0)
    model = build_model(cfg.model.kind, num_classes=classes, **cfg.model.params()).to(device)
    bs = cfg.train.batch_size
    split = _random_images(cfg, classes, device)

    tcfg = cfg.train.model_copy(update={"mode": "clean" if cfg.train.mode == "augment" else cfg.train.mode, "early_stopping": None,
                                        "continuation": None})
    warm = Trainer(model, MNISTData(train=split(bs), test=split(10), valid=None, classes=tuple(range(classes))), tcfg, seed=0)
    warm._epoch(1)
    trainer = Trainer(model, MNISTData(train=split(CAL_BATCHES * bs), test=split(10), valid=None, classes=tuple(range(classes))), tcfg, seed=0)
    for _ in range(2):  # untimed: on a GPU its warm-up steps and the step's capture (.step_graph) happen here
        trainer._epoch(1)
    step_s = _fastest(lambda: trainer._epoch(1), device) / CAL_BATCHES
    mkey = json.dumps([cfg.model.kind, cfg.model.params(), classes], sort_keys=True, default=str)
    if mkey in eval_rates:
        return _Rates(step_s, *eval_rates[mkey])
    ev = split(CAL_EVAL)
    predict(model, ev.x[:100], batch_size=1000)
    forward_s = _fastest(lambda: predict(model, ev.x, batch_size=1000), device) / CAL_EVAL
    fgsm_direction(model, ev.x[:100], ev.y[:100], batch_size=1000)
    direction_s = _fastest(lambda: fgsm_direction(model, ev.x, ev.y, batch_size=1000), device) / CAL_EVAL
    eval_rates[mkey] = (forward_s, direction_s)
    return _Rates(step_s, forward_s, direction_s)


def _fastest(work, device: torch.device) -> float:  # noqa: ANN001
    """The fastest of at least CAL_MIN_ROUNDS timed rounds of ``work`` (more for cheap work, until CAL_MIN_S
    have been timed, at most CAL_MAX_ROUNDS): a round that other processes slowed down does not count."""
    times: list[float] = []
    while len(times) < CAL_MIN_ROUNDS or (sum(times) < CAL_MIN_S and len(times) < CAL_MAX_ROUNDS):
        _sync(device)
        t0 = time.perf_counter()
        work()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def _random_images(cfg: RunConfig, classes: int, device: torch.device):  # noqa: ANN202
    """``split(n)``: n random images of the config's dataset's shape ((1, 28, 28) for the MNIST family,
    (3, 32, 32) for CIFAR-10) with random labels, on ``device``: what a calibration trains on."""
    from .core.data import Split
    from .core.datasets import dataset_spec

    shape = dataset_spec(cfg.data.dataset).shape
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        return Split(torch.rand(n, *shape, generator=g).to(device), torch.randint(0, classes, (n,), generator=g).to(device))

    return split


def _calibrate_stack(cfg: RunConfig, classes: int, k: int, device: torch.device) -> float:
    """Seconds per training batch of ``k`` members trained as one stack (all of them, one batch each)."""
    from .core.data import MNISTData, Split
    from .core.models import build_model
    from .core.stacked import StackedTrainer, build_stack

    train = _random_images(cfg, classes, device)(CAL_BATCHES * cfg.train.batch_size)
    data = MNISTData(train=train, test=Split(train.x[:10], train.y[:10]), valid=None, classes=tuple(range(classes)))
    stack = build_stack(lambda: build_model(cfg.model.kind, num_classes=classes, **cfg.model.params()), list(range(k)), device)
    trainer = StackedTrainer(stack, data, cfg.train.model_copy(update={"eval_adv": False}), list(range(k)), batch_every=10**9)
    trainer._epoch(1)  # warm-up
    return _fastest(lambda: trainer._epoch(1), device) / CAL_BATCHES


def _cal_key(cfg: RunConfig, classes: int) -> str:
    return json.dumps([cfg.model.kind, cfg.model.params(), classes, cfg.train.mode, cfg.train.batch_size, cfg.train.l1 if cfg.train.mode == "l1" else None],
                      sort_keys=True, default=str)


def _flop_rates(cfg: RunConfig, classes: int) -> _Rates | None:
    """The matrix-product FLOPs of a config's training batch, of one image's forward and of one image's
    FGSM direction, in the place of seconds: :func:`_training_estimate` then counts the step's work."""
    from .core.flops import forward_flops, input_gradient_flops, linear_shapes, train_step_flops
    from .core.models import build_model

    shapes = linear_shapes(build_model(cfg.model.kind, num_classes=classes, **cfg.model.params()))
    if not shapes:  # convolutions (None), or no linear layer at all (the RBF network): not counted
        return None
    mode = "clean" if cfg.train.mode == "augment" else cfg.train.mode
    return _Rates(float(train_step_flops(shapes, cfg.train.batch_size, mode)), float(forward_flops(shapes, 1)), float(input_gradient_flops(shapes, 1)))


def _matrix_rate(device: torch.device) -> float:
    """This device's float32 matrix rate in GFLOP/s: the best of a few 2048³ products."""
    a = torch.rand(2048, 2048, device=device)
    b = torch.rand(2048, 2048, device=device)
    a @ b
    best = float("inf")
    for _ in range(3):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048**3 / best / 1e9
