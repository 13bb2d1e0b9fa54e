"""What a training run is at and how it goes on: :class:`TrainState` (saved in every checkpoint, with the
fields of the recipe's second stage, ``train.continuation``), the optimiser with the momentum ramp and
learning-rate decay that are read from the epoch and step in it, and the two exceptions that end a run
early (:class:`Cancelled`, :class:`Diverged`). The loop that advances the state is
:class:`~tui_adv.core.train.Trainer`, which re-exports these names.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..config import TrainConfig


class Cancelled(Exception):
    """The run was asked to stop (Ctrl-C, SIGTERM, or cancel from the dashboard)."""


class Diverged(Exception):
    """The loss became NaN or infinite."""


@dataclass
class TrainState:
    """Everything needed to continue training exactly where it stopped."""

    epoch: int = 0  # epochs completed
    step: int = 0
    best_metric: float = math.inf
    best_epoch: int = 0
    best_state: dict | None = None
    bad_epochs: int = 0
    augmented: bool = False
    history: list[dict] = field(default_factory=list)
    # the recipe's second stage (train.continuation)
    best_step: int = 0  # global step at the best epoch (its learning rate continues from there)
    best_train_objective: float | None = None  # the training objective on the training split at the best epoch
    phase: str = "train"  # "train" | "continuation"
    cont_start_step: int = 0
    cont_epochs: int = 0
    cont_momentum: float | None = None
    cont_done: bool = False

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainState":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})  # checkpoints from before a field existed


def make_optimizer(model: nn.Module | list[torch.Tensor], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of ``cfg`` over ``model``'s parameters (or over the tensors given)."""
    params = list(model.parameters()) if isinstance(model, nn.Module) else list(model)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    # On CUDA the fused kernel: each parameter in one pass (momentum buffer and weights) instead of three,
    # and the learning rate read from a device tensor (what a captured step needs, .step_graph). Not on
    # CPU: there its vector tail (a length that is not a multiple of the SIMD width: the output bias) rounds
    # momentum·buffer + grad otherwise than the plain loop once the momentum is not a power of 2 (the
    # recipe's ramp), and a run drifts from the plain loop's weights (measured: 5 of 18 cases in
    # tests/test_perf_equivalence.py). The CPU takes the multi-tensor (foreach) loop, which computes what the
    # plain one does, bit for bit, ~0.2 ms a step slower for the 240-unit maxout (~2% of its epoch).
    on_cuda = bool(params) and all(p.device.type == "cuda" and p.dtype in (torch.float32, torch.float64) for p in params)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           fused=True if on_cuda else None, foreach=None if on_cuda else bool(params))


CHECKPOINT_S_GPU = 30.0


def checkpoint_interval(device: torch.device, requested: float | None = None) -> float:
    """How many seconds of training a run may leave unsaved between its periodic checkpoints (those of
    ``train.checkpoint_every``; :class:`CheckpointClock` says when one is due): ``requested``, else ``$ADV_TUI_CHECKPOINT_S``, else 0 on a CPU (every ``checkpoint_every`` epochs)
    and 30 on a GPU, where an epoch can take about as long as writing its checkpoint (a 1600-unit
    maxout's is 153 MB: 0.14 s here, ``benchmarks/checkpoint.py``; its epoch, 6 to 12 TFLOP of products,
    ~0.1 to 0.25 s at 50 TFLOP/s by count) and writing every epoch could double a run's time. The
    checkpoints a run needs (its last epoch, early stopping's, the continuation's end, the final one)
    are written whatever this says; a stop loses at most about this many seconds of training (see
    :class:`CheckpointClock`), or the epoch under way when an epoch takes longer."""
    from ..errors import UserError

    if requested is None:
        raw = os.environ.get("ADV_TUI_CHECKPOINT_S", "").strip()
        if not raw:
            return CHECKPOINT_S_GPU if device.type == "cuda" else 0.0
        try:
            requested = float(raw)
        except ValueError:
            raise UserError(f"ADV_TUI_CHECKPOINT_S must be a number of seconds (0: every train.checkpoint_every epochs), got {raw!r}") from None
    if not math.isfinite(requested) or requested < 0:
        raise UserError(f"ADV_TUI_CHECKPOINT_S must be a number of seconds ≥ 0, got {requested}")
    return float(requested)


class CheckpointClock:
    """When a periodic checkpoint is due: at an epoch that is a multiple of ``every``, when waiting for
    the next such epoch would leave more than ``seconds`` since the last checkpoint written (or the start
    of training), judged by how long the last epoch took. So the training a stop loses (what ran since the
    last checkpoint) stays within about ``seconds``, however long an epoch is against it."""

    def __init__(self, every: int, seconds: float, now: Callable[[], float] = time.monotonic):
        self.every, self.seconds, self.now = every, seconds, now
        self.last = self.tick = now()

    def due(self, epoch: int) -> bool:
        """Called once at the end of every epoch."""
        now = self.now()
        epoch_s, self.tick = now - self.tick, now
        if not self.every or epoch % self.every:
            return False
        return now - self.last + self.every * epoch_s > self.seconds or self.seconds == 0

    def written(self) -> None:
        self.last = self.tick = self.now()


def momentum_at(cfg: TrainConfig, epoch: int) -> float:
    """Linear ramp from ``momentum`` (epoch 1) to ``final_momentum`` (epoch ``momentum_saturate``)."""
    if cfg.final_momentum is None:
        return cfg.momentum
    t = min(max(epoch - 1, 0) / max(cfg.momentum_saturate - 1, 1), 1.0)
    return cfg.momentum + t * (cfg.final_momentum - cfg.momentum)


def lr_at(cfg: TrainConfig, step: int) -> float:
    return max(cfg.lr * cfg.lr_decay**step, cfg.min_lr) if cfg.lr_decay < 1 else cfg.lr

