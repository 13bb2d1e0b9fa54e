"""Many maxout networks of one architecture trained as one model (issue 11: seeds and ensemble members).

The paper profile trains 12 ensemble members and 5 seeds of the same network. Each is small for a GPU:
one member's step is a few dozen kernels of microseconds. :class:`StackedMaxout` holds K members'
weights on a leading member axis and runs their layers as batched matrix products (``baddbmm``), so
one launch does the work of K; :class:`StackedTrainer` trains them together, each member on its own
seed's permutation of the training split and its own dropout masks, with the plain trainer's recipe
(SGD with the momentum ramp and per-step learning-rate decay, max column norm, clean or adversarial
objective).

Each member computes what it would alone: the same seed gives the same weights as
:class:`~tui_adv.core.train.Trainer` training that member by itself, bit for bit on CPU
(tests/test_stacked.py), because

- a member's masks come from its own generator, loaded with the state torch's global generator has
  after the solo model's initialisation (the solo run draws its masks from there), in the same order;
- its permutation comes from ``Generator().manual_seed(seed)``, as the solo trainer's does;
- on CPU every layer runs as K plain products (one per member, the solo model's kernel); on CUDA the
  hidden layers run as batched products (``baddbmm``), equal to the plain ones within float tolerance
  (a batched GEMM may split a member's sums differently: measured on CPU, it does for some members),
  and the output layer (10 units: nothing to gain) and a ragged last batch as K plain products;
- its loss is its own batch mean; the sum over members gives each member exactly its own gradient;
- the optimiser and max-norm are elementwise or row-wise.

What it does not do (the trainer checks and says so): early stopping and the continuation (members
would stop at different epochs), the noise, L1, analytic and augment modes, other models.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from .attacks import perturb_sign
from .data import MNISTData
from .models import Maxout, MaxoutLinear, clip_row_norms_
from .train_metrics import epoch_evaluation
from .train_state import Cancelled, CheckpointClock, Diverged, checkpoint_interval, lr_at, make_optimizer, momentum_at

Emit = Callable[[dict[str, Any]], None]
STACKABLE_MODES = ("clean", "adversarial")


class StackedMaxout(nn.Module):
    """K :class:`~tui_adv.core.models.Maxout` networks of one shape as one module. ``forward`` takes
    ``(K, B, …)`` images, member k's batch in row k, and returns ``(K, B, classes)`` logits."""

    head = "softmax"

    def __init__(self, members: list[Maxout], generators: list[torch.Generator] | None = None):
        super().__init__()
        if not members:
            raise ValueError("a stack needs at least one member")
        first = members[0]
        shapes = [tuple(p.shape) for p in first.parameters()]
        for m in members:
            if not isinstance(m, Maxout) or m.head != "softmax" or [tuple(p.shape) for p in m.parameters()] != shapes:
                raise ValueError("stacked members must be softmax maxout networks of one shape")
        self.k = len(members)
        blocks = [b for b in first.hidden if isinstance(b, MaxoutLinear)]
        self.units, self.pieces = blocks[0].units, blocks[0].pieces
        self.input_p, self.input_rescale = first.input_dropout.p, first.input_dropout.rescale
        self.hidden_p = first.hidden[1].p
        self.max_col_norm = first.max_col_norm

        def stack(get: Callable[[Maxout], torch.Tensor]) -> nn.Parameter:
            return nn.Parameter(torch.stack([get(m).detach() for m in members]).clone())

        n_layers = len(blocks)
        self.weights = nn.ParameterList([stack(lambda m, i=i: m.hidden[2 * i].linear.weight) for i in range(n_layers)])
        self.biases = nn.ParameterList([stack(lambda m, i=i: m.hidden[2 * i].linear.bias) for i in range(n_layers)])
        self.out_weight = stack(lambda m: m.out.weight)
        self.out_bias = stack(lambda m: m.out.bias)
        self.generators = generators  # per member: its dropout masks (None: the global generator)
        # the hidden layers as batched products (one launch for K members: what a GPU wants); off, K plain
        # products, each the solo model's to the bit (a CPU's batched GEMM may split a member's sums
        # differently; measured: it does, for some members and shapes). build_stack sets it per device.
        self.batched = False
        self.__dict__["_template"] = first  # not a submodule: its parameters are not the stack's

    # ------------------------------------------------------------------------------ members
    def member(self, k: int) -> Maxout:
        """Member ``k`` as a plain :class:`Maxout` (a copy of its weights), in eval mode."""
        import copy

        m = copy.deepcopy(self._template)
        with torch.no_grad():
            for i, w in enumerate(self.weights):
                m.hidden[2 * i].linear.weight.copy_(w[k])
                m.hidden[2 * i].linear.bias.copy_(self.biases[i][k])
            m.out.weight.copy_(self.out_weight[k])
            m.out.bias.copy_(self.out_bias[k])
        return m.to(self.out_weight.device).eval()

    def member_order(self) -> list[nn.Parameter]:
        """The stack's parameters in the order of a member's ``parameters()`` (layer by layer: weight,
        bias), so that slice k of each is member k's tensor of that place."""
        out: list[nn.Parameter] = []
        for w, b in zip(self.weights, self.biases):
            out += [w, b]
        return [*out, self.out_weight, self.out_bias]

    # ------------------------------------------------------------------------------ forward
    def _dropout(self, h: torch.Tensor, p: float, rescale: bool) -> torch.Tensor:
        if not self.training or p == 0:
            return h
        keep = 1.0 - p
        gens = self.generators or [None] * self.k
        mask = torch.stack([torch.empty_like(h[k]).bernoulli_(keep, generator=g) for k, g in enumerate(gens)])
        if rescale:
            mask.mul_(1.0 / keep)
        return h * mask

    def forward(self, x: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        """``per_member`` (or a stack whose :attr:`batched` is off): every layer as K plain products
        instead of one batched product."""
        per_member = per_member or not self.batched
        k, b = x.shape[0], x.shape[1]
        h = self._dropout(x.reshape(k, b, -1), self.input_p, self.input_rescale)
        for w, bias in zip(self.weights, self.biases):
            if per_member:
                z = torch.stack([F.linear(h[i], w[i], bias[i]) for i in range(k)])
            else:
                z = torch.baddbmm(bias.unsqueeze(1), h, w.transpose(1, 2))
            h = self._dropout(z.view(k, b, self.units, self.pieces).amax(dim=3), self.hidden_p, True)
        return torch.stack([F.linear(h[i], self.out_weight[i], self.out_bias[i]) for i in range(k)])

    @torch.no_grad()
    def apply_max_norm(self) -> None:
        """Each member's max column norm: every unit's incoming weight row, as the solo model clips it
        (member by member unless batched: a CPU sums the norms of a larger matrix in another order)."""
        if self.max_col_norm is None:
            return
        for w in [*self.weights, self.out_weight]:
            if self.batched:
                clip_row_norms_(w.view(-1, w.shape[-1]), self.max_col_norm)
            else:
                for i in range(self.k):
                    clip_row_norms_(w[i], self.max_col_norm)


def member_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's batch-mean cross-entropy, ``(K,)``, computed as the solo trainer computes its loss
    (one reduction per member: a flat mean over K·B rows sums in another order)."""
    return torch.stack([F.cross_entropy(logits[i], y[i]) for i in range(logits.shape[0])])


class StackedTrainer:
    """Trains the members of ``stack`` (seeds ``seeds``) on ``data`` as ``cfg`` says, for ``cfg.epochs``.

    Events as :class:`~tui_adv.core.train.Trainer`'s, each with a ``member`` index: ``epoch_end``
    (``metrics`` per member) and ``batch`` (the loss per member in ``losses``). ``checkpoint(trainer)``
    is called as the solo trainer calls its own (every ``train.checkpoint_every`` epochs, or as
    ``checkpoint_s`` says: :class:`~tui_adv.core.train_state.CheckpointClock`), except after the last epoch, whose checkpoints are the members'
    final ones (:meth:`member_state`)."""

    def __init__(self, stack: StackedMaxout, data: MNISTData, cfg: TrainConfig, seeds: list[int], *, emit: Emit | None = None,
                 should_stop: Callable[[], bool] | None = None, batch_every: int = 20,
                 checkpoint: Callable[["StackedTrainer"], None] | None = None, checkpoint_s: float | None = None):
        why = stack_refusal(cfg)
        if why:
            raise ValueError(why)
        if len(seeds) != stack.k:
            raise ValueError(f"{stack.k} members but {len(seeds)} seeds")
        self.stack, self.data, self.cfg, self.seeds = stack, data, cfg, list(seeds)
        self.emit = emit or (lambda e: None)
        self.should_stop = should_stop or (lambda: False)
        self.batch_every = max(1, batch_every)
        self.device = data.train.x.device
        self.checkpoint_fn = checkpoint
        self.clock = CheckpointClock(cfg.checkpoint_every, checkpoint_interval(self.device, checkpoint_s))
        # batched: one optimiser over the stacked tensors. Otherwise one per member over views of its
        # slices, so that each member's update runs on tensors of its own size, as the solo run's does (a
        # vectorised kernel may round a vector's tail elements in another way, and a stacked tensor puts
        # other elements in the tail: measured with the fused SGD, which the CPU no longer uses for that
        # reason, make_optimizer)
        if stack.batched:
            self.opts = [make_optimizer(stack, cfg)]
            self._views: list[list[torch.Tensor]] = []
        else:
            self._views = [[p.detach()[i] for p in stack.parameters()] for i in range(stack.k)]
            self.opts = [make_optimizer(views, cfg) for views in self._views]
        self.opt = self.opts[0]
        self.gens = [torch.Generator(device="cpu").manual_seed(s) for s in self.seeds]
        self.step = 0
        self.epoch = 0
        self.history: list[list[dict[str, float]]] = [[] for _ in seeds]

    def run(self) -> list[dict[str, float]]:
        self.clock.written()
        while self.epoch < self.cfg.epochs:
            epoch = self.epoch + 1
            self.emit({"type": "epoch_start", "epoch": epoch, "epochs": self.cfg.epochs})
            losses, errors = self._epoch(epoch)
            self.epoch = epoch
            for k in range(self.stack.k):
                metrics = {"train_loss": losses[k], "train_error": errors[k], **self._evaluate(k)}
                metrics["lr"] = float(self.opt.param_groups[0]["lr"])
                self.history[k].append({"epoch": epoch, **metrics})
                self.emit({"type": "epoch_end", "member": k, "epoch": epoch, "epochs": self.cfg.epochs, "metrics": metrics})
            if self.checkpoint_fn is not None and epoch < self.cfg.epochs and self.clock.due(epoch):
                self.checkpoint_fn(self)
                self.clock.written()
        return [{"epochs_run": float(self.epoch)} for _ in self.seeds]

    def member_state(self, k: int, final: bool = True) -> dict:
        """Member ``k`` as a checkpoint of its solo run (:meth:`Trainer.state_dict`'s keys): its weights,
        an optimiser over them holding its momentum buffers, its train state and generators. A final one
        is read by ``load_model``, and a resume of the run redoes its sweep; one from mid-training lets
        the run go on alone (``adv-tui resume``) from that epoch, as its solo run would have."""
        from .train_state import TrainState

        model = self.stack.member(k)
        opt = make_optimizer(model, self.cfg)
        place = {id(t): i for i, t in enumerate(self.stack.parameters())}  # where each stacked tensor's view is
        for p, big in zip(model.parameters(), self.stack.member_order()):
            if self._views:
                buf = self.opts[k].state.get(self._views[k][place[id(big)]], {}).get("momentum_buffer")
            else:
                whole = self.opt.state.get(big, {}).get("momentum_buffer")
                buf = None if whole is None else whole[k]
            if buf is not None:
                opt.state[p]["momentum_buffer"] = buf.detach().clone()
        for g, src in zip(opt.param_groups, self.opts[min(k, len(self.opts) - 1)].param_groups):
            g["lr"], g["momentum"] = float(src["lr"]), float(src["momentum"])
        mask_gen = (self.stack.generators or [None] * self.stack.k)[k]
        on_cuda = self.device.type == "cuda"
        return {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "train_state": TrainState(epoch=self.epoch, step=self.step, history=list(self.history[k])).to_dict(),
            "gen": self.gens[k].get_state(),
            "noise_gen": torch.Generator(device=self.device).manual_seed(self.seeds[k] + 1).get_state(),
            "torch_rng": mask_gen.get_state() if mask_gen is not None and not on_cuda else torch.get_rng_state(),
            "cuda_rng": [mask_gen.get_state()] if mask_gen is not None and on_cuda else [],
            "augmented_x": None,
            "augmented_y": None,
            "final": final,
        }

    def _epoch(self, epoch: int) -> tuple[list[float], list[float]]:
        cfg, stack = self.cfg, self.stack
        x_all, y_all = self.data.train.x, self.data.train.y
        n, bs = len(y_all), cfg.batch_size
        perms = torch.stack([torch.randperm(n, generator=g) for g in self.gens]).to(self.device)
        for g in (g for o in self.opts for g in o.param_groups):
            g["momentum"] = momentum_at(cfg, epoch)
        stack.train()
        batches = math.ceil(n / bs)
        total = torch.zeros(stack.k, device=self.device, dtype=torch.float64)
        wrong = torch.zeros(stack.k, device=self.device, dtype=torch.long)
        for b in range(batches):
            if self.should_stop():
                raise Cancelled()
            idx = perms[:, b * bs : (b + 1) * bs]
            x = x_all.index_select(0, idx.reshape(-1)).view(stack.k, idx.shape[1], *x_all.shape[1:])
            y = y_all.index_select(0, idx.reshape(-1)).view(stack.k, idx.shape[1])
            for g in (g for o in self.opts for g in o.param_groups):
                g["lr"] = lr_at(cfg, self.step)
            stack.zero_grad(set_to_none=True)
            losses, logits = self._loss_and_backward(x, y, per_member=idx.shape[1] != bs)
            self._update()
            stack.apply_max_norm()
            self.step += 1
            total += losses * y.shape[1]
            with torch.no_grad():
                wrong += (logits.argmax(dim=2) != y).sum(dim=1)
            if (b + 1) % self.batch_every == 0 or b + 1 == batches:
                if not torch.isfinite(total).all():
                    raise Diverged(f"a member's training loss became non-finite by epoch {epoch}, batch {b + 1}; lower train.lr")
                self.emit({"type": "batch", "epoch": epoch, "batch": b + 1, "batches": batches, "losses": losses.tolist(), "step": self.step})
        return (total / n).tolist(), (wrong.double() / n).tolist()

    def _update(self) -> None:
        if not self._views:
            self.opt.step()
            return
        params = list(self.stack.parameters())
        for i, (views, opt) in enumerate(zip(self._views, self.opts)):
            for v, p in zip(views, params):
                v.grad = p.grad[i]
            opt.step()

    def _loss_and_backward(self, x: torch.Tensor, y: torch.Tensor, per_member: bool) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg

        def stack(inputs: torch.Tensor) -> torch.Tensor:
            return self.stack(inputs, per_member=per_member)

        if cfg.mode == "clean":
            logits = stack(x)
            losses = member_losses(logits, y)
            losses.sum().backward()
            return losses.detach(), logits
        a = cfg.alpha
        xg = x.detach().requires_grad_(True)
        logits = stack(xg)
        clean = member_losses(logits, y)
        (a * clean).sum().backward()  # each member's parameter gradients (×α) and its ∇ₓ
        adv = member_losses(stack(perturb_sign(x, xg.grad.sign(), cfg.epsilon, cfg.clip)), y)
        ((1 - a) * adv).sum().backward()
        return (a * clean + (1 - a) * adv).detach(), logits

    def _evaluate(self, k: int) -> dict[str, float]:
        """Member ``k``'s per-epoch metrics, measured as the solo trainer measures them."""
        return epoch_evaluation(self.stack.member(k), self.data, self.cfg)


def stack_refusal(cfg: TrainConfig) -> str | None:
    """Why runs of ``cfg`` cannot be trained as one stack (None: they can)."""
    if cfg.mode not in STACKABLE_MODES:
        return f"train.mode {cfg.mode!r} is not stackable (only {', '.join(STACKABLE_MODES)})"
    if cfg.mode == "adversarial" and cfg.alpha <= 0:
        return "adversarial training with alpha = 0 is not stackable"
    if cfg.matrix_every:
        return "the per-epoch protocol matrix (train.matrix_every) is not stackable"
    if cfg.early_stopping or cfg.continuation:
        return "early stopping and the continuation are not stackable (members would stop at different epochs)"
    if cfg.optimizer != "sgd":
        return "only SGD is stackable"
    return None


def build_stack(make_member: Callable[[], Maxout], seeds: list[int], device: torch.device | str = "cpu") -> StackedMaxout:
    """The members of ``seeds`` as one stack, each initialised as a solo run of that seed is
    (``torch.manual_seed(seed)`` then the model), with the mask generator the solo run's global
    generator would be after that. Leaves torch's global generator as it found it."""
    saved = torch.get_rng_state()
    members, gens = [], []
    try:
        for s in seeds:
            torch.manual_seed(s)
            members.append(make_member())
            g = torch.Generator(device="cpu")
            g.set_state(torch.get_rng_state())
            gens.append(g)
    finally:
        torch.set_rng_state(saved)
    stack = StackedMaxout(members).to(device)
    stack.batched = torch.device(device).type == "cuda"
    if torch.device(device).type == "cpu":
        stack.generators = gens
    else:  # CUDA masks: one device generator per member, seeded from the member's seed
        stack.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    return stack


