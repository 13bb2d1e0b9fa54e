"""What one checkpoint of each paper model costs to write, beside what its training epoch costs in work.

    python benchmarks/checkpoint.py [--json] [--device auto|cpu|cuda] [--dir DIR] [--repeats R]

A run's checkpoint is its trainer's ``state_dict()`` (weights, the optimiser's momentum buffers,
generator states) written by ``atomic_save`` (temp file, fsync, rename) into ``--dir`` (default: a temp
folder under the repository, on the disk the catalog's ``checkpoints/`` would use). For each model
(the 240-unit maxout of the recipe, the 1600-unit one, and a 12-member stack of the first, whose members
each write their own), interleaved over the rounds: the size in MB and the seconds to write, median and
fastest round. ``$ADV_TUI_CHECKPOINT_S`` (30 s on a GPU) exists because of these figures: on a GPU an
epoch of the 1600-unit net is expected to take about as long as its checkpoint's write (a FLOP count,
not a measurement: ``benchmarks/epoch.py`` measures it on the device).

``--json`` prints ``{"<model>_mb", "<model>_s", "best_s": {...}, "repeats", "device", "machine"}``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _common import REPO, add_common_args, apply_threads, emit_json, interleaved, log, machine, median, resolve_device, sync

import torch  # noqa: E402

from tui_adv.checkpoints import atomic_save, model_for  # noqa: E402
from tui_adv.config import load_config  # noqa: E402
from tui_adv.core.train_state import make_optimizer  # noqa: E402


def _state(name: str, device: torch.device) -> dict:
    """A trainer's checkpoint dict of ``configs/<name>.toml``'s model after one SGD step (momentum
    buffers exist), on ``device``."""
    cfg = load_config(REPO / "configs" / f"{name}.toml")
    model = model_for(cfg).to(device)
    opt = make_optimizer(model, cfg.train)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state()}


def _write(states: list[dict], folder: Path, device: torch.device) -> float:
    import time

    sync(device)
    t0 = time.perf_counter()
    for i, s in enumerate(states):
        atomic_save(s, folder / f"run-{i}.pt")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p, repeats=5)
    p.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp folder in the repository)")
    args = p.parse_args()
    apply_threads(args)
    device = resolve_device(args.device)
    folder = Path(tempfile.mkdtemp(prefix=".bench-checkpoint-", dir=args.dir or REPO))
    try:
        models = {"maxout": [_state("maxout", device)], "maxout1600": [_state("maxout1600", device)]}
        models["stack12"] = [models["maxout"][0]] * 12  # 12 members' checkpoints of the ensemble's shape
        log(f"device: {device}; writing into {folder}; {machine(device)}")
        sizes = {}
        for name, states in models.items():
            _write(states, folder, device)  # warm-up
            sizes[name] = sum((folder / f"run-{i}.pt").stat().st_size for i in range(len(states))) / 1e6
        times = interleaved({name: (lambda s=states: _write(s, folder, device)) for name, states in models.items()}, args.repeats)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    emit_json({
        **{f"{name}_mb": round(mb, 1) for name, mb in sizes.items()},
        **{f"{name}_s": round(median(v), 4) for name, v in times.items()},
        "best_s": {name: round(min(v), 4) for name, v in times.items()},
        "repeats": args.repeats, "device": str(device), "machine": machine(device),
    }, args.json)


if __name__ == "__main__":
    main()
