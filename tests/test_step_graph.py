"""The static-tensor training step (issue 11, ``tui_adv/core/step_graph.py``) computes the plain step.

On CPU the step runs eagerly on its static tensors (``graph="static"``): the batches gathered on the
device from the epoch's permutation, the learning rate read from a device tensor by the fused SGD
kernel, the sums kept on the device. It must give the plain loop's weights, history and training
sums bit for bit, across epochs (the momentum ramp), a ragged last batch, every training mode that has
a step of its own, the augment mode's new training split and the continuation's new optimiser. The
``cuda`` tests run only where a GPU is visible (the device script runs them): there the step is
captured as a CUDA graph and replayed, and must match the eager loop within float tolerance, without a
host synchronisation inside the step.
"""

from __future__ import annotations

import pytest
import torch

from tui_adv.config import TrainConfig
from tui_adv.core.data import MNISTData, Split
from tui_adv.core.models import build_model
from tui_adv.core.step_graph import graph_mode
from tui_adv.core.train import Trainer
from tui_adv.errors import UserError


def _data(n=230, seed=0, device="cpu", valid=False, classes=10) -> MNISTData:
    g = torch.Generator().manual_seed(seed)

    def split(m):
        return Split(torch.rand(m, 1, 28, 28, generator=g).to(device), torch.randint(0, classes, (m,), generator=g).to(device))

    return MNISTData(train=split(n), test=split(40), valid=split(60) if valid else None, classes=tuple(range(classes)))


def _train(kind, params, cfg, graph, data, seed=5):
    torch.manual_seed(3)  # the init, then the dropout masks, come from the global generator
    model = build_model(kind, **params).to(data.train.x.device)
    events = []
    trainer = Trainer(model, data, cfg, seed=seed, batch_every=3, graph=graph, emit=events.append)
    summary = trainer.run()
    return model, trainer, summary, events


def _same_run(a, b):
    (ma, ta, sa, _), (mb, tb, sb, _) = a, b
    for (name, x), y in zip(ma.state_dict().items(), mb.state_dict().values()):
        assert torch.equal(x, y), f"parameter {name} differs between the static step and the plain loop"
    assert ta.state.history == tb.state.history
    assert sa == sb and ta.state.step == tb.state.step


MAXOUT = {"units": 16, "pieces": 3}
CASES = [
    ("softmax", {}, {}),
    ("logistic", {"num_classes": 2}, {}),
    ("maxout", MAXOUT, {}),
    ("maxout", MAXOUT, {"mode": "adversarial", "alpha": 0.5, "epsilon": 0.25}),
    ("maxout", MAXOUT, {"mode": "adversarial", "alpha": 0.0, "epsilon": 0.1, "clip": False}),
    ("maxout", MAXOUT, {"mode": "sign_noise", "alpha": 0.5, "epsilon": 0.25}),
    ("maxout", MAXOUT, {"mode": "l1", "l1": 1e-4}),
    # weight decay and a max norm that some rows exceed
    ("maxout", {**MAXOUT, "max_col_norm": 0.09, "init_range": None}, {"weight_decay": 0.01}),
    ("maxout", MAXOUT, {"mode": "augment", "augment_after": 1, "augment_ratio": 0.5, "epsilon": 0.25}),
]


@pytest.mark.parametrize("kind,params,extra", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_the_static_step_gives_the_plain_loops_bits(kind, params, extra):
    data = _data(classes=params.get("num_classes", 10))
    # 230 images in batches of 32: 7 full batches through the static step, then a ragged one of 6;
    # three epochs of a momentum ramp (the graph's momentum changes every epoch)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, lr_decay=0.99, momentum=0.5, final_momentum=0.7, momentum_saturate=3,
                      eval_adv=False, **extra)
    plain, static = _train(kind, params, cfg, "off", data), _train(kind, params, cfg, "static", data)
    _same_run(static, plain)
    assert static[1].graph is not None and plain[1].graph is None  # the static step really ran
    losses = [e["loss"] for e in static[3] if e["type"] == "batch"]
    assert losses == [e["loss"] for e in plain[3] if e["type"] == "batch"] and len(losses) >= 3 * 3


def test_the_static_step_through_early_stopping_and_the_continuation():
    """The continuation starts a fresh optimiser on a new training split (train + validation) and
    continues the learning-rate schedule from the best epoch's step: the static step follows both."""
    data = _data(n=192, valid=True)  # 6 full batches of 32: no ragged batch at all
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.05, lr_decay=0.99, eval_adv=False,
                      early_stopping={"metric": "valid_error", "patience": 2}, continuation={"max_epochs": 2})
    plain, static = _train("maxout", MAXOUT, cfg, "off", data), _train("maxout", MAXOUT, cfg, "static", data)
    _same_run(static, plain)
    assert static[1].state.phase == "continuation" and static[1].state.cont_epochs >= 1


def test_graph_mode_reads_the_environment(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("ADV_TUI_CUDA_GRAPH", raising=False)
    assert graph_mode(cpu) == "off" and graph_mode(cuda) == "cuda"
    monkeypatch.setenv("ADV_TUI_CUDA_GRAPH", "static")
    assert graph_mode(cpu) == "static"
    monkeypatch.setenv("ADV_TUI_CUDA_GRAPH", "cuda")
    assert graph_mode(cpu) == "static"  # nothing to capture on a CPU: the same step, eagerly
    assert graph_mode(cpu, "off") == "off"
    assert graph_mode(cuda, "cuda", optimizer="adam") == "off"  # only the SGD step is written for a capture
    monkeypatch.setenv("ADV_TUI_CUDA_GRAPH", "sometimes")
    with pytest.raises(UserError, match="ADV_TUI_CUDA_GRAPH"):
        graph_mode(cpu)


# ---------------------------------------------------------------------------------------------- CUDA
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_paper.sh runs these)")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("kind,params,extra", [
    ("softmax", {}, {}),
    ("maxout", MAXOUT, {}),
    ("maxout", {"units": 240, "pieces": 5}, {"mode": "adversarial", "alpha": 0.5, "epsilon": 0.25}),
], ids=["softmax", "maxout", "maxout240_adv"])
def test_the_captured_step_matches_the_eager_loop_on_cuda(kind, params, extra):
    data = _data(n=1000, device="cuda")
    cfg = TrainConfig(epochs=3, batch_size=100, lr=0.05, lr_decay=0.999, momentum=0.5, final_momentum=0.7, momentum_saturate=3,
                      eval_adv=False, **extra)
    eager = _train(kind, params, cfg, "off", data)
    graphed = _train(kind, params, cfg, "cuda", data)
    g = graphed[1].graph
    assert g is not None and g.failed is None and g.graph is not None, f"the step was not captured: {g and g.failed}"
    for (name, a), b in zip(graphed[0].state_dict().items(), eager[0].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
    for ha, hb in zip(graphed[1].state.history, eager[1].state.history):
        assert abs(ha["train_loss"] - hb["train_loss"]) < 1e-4 and abs(ha["test_error"] - hb["test_error"]) <= 0.05


@pytest.mark.cuda
@cuda
def test_a_replayed_step_does_not_synchronise_with_the_host():
    data = _data(n=1000, device="cuda")
    cfg = TrainConfig(epochs=1, batch_size=100, lr=0.05, eval_adv=False, mode="adversarial", alpha=0.5, epsilon=0.25)
    torch.manual_seed(3)
    model = build_model("maxout", **MAXOUT).cuda()
    trainer = Trainer(model, data, cfg, seed=5, batch_every=1000, graph="cuda")
    trainer.run()  # warm-up and capture
    graph = trainer.graph
    graph.begin_epoch(torch.randperm(1000, device="cuda"), 10, trainer.state.step)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(10):
            graph.step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    assert graph.failed is None and int(graph.row) == 10


# ------------------------------------------------------------------------------- the capture logic on CPU
class _StandInGraph:
    """``torch.cuda.CUDAGraph`` on a CPU: the capture runs the step and then undoes everything it did (a
    real capture records the step without running it), a replay runs the step again with the momentum the
    capture saw (a real graph bakes it in). With it the warm-up → record → replay → re-record logic of
    :class:`StepGraph` runs here exactly as it would on a GPU, but for the arithmetic."""

    current = None
    events: list[str] = []

    def __init__(self):
        self.momentum = None

    def register_generator_state(self, gen):
        self.events.append("register")

    def replay(self):
        sg = _StandInGraph.current
        groups = sg.t.opt.param_groups
        saved = [g["momentum"] for g in groups]
        for g, m in zip(groups, self.momentum):
            g["momentum"] = m
        try:
            sg._body()
        finally:
            for g, m in zip(groups, saved):
                g["momentum"] = m
        self.events.append("replay")


class _StandInStream:
    def __init__(self, device=None):
        pass

    def wait_stream(self, other):
        pass


def _stand_in_capture(graph):
    import contextlib

    @contextlib.contextmanager
    def capture():
        sg = _StandInGraph.current
        t = sg.t
        params = [p.detach().clone() for p in t.model.parameters()]
        bufs = {p: s["momentum_buffer"].clone() for p, s in t.opt.state.items() if "momentum_buffer" in s}
        statics = [x.clone() for x in (sg.row, sg.loss, sg.total_loss, sg.wrong, sg.lr)]
        rng, noise = torch.get_rng_state(), t.noise_gen.get_state()
        graph.momentum = [g["momentum"] for g in t.opt.param_groups]
        yield
        with torch.no_grad():
            for p, v in zip(t.model.parameters(), params):
                p.copy_(v)
            for p, b in bufs.items():
                t.opt.state[p]["momentum_buffer"].copy_(b)
            for x, v in zip((sg.row, sg.loss, sg.total_loss, sg.wrong, sg.lr), statics):
                x.copy_(v)
        torch.set_rng_state(rng)
        t.noise_gen.set_state(noise)
        _StandInGraph.events.append("capture")

    return capture()


@pytest.fixture
def stand_in_cuda(monkeypatch):
    import contextlib

    from tui_adv.core import step_graph

    monkeypatch.setattr(torch.cuda, "CUDAGraph", _StandInGraph)
    monkeypatch.setattr(torch.cuda, "graph", _stand_in_capture)
    monkeypatch.setattr(torch.cuda, "Stream", _StandInStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: _StandInStream())
    monkeypatch.setattr(torch.cuda, "set_stream", lambda s: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    real_init = step_graph.StepGraph.__init__

    def init(self, trainer, capture):
        real_init(self, trainer, capture)
        self.capture = True  # as on a GPU
        _StandInGraph.current = self

    monkeypatch.setattr(step_graph.StepGraph, "__init__", init)
    _StandInGraph.events = []
    return _StandInGraph.events


@pytest.mark.parametrize("extra,n,valid", [
    ({"momentum": 0.5, "final_momentum": 0.7, "momentum_saturate": 3}, 230, False),  # re-recorded as the momentum ramps; ragged batch
    ({"mode": "adversarial", "alpha": 0.5, "epsilon": 0.25}, 230, False),
    ({"mode": "sign_noise", "alpha": 0.5, "epsilon": 0.25}, 224, False),  # the noise generator registered with the graph
    ({"momentum": 0.0}, 224, False),  # no momentum buffers to wait for
    ({"mode": "augment", "augment_after": 1, "augment_ratio": 0.5, "epsilon": 0.25}, 230, False),  # a new split: recorded again
    ({"early_stopping": {"metric": "valid_error", "patience": 2}, "continuation": {"max_epochs": 2}}, 192, True),  # a new optimiser
], ids=["ramp", "adversarial", "sign_noise", "no_momentum", "augment", "continuation"])
def test_warm_up_record_and_replay_give_the_plain_loops_bits(stand_in_cuda, extra, n, valid):
    data = _data(n=n, valid=valid)
    cfg = TrainConfig(**{"epochs": 3, "batch_size": 32, "lr": 0.05, "lr_decay": 0.99, "eval_adv": False, **extra})
    plain = _train("maxout", MAXOUT, cfg, "off", data)
    graphed = _train("maxout", MAXOUT, cfg, "cuda", data)
    _same_run(graphed, plain)
    assert stand_in_cuda.count("capture") >= 1 and stand_in_cuda.count("replay") >= 3
    assert graphed[1].graph.failed is None
    if extra.get("mode") == "sign_noise":
        assert "register" in stand_in_cuda


def test_an_adam_run_takes_the_plain_loop_even_when_a_graph_is_asked_for(stand_in_cuda):
    data = _data()
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.01, optimizer="adam", eval_adv=False)
    plain = _train("maxout", MAXOUT, cfg, "off", data)
    asked = _train("maxout", MAXOUT, cfg, "cuda", data)
    _same_run(asked, plain)
    assert asked[1].graph is None and not stand_in_cuda
