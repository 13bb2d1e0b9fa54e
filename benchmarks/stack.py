"""K maxout members trained one after the other vs as one stacked model (issue 11, ``core/stacked.py``).

    python benchmarks/stack.py [--json] [--device auto|cpu|cuda] [--members K] [--units U] [--train-size N] [--repeats R]

Each round trains K members of the maxout recipe (``configs/maxout.toml``: 240 × 5 × 2 by default,
SGD with decay, dropout, max norm, batch 100) for one epoch on the first N MNIST training images, clean
and adversarial (α = .5, ε = .25), two ways, interleaved:

- ``solo``: K plain :class:`~tui_adv.core.train.Trainer` epochs, one member after the other (on CUDA the
  step is the captured CUDA graph unless ``ADV_TUI_CUDA_GRAPH=off``);
- ``stacked``: one :class:`~tui_adv.core.stacked.StackedTrainer` epoch for all K (on CUDA the hidden
  layers as batched products; on CPU member by member, which computes each solo run to the bit).

Before timing, the script checks that the stack's members equal their solo runs (bit for bit on CPU,
within float tolerance on CUDA). The per-epoch evaluation is kept small (``train.eval_adv = false``, a
100-image test split), so the figure is the training step's. ``--json`` prints
``{"solo_s", "stacked_s", "adv_solo_s", "adv_stacked_s", "speedup", "adv_speedup", "members", …}``
(medians) with the fastest rounds under ``best_s``. ``N`` defaults to 60,000 on CUDA, 3,000 on CPU.
"""

from __future__ import annotations

import argparse

from _common import REPO, add_common_args, apply_threads, emit_json, interleaved, log, machine, median, resolve_device, sync

import torch  # noqa: E402

from tui_adv.config import load_config  # noqa: E402
from tui_adv.core.data import MNISTData, Split, load_mnist  # noqa: E402
from tui_adv.core.models import build_model  # noqa: E402
from tui_adv.core.stacked import StackedTrainer, build_stack  # noqa: E402
from tui_adv.core.train import Trainer  # noqa: E402


def _cfg(mode: str, units: int):
    name = "maxout_adv.toml" if mode == "adversarial" else "maxout.toml"
    return load_config(REPO / "configs" / name, ["train.epochs=1", "train.eval_adv=false", f"model.units={units}"])


def _solo(cfg, data, seeds, device):
    models = []
    for s in seeds:
        torch.manual_seed(s)
        model = build_model("maxout", **cfg.model.params()).to(device)
        Trainer(model, data, cfg.train, seed=s, batch_every=1000).run()
        models.append(model)
    sync(device)
    return models


def _stacked(cfg, data, seeds, device):
    stack = build_stack(lambda: build_model("maxout", **cfg.model.params()), seeds, device)
    StackedTrainer(stack, data, cfg.train, seeds, batch_every=1000).run()
    sync(device)
    return stack


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p, repeats=3)
    p.add_argument("--members", type=int, default=None, help="K (default 12 on CUDA, the ensemble; 4 on CPU)")
    p.add_argument("--units", type=int, default=240)
    p.add_argument("--train-size", type=int, default=None)
    args = p.parse_args()
    apply_threads(args)
    device = resolve_device(args.device)
    k = args.members or (12 if device.type == "cuda" else 4)
    n = args.train_size or (60_000 if device.type == "cuda" else 3_000)
    full = load_mnist(args.data_dir, device, train_limit=n)
    data = MNISTData(train=full.train, test=Split(full.test.x[:100], full.test.y[:100]), valid=None, classes=full.classes)
    seeds = [100 + i for i in range(k)]
    log(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    log(f"{k} maxout {args.units}x5 members, one epoch on {n} images; {machine(device)}")
    cfgs = {m: _cfg(m, args.units) for m in ("clean", "adversarial")}

    for mode, cfg in cfgs.items():  # warm-up + the equality check
        solo, stack = _solo(cfg, data, seeds, device), _stacked(cfg, data, seeds, device)
        worst = 0.0
        for i, m in enumerate(solo):
            for a, b in zip(stack.member(i).state_dict().values(), m.state_dict().values()):
                worst = max(worst, float((a - b).abs().max()))
        log(f"{mode}: largest difference between a stacked member and its solo run: {worst:.3g}")
        if device.type == "cpu" and worst != 0.0:
            raise SystemExit("on CPU a stacked member must equal its solo run bit for bit")

    variants = {
        "solo": lambda: _timed(_solo, cfgs["clean"], data, seeds, device),
        "stacked": lambda: _timed(_stacked, cfgs["clean"], data, seeds, device),
        "adv_solo": lambda: _timed(_solo, cfgs["adversarial"], data, seeds, device),
        "adv_stacked": lambda: _timed(_stacked, cfgs["adversarial"], data, seeds, device),
    }
    times = interleaved(variants, args.repeats)
    med = {name: median(v) for name, v in times.items()}
    emit_json({
        **{f"{name}_s": round(v, 4) for name, v in med.items()},
        "best_s": {name: round(min(v), 4) for name, v in times.items()},
        "speedup": round(med["solo"] / med["stacked"], 3),
        "adv_speedup": round(med["adv_solo"] / med["adv_stacked"], 3),
        "members": k, "units": args.units, "train_size": n, "repeats": args.repeats, "device": str(device), "machine": machine(device),
    }, args.json)


def _timed(fn, cfg, data, seeds, device) -> float:
    import time

    sync(device)
    t0 = time.perf_counter()
    fn(cfg, data, seeds, device)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
