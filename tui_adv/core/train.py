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
from typing import Any, Callable

import torch
from torch import nn

from ..config import TrainConfig
from .attacks import fgsm_direction, gradient_sign, perturb, perturb_sign
from .data import MNISTData, Split
from .heads import analytic_loss, head_loss
from .step_graph import StepGraph, graph_mode
from .train_metrics import TrainerMetrics
from .train_state import Cancelled, CheckpointClock, Diverged, TrainState, checkpoint_interval, lr_at, make_optimizer, momentum_at

Emit = Callable[[dict[str, Any]], None]


class Trainer(TrainerMetrics):
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
        graph: str | None = None,
        checkpoint_s: float | None = None,
    ):
        self.model, self.data, self.cfg, self.seed = model, data, cfg, seed
        self.emit = emit or (lambda e: None)
        self.should_stop = should_stop or (lambda: False)
        self.checkpoint_fn = checkpoint
        self.batch_every = max(1, batch_every)
        self.device = data.train.x.device
        self.clock = CheckpointClock(cfg.checkpoint_every, checkpoint_interval(self.device, checkpoint_s))
        self.opt = make_optimizer(model, cfg)
        self.state = TrainState()
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.noise_gen = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.train_split: Split = data.train
        self.max_norm = getattr(model, "apply_max_norm", None)
        # the training step: the plain loop, or static tensors replayed as a CUDA graph (.step_graph)
        self.graph_mode = graph_mode(self.device, graph, cfg.optimizer)
        self.graph: StepGraph | None = None

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
        if self.state.phase == "continuation":
            self.train_split = self._all_training_images()

    # ------------------------------------------------------------------------------ the loop
    def run(self) -> dict[str, float]:
        cfg = self.cfg
        st = self.state
        self.clock.written()  # the periodic checkpoints count from here
        while st.phase == "train" and st.epoch < cfg.epochs:
            if cfg.early_stopping and st.bad_epochs >= cfg.early_stopping.patience:
                break  # resumed from the checkpoint of the epoch that triggered early stopping
            epoch = st.epoch + 1
            if cfg.mode == "augment" and not st.augmented and st.epoch >= self._augment_after():
                self._augment()
            self.emit({"type": "epoch_start", "epoch": epoch, "epochs": cfg.epochs})
            loss, err = self._epoch(epoch)
            metrics = {"train_loss": loss, "train_error": err, **self._evaluate()}
            metrics["lr"] = self._lr()
            if cfg.matrix_every and epoch % cfg.matrix_every == 0:
                metrics.update(self._matrix(epoch))
            st.epoch = epoch
            stop = self._early_stopping(metrics)
            st.history.append({"epoch": epoch, **metrics})
            self.emit({"type": "epoch_end", "epoch": epoch, "epochs": cfg.epochs, "metrics": metrics})
            if epoch == cfg.epochs or stop or self.clock.due(epoch):
                self._checkpoint()
            if stop:
                self.emit({"type": "log", "message": f"early stopping after epoch {epoch}: best epoch {st.best_epoch}"})
                break
        if cfg.continuation and st.best_state is not None:
            self._continue()
        elif cfg.early_stopping and st.best_state is not None:
            self.model.load_state_dict(st.best_state)
            self.emit({"type": "log", "message": f"restored the weights of epoch {st.best_epoch} (best {cfg.early_stopping.metric})"})
        out = {"epochs_run": float(st.epoch)}
        if cfg.early_stopping:
            out["best_epoch"] = float(st.best_epoch)
        if cfg.continuation:
            out["continuation_epochs"] = float(st.cont_epochs)
            out["objective_target"] = st.best_train_objective
            out["objectives_matched"] = float(st.cont_done)
        return out

    def _checkpoint(self) -> None:
        if self.checkpoint_fn is not None:
            self.checkpoint_fn(self)
            self.clock.written()

    # ------------------------------------------------------------------------------ the recipe's second stage
    def _schedule_step(self) -> int:
        return self.schedule_step_at(self.state.step)

    def schedule_step_at(self, step: int) -> int:
        """The step the learning-rate schedule is at when the trainer is at ``step``: in the continuation,
        the best epoch's step plus the steps taken since (the recipe continues with the lr the best
        parameters had)."""
        st = self.state
        return st.best_step + step - st.cont_start_step if st.phase == "continuation" else step

    def _all_training_images(self) -> Split:
        v = self.data.valid
        if v is None:
            return self.data.train
        return Split(torch.cat([self.data.train.x, v.x]), torch.cat([self.data.train.y, v.y]))

    def _continue(self) -> None:
        """mnist_pi_continued.yaml: from the best parameters, train on all training images until the
        training objective on the validation images falls to the best epoch's training objective."""
        cfg, st = self.cfg, self.state
        self.train_split = self._all_training_images()
        if st.phase != "continuation":
            self.model.load_state_dict(st.best_state)
            st.phase = "continuation"
            st.cont_start_step = st.step
            st.cont_momentum = momentum_at(cfg, st.best_epoch)
            self.opt = make_optimizer(self.model, cfg)  # the recipe's second run starts with zero velocity
            self.emit({"type": "log", "message": (
                f"continuation: from the weights of epoch {st.best_epoch} on all {len(self.train_split)} "
                f"training images, lr {lr_at(cfg, st.best_step):.6g}, momentum {st.cont_momentum:.6g}, until the validation "
                f"objective reaches {st.best_train_objective:.6g}")})
        target = st.best_train_objective
        limit = cfg.continuation.max_epochs
        while not st.cont_done and st.cont_epochs < limit:
            epoch = st.epoch + 1
            self.emit({"type": "epoch_start", "epoch": epoch, "epochs": cfg.epochs + limit})
            loss, err = self._epoch(epoch)
            metrics = {"train_loss": loss, "train_error": err, **self._evaluate()}
            metrics["valid_objective"] = self._objective(self.data.valid)
            metrics["target_objective"] = target
            metrics["lr"] = self._lr()
            if cfg.matrix_every and epoch % cfg.matrix_every == 0:
                metrics.update(self._matrix(epoch))
            st.epoch = epoch
            st.cont_epochs += 1
            st.cont_done = metrics["valid_objective"] <= target
            st.history.append({"epoch": epoch, **metrics})
            self.emit({"type": "epoch_end", "epoch": epoch, "epochs": cfg.epochs + limit, "metrics": metrics})
            if st.cont_done or self.clock.due(epoch):
                self._checkpoint()
        if st.cont_done:
            self.emit({"type": "log", "message": f"continuation: the validation objective reached the target after {st.cont_epochs} epochs"})
        else:
            self.emit({"type": "log", "message": f"continuation: stopped at its bound of {limit} epochs before the objectives met"})

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
        x_adv = perturb(x[idx], direction, self.cfg.epsilon, self.cfg.clip)
        self.train_split = Split(torch.cat([x, x_adv]), torch.cat([y, y[idx]]))
        self.state.augmented = True
        self.emit({"type": "log", "message": f"added {n_adv} FGSM examples (ε={self.cfg.epsilon}) to the training set"})

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        eps = self.cfg.epsilon
        if self.cfg.mode == "sign_noise":
            r = torch.randint(0, 2, x.shape, generator=self.noise_gen, device=x.device, dtype=x.dtype) * 2 - 1
        else:
            r = torch.rand(x.shape, generator=self.noise_gen, device=x.device, dtype=x.dtype) * 2 - 1
        return perturb(x, r, eps, self.cfg.clip)

    def _epoch(self, epoch: int) -> tuple[float, float]:
        cfg, model, opt = self.cfg, self.model, self.opt
        x_all, y_all = self.train_split.x, self.train_split.y
        n = len(y_all)
        perm = torch.randperm(n, generator=self.gen).to(self.device)
        batches = math.ceil(n / cfg.batch_size)
        if cfg.optimizer == "sgd":
            for g in opt.param_groups:
                g["momentum"] = self.state.cont_momentum if self.state.phase == "continuation" else momentum_at(cfg, epoch)
        model.train()
        total_loss = torch.zeros((), device=self.device, dtype=torch.float64)
        wrong = torch.zeros((), device=self.device, dtype=torch.long)
        graph = self._step_graph(perm, n)
        full = graph.full if graph is not None else 0  # the epoch's full batches go through the static step
        loss = total_loss
        for b in range(batches):
            if self.should_stop():
                raise Cancelled()
            if b < full:
                graph.step()
                loss, total_loss, wrong = graph.loss, graph.total_loss, graph.wrong  # static tensors: no copy
            else:
                if b == full and full:  # the ragged last batch goes on from the static step's sums
                    total_loss, wrong = graph.total_loss.clone(), graph.wrong.clone()
                idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                x, y = x_all.index_select(0, idx), y_all.index_select(0, idx)  # half the cost of x_all[idx]
                for g in opt.param_groups:
                    g["lr"] = lr_at(cfg, self._schedule_step())
                opt.zero_grad(set_to_none=True)
                loss, logits = self._loss_and_backward(x, y)
                loss = loss.detach()
                opt.step()
                if self.max_norm is not None:
                    self.max_norm()
                total_loss += loss * len(y)
                with torch.no_grad():
                    wrong += (self.predicted(logits) != y).sum()
            self.state.step += 1
            if (b + 1) % self.batch_every == 0 or b + 1 == batches:
                # Finiteness is checked here, where the loss is read anyway, not every batch: a per-batch
                # check is a host sync that stalls a GPU. A NaN/inf loss of any batch so far shows in the sum.
                if not torch.isfinite(total_loss):
                    raise Diverged(f"the training loss became non-finite ({float(loss)}) by epoch {epoch}, batch {b + 1}; lower train.lr")
                self.emit(
                    {"type": "batch", "epoch": epoch, "batch": b + 1, "batches": batches, "loss": float(loss), "step": self.state.step}
                )
        return float(total_loss) / n, float(wrong) / n

    def _step_graph(self, perm: torch.Tensor, n: int) -> StepGraph | None:
        """The static-tensor step for this epoch's full batches (:mod:`.step_graph`), or None for the plain loop."""
        full = n // self.cfg.batch_size
        if self.graph_mode == "off" or full == 0:
            return None
        if self.graph is None:
            self.graph = StepGraph(self, capture=self.graph_mode == "cuda")
        self.graph.begin_epoch(perm, full, self.state.step)
        return self.graph

    def predicted(self, logits: torch.Tensor) -> torch.Tensor:
        """The class a training batch's logits predict (for the epoch's training error)."""
        with torch.no_grad():
            return (logits.reshape(-1) > 0).long() if self.model.head == "binary" else logits.argmax(dim=1)

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
            adv = head_loss(head, model(perturb_sign(x, direction, cfg.epsilon, cfg.clip)), y)
            ((1 - a) * adv).backward()
            return (a * clean + (1 - a) * adv).detach(), logits
        raise ValueError(f"unknown train mode {mode!r}")

    def _early_stopping(self, metrics: dict[str, float]) -> bool:
        es = self.cfg.early_stopping
        if es is None:
            return False
        value = metrics.get(es.metric)
        if value is None:
            raise ValueError(f"early stopping on {es.metric} needs train.eval_adv = true")
        if value < self.state.best_metric:  # strict improvement (pylearn2: prop_decrease = 0)
            self.state.best_metric = value
            self.state.best_epoch = self.state.epoch
            self.state.best_step = self.state.step
            if self.cfg.continuation:
                self.state.best_train_objective = self._objective(self.data.train)
            self.state.best_state = copy.deepcopy({k: v.detach().clone() for k, v in self.model.state_dict().items()})
            self.state.bad_epochs = 0
            return False
        self.state.bad_epochs += 1
        return self.state.bad_epochs >= es.patience
