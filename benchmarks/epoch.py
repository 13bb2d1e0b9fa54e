"""Per-epoch time of each model of the paper profile: eager vs the static/graphed step vs stacked, and the floor.

    python benchmarks/epoch.py [--json] [--device auto|cpu|cuda] [--train-size N] [--repeats R] [--members K]
                               [--models softmax,maxout240,maxout240_adv,maxout1600_adv]

For each model (the configs of the paper profile: ``softmax.toml``, ``maxout.toml``, ``maxout_adv.toml``,
``maxout1600_adv.toml``) one training epoch on the first N MNIST training images, timed after a warm-up
epoch, interleaved over R rounds, in these variants:

- ``eager``: :class:`~tui_adv.core.train.Trainer` with the plain loop (``graph="off"``);
- ``graphed``: the step on static tensors, captured as a CUDA graph and replayed (``graph="cuda"``; on a
  CPU, where nothing can be captured, the same static step run eagerly: ``graph="static"``);
- ``stacked`` (the maxouts only): K members as one :class:`~tui_adv.core.stacked.StackedTrainer` epoch,
  reported per member (the stack's time / K).

The per-epoch evaluation is kept out (``eval_adv = false`` and a 100-image test split), so the figure is
the training step's. The **floor** is the epoch's matrix-product FLOPs (:mod:`tui_adv.core.flops`,
forward + parameter gradients + input gradients where needed) divided by the device's matrix rate
measured in the same rounds (the ``matrix`` variant of ``_common.py``): what the epoch would take if it
were nothing but its products at the rate of a large GEMM. ``--json`` prints one object:
``{"<model>": {"eager_s", "graphed_s", "stacked_per_member_s", "floor_s", "eager_over_floor", …}, "matrix_rate_gflops",
"device", …}`` (medians; ``best_s`` the fastest rounds). N defaults to 60,000 on CUDA and 3,000 on CPU.
"""

from __future__ import annotations

import argparse

from _common import REPO, add_common_args, apply_threads, emit_json, interleaved, log, machine, matrix_round, median, resolve_device, sync

import torch  # noqa: E402

from tui_adv.config import load_config  # noqa: E402
from tui_adv.core.data import MNISTData, Split, load_mnist  # noqa: E402
from tui_adv.core.flops import epoch_flops, linear_shapes  # noqa: E402
from tui_adv.core.models import build_model  # noqa: E402
from tui_adv.core.stacked import StackedTrainer, build_stack  # noqa: E402
from tui_adv.core.train import Trainer  # noqa: E402

MODELS = {
    "softmax": ("softmax.toml", []),
    "maxout240": ("maxout.toml", []),
    "maxout240_adv": ("maxout_adv.toml", []),
    "maxout1600_adv": ("maxout1600_adv.toml", []),
}


def _timed(fn) -> float:  # noqa: ANN001
    import time

    sync(DEVICE)
    t0 = time.perf_counter()
    fn()
    sync(DEVICE)
    return time.perf_counter() - t0


def _solo(cfg, data, graph: str) -> None:
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model.kind, **cfg.model.params()).to(DEVICE)
    Trainer(model, data, cfg.train, seed=cfg.seed, batch_every=10**9, graph=graph).run()


def _stacked(cfg, data, k: int) -> None:
    seeds = [100 + i for i in range(k)]
    stack = build_stack(lambda: build_model(cfg.model.kind, **cfg.model.params()), seeds, DEVICE)
    StackedTrainer(stack, data, cfg.train, seeds, batch_every=10**9).run()


def main() -> None:
    global DEVICE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p, repeats=3)
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--members", type=int, default=12, help="K of the stacked variant (default 12, the ensemble)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    args = p.parse_args()
    apply_threads(args)
    DEVICE = resolve_device(args.device)
    n = args.train_size or (60_000 if DEVICE.type == "cuda" else 3_000)
    full = load_mnist(args.data_dir, DEVICE, train_limit=n)
    data = MNISTData(train=full.train, test=Split(full.test.x[:100], full.test.y[:100]), valid=None, classes=full.classes)
    graphed = "cuda" if DEVICE.type == "cuda" else "static"
    log(f"device: {DEVICE}" + (f" ({torch.cuda.get_device_name(DEVICE)})" if DEVICE.type == "cuda" else ""))
    log(f"one epoch on {n} images per model; graphed = {graphed}; stacked K = {args.members}; {machine(DEVICE)}")

    variants, work = {}, {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        file, extra = MODELS[name]
        cfg = load_config(REPO / "configs" / file, ["train.epochs=1", "train.eval_adv=false", "sweep.enabled=false", *extra])
        shapes = linear_shapes(build_model(cfg.model.kind, **cfg.model.params()))
        work[name] = epoch_flops(shapes, n, cfg.train.batch_size, cfg.train.mode, 0) / 1e9
        variants[f"{name}/eager"] = lambda cfg=cfg: _timed(lambda: _solo(cfg, data, "off"))
        variants[f"{name}/graphed"] = lambda cfg=cfg: _timed(lambda: _solo(cfg, data, graphed))
        if cfg.model.kind == "maxout":
            variants[f"{name}/stacked"] = lambda cfg=cfg: _timed(lambda: _stacked(cfg, data, args.members)) / args.members
    variants["matrix"] = lambda: matrix_round(DEVICE)  # seconds per GFLOP
    times: dict[str, list[float]] = {k: [] for k in variants}
    try:  # a stop (SIGINT: gpu_paper.sh's budget) keeps the rounds finished so far
        for v in variants.values():  # warm-up (allocator, cuBLAS handles, the first capture)
            v()
        for r in range(args.repeats):
            for k, ts in interleaved(dict(list(variants.items())[r % len(variants):] + list(variants.items())[:r % len(variants)]), 1).items():
                times[k] += ts
    except KeyboardInterrupt:
        log(f"stopped after {min(len(t) for t in times.values())} full round(s)")
    times = {k: ts for k, ts in times.items() if ts}
    if "matrix" not in times:
        raise SystemExit("stopped before the first round: nothing measured")
    rate = 1.0 / min(times["matrix"])
    out: dict = {"matrix_rate_gflops": round(rate, 1), "train_size": n, "members": args.members, "repeats": args.repeats,
                 "device": str(DEVICE), "graphed_mode": graphed, "machine": machine(DEVICE)}
    for name, gflop in work.items():
        row = {"gflop": round(gflop, 2), "floor_s": round(gflop / rate, 4)}
        for kind, key in (("eager", "eager_s"), ("graphed", "graphed_s"), ("stacked", "stacked_per_member_s")):
            ts = times.get(f"{name}/{kind}")
            if ts:
                row[key] = round(median(ts), 4)
                row.setdefault("best_s", {})[kind] = round(min(ts), 4)
                row[f"{kind}_over_floor"] = round(min(ts) / row["floor_s"], 2)
        out[name] = row
    emit_json(out, args.json)


DEVICE = torch.device("cpu")

if __name__ == "__main__":
    main()
