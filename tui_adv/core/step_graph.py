"""The training step on static tensors, captured once as a CUDA graph and replayed (issue 11).

A maxout step at batch 100 is a few dozen kernels of microseconds each: on a GPU the time goes to
launching them from Python, not to the arithmetic. :class:`StepGraph` writes the whole step — the
batch gathered on the device from the epoch's permutation, the forward with dropout, the backward,
the adversarial second pass, the fused SGD update with the step's learning rate read from a device
tensor, max-norm, and the epoch's loss and error sums — against tensors whose addresses never change,
so that :class:`torch.cuda.CUDAGraph` can record it once and replay it for every full batch with one
launch and no host synchronisation.

Modes (``ADV_TUI_CUDA_GRAPH``, read by :func:`graph_mode`):

- ``off``: the plain eager loop of :class:`~tui_adv.core.train.Trainer`.
- ``static``: this step run eagerly, no capture: the same static tensors and the same device-side
  indexing. It runs anywhere; on CPU it gives the plain loop's weights bit for bit
  (tests/test_step_graph.py), which is what shows the captured body computes the plain step.
- ``cuda``: captured and replayed (CUDA only). ``auto`` (the default) is ``cuda`` on a CUDA device and
  ``off`` elsewhere. A capture that fails falls back to the eager loop with a log line, never a failed
  run.

What the graph bakes in, and what makes it record again: the momentum (a kernel argument; it ramps
once per epoch), the optimiser object (the continuation starts a fresh one), the training split (the
augment mode and the continuation replace it). Dropout masks come from torch's default CUDA generator,
which graphs advance on every replay; the noise modes' own generator is registered with the graph.
A ragged last batch (the split not a multiple of the batch size) runs eagerly.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from ..errors import UserError
from .train_state import lr_at

if TYPE_CHECKING:  # pragma: no cover
    from .train import Trainer

GRAPH_MODES = ("auto", "off", "static", "cuda")
WARMUP_STEPS = 3  # eager steps on a side stream before a capture (cuBLAS handles, allocator, lazy state)


def graph_mode(device: torch.device, requested: str | None = None, optimizer: str = "sgd") -> str:
    """The step mode to use on ``device``: ``requested`` or ``$ADV_TUI_CUDA_GRAPH`` (default ``auto``).
    Only the SGD step is written for a capture (its fused kernel reads the learning rate from a device
    tensor): an Adam run takes the plain loop whatever is asked."""
    mode = (requested or os.environ.get("ADV_TUI_CUDA_GRAPH") or "auto").strip().lower()
    if mode not in GRAPH_MODES:
        raise UserError(f"ADV_TUI_CUDA_GRAPH must be one of {', '.join(GRAPH_MODES)}, got {mode!r}")
    if optimizer != "sgd":
        return "off"
    if mode == "auto":
        return "cuda" if device.type == "cuda" else "off"
    if mode == "cuda" and device.type != "cuda":
        return "static"  # nothing to capture on this device: the same step, eagerly
    return mode


class StepGraph:
    """One epoch's full batches of ``trainer`` as a static-tensor step (see the module doc).

    Use: :meth:`begin_epoch` with the epoch's permutation and first schedule step, then :meth:`step`
    once per full batch, in order; the epoch's sums are in :attr:`total_loss` / :attr:`wrong`, which the
    trainer takes as its own (a ragged last batch goes on from them)."""

    def __init__(self, trainer: "Trainer", capture: bool):
        self.t = trainer
        self.capture = capture and trainer.device.type == "cuda"
        dev = trainer.device
        self.bs = trainer.cfg.batch_size
        # CUDA's fused SGD reads a float32 learning rate; on CPU (the multi-tensor SGD) a double keeps the
        # eager loop's bits
        self.lr_dtype = torch.float32 if dev.type == "cuda" else torch.float64
        self.perm = torch.zeros(0, self.bs, dtype=torch.long, device=dev)
        self.lrs = torch.zeros(0, dtype=self.lr_dtype, device=dev)
        self.lr = torch.zeros((), dtype=self.lr_dtype, device=dev)
        self.row = torch.zeros(1, dtype=torch.long, device=dev)  # the batch the next step takes
        self.full = 0
        self.loss = torch.zeros((), dtype=torch.float32, device=dev)  # the last step's loss
        self.total_loss = torch.zeros((), dtype=torch.float64, device=dev)
        self.wrong = torch.zeros((), dtype=torch.long, device=dev)
        self.graph: torch.cuda.CUDAGraph | None = None
        self._key: tuple | None = None
        self._eager_steps = 0
        self.failed: str | None = None  # why capture failed (the trainer then steps eagerly)

    # ------------------------------------------------------------------------------ per epoch
    def begin_epoch(self, perm: torch.Tensor, full: int, first_step: int) -> None:
        """Load the epoch's first ``full`` batches of ``perm`` and their learning rates (one copy each)."""
        t = self.t
        self.full = full
        if self.perm.shape[0] != full:
            # a new buffer would move the graph's input: record again
            self.perm = torch.zeros(full, self.bs, dtype=torch.long, device=t.device)
            self.lrs = torch.zeros(full, dtype=self.lr_dtype, device=t.device)
            self.graph, self._key = None, None
        self.perm.copy_(perm[: full * self.bs].view(full, self.bs))
        lrs = [lr_at(t.cfg, t.schedule_step_at(first_step + i)) for i in range(full)]
        self.lrs.copy_(torch.tensor(lrs, dtype=torch.float64).to(self.lr_dtype))
        self.row.zero_()
        self.total_loss.zero_()
        self.wrong.zero_()

    # ------------------------------------------------------------------------------ the step
    def _body(self) -> None:
        """The step on static tensors: everything here is recorded by a capture."""
        t = self.t
        split = t.train_split
        idx = self.perm.index_select(0, self.row).view(-1)
        x, y = split.x.index_select(0, idx), split.y.index_select(0, idx)
        self.lr.copy_(self.lrs.index_select(0, self.row).view(()))
        t.opt.zero_grad(set_to_none=not self.capture)
        loss, logits = t._loss_and_backward(x, y)
        t.opt.step()
        if t.max_norm is not None:
            t.max_norm()
        with torch.no_grad():
            self.loss.copy_(loss.detach())
            self.total_loss += loss.detach() * len(y)
            self.wrong += (t.predicted(logits) != y).sum()
            self.row += 1

    def step(self) -> None:
        t = self.t
        groups = t.opt.param_groups
        for g in groups:
            g["lr"] = self.lr
        if not self.capture or self.failed is not None:
            self._body()
            return
        key = (id(t.opt), tuple(g["momentum"] for g in groups), t.train_split.x.data_ptr(), len(t.train_split))
        if self.graph is not None and key == self._key:
            self.graph.replay()
            return
        # the fused SGD creates its momentum buffers on its first step (with momentum): never in a capture
        unbuffered = any(g["momentum"] and t.opt.state.get(p, {}).get("momentum_buffer") is None for g in groups for p in g["params"])
        if self._eager_steps < WARMUP_STEPS or unbuffered:
            self._warm_step()
            return
        self._record(key)

    def _warm_step(self) -> None:
        """A real step, eagerly on a side stream (as CUDA graphs want before a capture)."""
        side = torch.cuda.Stream(device=self.t.device)
        side.wait_stream(torch.cuda.current_stream(self.t.device))
        with torch.cuda.stream(side):
            self._body()
        torch.cuda.current_stream(self.t.device).wait_stream(side)
        self._eager_steps += 1

    def _record(self, key: tuple) -> None:
        t = self.t
        stream = torch.cuda.current_stream(t.device)
        try:
            graph = torch.cuda.CUDAGraph()
            if t.cfg.mode in ("sign_noise", "uniform_noise"):
                graph.register_generator_state(t.noise_gen)
            # grads left by an eager step are not the graph's: the captured backward allocates its own
            t.opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                self._body()
        except Exception as e:  # noqa: BLE001 - any capture failure: train eagerly, say why once
            # (untested on a GPU so far.) When the step itself raised inside the capture, ending the capture
            # raises too and hides it (the step's error is its context), and leaves the capture's side stream
            # current: put the trainer's stream back before stepping eagerly
            cause = e.__context__ if e.__context__ is not None else e
            torch.cuda.set_stream(stream)
            try:
                torch.cuda.synchronize(t.device)
            except Exception:  # noqa: BLE001 - the eager step below reports what is really wrong
                pass
            t.opt.zero_grad(set_to_none=True)
            self.failed = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
            t.emit({"type": "log", "message": f"CUDA graph capture failed ({self.failed}); training eagerly"})
            self._body()
            return
        first = self._key is None
        self.graph, self._key = graph, key
        if first:
            t.emit({"type": "log", "message": "training step captured as a CUDA graph"})
        graph.replay()  # the capture recorded this batch's step without running it
