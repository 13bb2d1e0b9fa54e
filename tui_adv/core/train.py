"""Training: clean, the paper's adversarial objective, and the controls.

Modes (``train.mode``):

- ``clean``: J(x).
- ``adversarial``: J̃ = αJ(x) + (1−α)J(x + ε·sign ∇ₓJ), x_adv regenerated every batch. The direction
  is the gradient of the same (dropout-sampled) clean loss, taken from the backward pass that also
  gives the parameter gradients, so one step costs 2 forwards + 2 backwards.
- ``analytic``: the closed-form worst case of a linear model. Binary logistic regression with y = ±1:
  ζ(ε‖w‖₁ − y(wᵀx + b)) (the paper, section 5; the worst perturbation lowers the margin y·z by ε‖w‖₁
  for either label). Softmax regression: every wrong logit raised by
  ε‖w_c − w_y‖₁, each output treated as independently perturbable (the paper's "pessimistic" form,
  the seed's S03). Mixed with the clean loss by α.
- ``l1``: J(x) + λ‖W₁‖₁ on the first layer (P05).
- ``sign_noise`` / ``uniform_noise``: αJ(x) + (1−α)J(x + noise), noise ±ε per pixel or U(−ε, ε) (P13/P14).
- ``augment``: the seed's second method: clean training, then FGSM examples of the model at that
  point (``augment_ratio`` per clean example) are added to the training set and training continues.

SGD with momentum (optionally ramped linearly), per-step learning-rate decay with a floor, max column
norm where the model has one, early stopping on clean or adversarial validation error (the best
weights are restored). Whole splits live on the device; batches are index slices of a seeded
permutation, so a run is deterministic on CPU for a given seed.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from .attacks import eval_mode, fgsm_direction, gradient_sign, perturb
from .data import MNISTData, Split
from .models import head_loss
from .sweep import evaluate, predict

Emit = Callable[[dict[str, Any]], None]


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

    def to_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
            "augmented": self.augmented,
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "TrainState":
        return cls(**d)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def momentum_at(cfg: TrainConfig, epoch: int) -> float:
    """Linear ramp from ``momentum`` (epoch 1) to ``final_momentum`` (epoch ``momentum_saturate``)."""
    if cfg.final_momentum is None:
        return cfg.momentum
    t = min(max(epoch - 1, 0) / max(cfg.momentum_saturate - 1, 1), 1.0)
    return cfg.momentum + t * (cfg.final_momentum - cfg.momentum)


def lr_at(cfg: TrainConfig, step: int) -> float:
    return max(cfg.lr * cfg.lr_decay**step, cfg.min_lr) if cfg.lr_decay < 1 else cfg.lr


def analytic_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, form: str = "worst_case") -> torch.Tensor:
    """Closed-form worst-case loss of a linear model under an L∞ perturbation of size ε.

    ``form="seed"`` (binary only): the seed report's ζ(−y(wᵀx + b − ε‖w‖₁)), which shifts the logit
    down by ε‖w‖₁ for both labels: the worst case for y = +1, the best case for y = −1."""
    logits = model(x)
    w = model.linear.weight
    if model.head == "binary":
        s = y.to(logits.dtype) * 2 - 1
        z = logits.reshape(-1)
        if form == "seed":
            return F.softplus(-s * (z - eps * w.abs().sum())).mean()
        return F.softplus(-(s * z - eps * w.abs().sum())).mean()  # ζ(−y(wᵀx + b) + ε‖w‖₁)
    # softmax: z_c + ε‖w_c − w_y‖₁ for c ≠ y (0 for c = y)
    diff = (w.unsqueeze(0) - w[y].unsqueeze(1)).abs().sum(dim=2)  # (N, C)
    return F.cross_entropy(logits + eps * diff, y)


class Trainer:
    """Trains ``model`` on ``data`` as ``cfg`` says, reporting progress as events through ``emit``.

    Events: ``{"type": "epoch_start", "epoch", "epochs"}``, ``{"type": "batch", "epoch", "batch",
    "batches", "loss", "step"}`` (every ``batch_every`` batches), ``{"type": "epoch_end", "epoch",
    "epochs", "metrics": {...}}``, ``{"type": "log", "message"}``, ``{"type": "checkpoint", "epoch"}``.
    """

    def __init__(
        self,
        model: nn.Module,
        data: MNISTData,
        cfg: TrainConfig,
        *,
        seed: int = 0,
        emit: Emit | None = None,
        should_stop: Callable[[], bool] | None = None,
        checkpoint: Callable[["Trainer"], None] | None = None,
        batch_every: int = 20,
    ):
        self.model, self.data, self.cfg, self.seed = model, data, cfg, seed
        self.emit = emit or (lambda e: None)
        self.should_stop = should_stop or (lambda: False)
        self.checkpoint_fn = checkpoint
        self.batch_every = max(1, batch_every)
        self.device = data.train.x.device
        self.opt = make_optimizer(model, cfg)
        self.state = TrainState()
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.noise_gen = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.train_split: Split = data.train

    # ------------------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "train_state": self.state.to_dict(),
            "gen": self.gen.get_state(),
            "noise_gen": self.noise_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "augmented_x": self.train_split.x.cpu() if self.state.augmented else None,
            "augmented_y": self.train_split.y.cpu() if self.state.augmented else None,
        }

    def load_state_dict(self, d: dict) -> None:
        self.model.load_state_dict(d["model"])
        self.opt.load_state_dict(d["optimizer"])
        self.state = TrainState.from_dict(d["train_state"])
        self.gen.set_state(d["gen"])
        self.noise_gen.set_state(d["noise_gen"])
        torch.set_rng_state(d["torch_rng"])
        if d.get("cuda_rng") and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(d["cuda_rng"])
        if self.state.augmented and d.get("augmented_x") is not None:
            self.train_split = Split(d["augmented_x"].to(self.device), d["augmented_y"].to(self.device))

    # ------------------------------------------------------------------------------ the loop
    def run(self) -> dict[str, float]:
        cfg = self.cfg
        while self.state.epoch < cfg.epochs:
            if cfg.early_stopping and self.state.bad_epochs >= cfg.early_stopping.patience:
                break  # resumed from the checkpoint of the epoch that triggered early stopping
            epoch = self.state.epoch + 1
            if cfg.mode == "augment" and not self.state.augmented and self.state.epoch >= self._augment_after():
                self._augment()
            self.emit({"type": "epoch_start", "epoch": epoch, "epochs": cfg.epochs})
            loss, err = self._epoch(epoch)
            metrics = {"train_loss": loss, "train_error": err, **self._evaluate()}
            metrics["lr"] = self._lr()
            self.state.epoch = epoch
            stop = self._early_stopping(metrics)
            self.state.history.append({"epoch": epoch, **metrics})
            self.emit({"type": "epoch_end", "epoch": epoch, "epochs": cfg.epochs, "metrics": metrics})
            if self.checkpoint_fn is not None and ((cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0) or epoch == cfg.epochs or stop):
                self.checkpoint_fn(self)
            if stop:
                self.emit({"type": "log", "message": f"early stopping after epoch {epoch}: best epoch {self.state.best_epoch}"})
                break
        if cfg.early_stopping and self.state.best_state is not None:
            self.model.load_state_dict(self.state.best_state)
            self.emit({"type": "log", "message": f"restored the weights of epoch {self.state.best_epoch} (best {cfg.early_stopping.metric})"})
        out = {"epochs_run": float(self.state.epoch)}
        if cfg.early_stopping:
            out["best_epoch"] = float(self.state.best_epoch)
        return out

    def _augment_after(self) -> int:
        return self.cfg.augment_after if self.cfg.augment_after is not None else self.cfg.epochs // 2

    def _lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def _augment(self) -> None:
        """Add FGSM examples of the current model to the training set (the seed's second method)."""
        x, y = self.data.train.x, self.data.train.y
        n_adv = int(round(self.cfg.augment_ratio * len(y)))
        idx = torch.randint(0, len(y), (n_adv,), generator=self.gen).to(self.device)
        direction = fgsm_direction(self.model, x[idx], y[idx], batch_size=1000)
        x_adv = perturb(x[idx], direction, self.cfg.epsilon)
        self.train_split = Split(torch.cat([x, x_adv]), torch.cat([y, y[idx]]))
        self.state.augmented = True
        self.emit({"type": "log", "message": f"added {n_adv} FGSM examples (ε={self.cfg.epsilon}) to the training set"})

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        eps = self.cfg.epsilon
        if self.cfg.mode == "sign_noise":
            r = torch.randint(0, 2, x.shape, generator=self.noise_gen, device=x.device, dtype=x.dtype) * 2 - 1
        else:
            r = torch.rand(x.shape, generator=self.noise_gen, device=x.device, dtype=x.dtype) * 2 - 1
        return perturb(x, r, eps)

    def _epoch(self, epoch: int) -> tuple[float, float]:
        cfg, model, opt = self.cfg, self.model, self.opt
        x_all, y_all = self.train_split.x, self.train_split.y
        n = len(y_all)
        perm = torch.randperm(n, generator=self.gen).to(self.device)
        batches = math.ceil(n / cfg.batch_size)
        if cfg.optimizer == "sgd":
            for g in opt.param_groups:
                g["momentum"] = momentum_at(cfg, epoch)
        model.train()
        max_norm = getattr(model, "apply_max_norm", None)
        total_loss = torch.zeros((), device=self.device, dtype=torch.float64)
        wrong = torch.zeros((), device=self.device, dtype=torch.long)
        for b in range(batches):
            if self.should_stop():
                raise Cancelled()
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x, y = x_all.index_select(0, idx), y_all.index_select(0, idx)  # half the cost of x_all[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, self.state.step)
            opt.zero_grad(set_to_none=True)
            loss, logits = self._loss_and_backward(x, y)
            loss = loss.detach()
            opt.step()
            if max_norm is not None:
                max_norm()
            self.state.step += 1
            total_loss += loss * len(y)
            with torch.no_grad():
                pred = (logits.reshape(-1) > 0).long() if model.head == "binary" else logits.argmax(dim=1)
                wrong += (pred != y).sum()
            if (b + 1) % self.batch_every == 0 or b + 1 == batches:
                # Finiteness is checked here, where the loss is read anyway, not every batch: a per-batch
                # check is a host sync that stalls a GPU. A NaN/inf loss of any batch so far shows in the sum.
                if not torch.isfinite(total_loss):
                    raise Diverged(f"the training loss became non-finite ({float(loss)}) by epoch {epoch}, batch {b + 1}; lower train.lr")
                self.emit(
                    {"type": "batch", "epoch": epoch, "batch": b + 1, "batches": batches, "loss": float(loss), "step": self.state.step}
                )
        return float(total_loss) / n, float(wrong) / n

    def _loss_and_backward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the batch objective and its parameter gradients. Returns (loss, clean logits)."""
        cfg, model = self.cfg, self.model
        head = model.head
        mode = cfg.mode
        if mode in ("clean", "augment"):
            logits = model(x)
            loss = head_loss(head, logits, y)
            loss.backward()
            return loss, logits
        if mode == "l1":
            logits = model(x)
            loss = head_loss(head, logits, y) + cfg.l1 * model.first_layer_weight().abs().sum()
            loss.backward()
            return loss, logits
        a = cfg.alpha
        if mode == "analytic":
            logits = model(x)
            loss = a * head_loss(head, logits, y) + (1 - a) * analytic_loss(model, x, y, cfg.epsilon, cfg.analytic_form)
            loss.backward()
            return loss, logits
        if mode in ("sign_noise", "uniform_noise"):
            logits = model(x)
            loss = a * head_loss(head, logits, y) + (1 - a) * head_loss(head, model(self._noise(x)), y)
            loss.backward()
            return loss, logits
        if mode == "adversarial":
            xg = x.detach().requires_grad_(True)
            logits = model(xg)
            clean = head_loss(head, logits, y)
            if a > 0:
                (a * clean).backward()  # parameter grads (×α) and ∇ₓ in one pass
                direction = xg.grad.sign()
            else:
                direction = gradient_sign(model, x, y)
            adv = head_loss(head, model(perturb(x, direction, cfg.epsilon)), y)
            ((1 - a) * adv).backward()
            return (a * clean + (1 - a) * adv).detach(), logits
        raise ValueError(f"unknown train mode {mode!r}")

    def _eval_split(self) -> tuple[str, Split]:
        split = self.data.valid if self.data.valid is not None else self.data.test
        name = "valid" if self.data.valid is not None else "test"
        return name, split.limit(self.cfg.eval_limit)

    def _evaluate(self) -> dict[str, float]:
        name, split = self._eval_split()
        out = {f"{name}_error": evaluate(self.model, split.x, split.y, batch_size=1000).error}
        if self.cfg.eval_adv:
            direction = fgsm_direction(self.model, split.x, split.y, batch_size=1000)
            pred, _ = predict(self.model, perturb(split.x, direction, self.cfg.epsilon), batch_size=1000)
            out[f"{name}_adv_error"] = float((pred != split.y).double().mean())
        return out

    def _early_stopping(self, metrics: dict[str, float]) -> bool:
        es = self.cfg.early_stopping
        if es is None:
            return False
        value = metrics.get(es.metric)
        if value is None:
            raise ValueError(f"early stopping on {es.metric} needs train.eval_adv = true")
        if value < self.state.best_metric:
            self.state.best_metric = value
            self.state.best_epoch = self.state.epoch
            self.state.best_state = copy.deepcopy({k: v.detach().clone() for k, v in self.model.state_dict().items()})
            self.state.bad_epochs = 0
            return False
        self.state.bad_epochs += 1
        return self.state.bad_epochs >= es.patience
