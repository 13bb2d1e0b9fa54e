"""One training epoch of the maxout network: our runner against a bare loop and a DataLoader loop.

    python benchmarks/train.py [--json] [--device auto|cpu|cuda] [--repeats 5] [--train-size N] [--skip-dataloader]

Every variant trains the maxout network (240 units × 5 pieces × 2 layers, the pylearn2 recipe of
``configs/maxout.toml``: SGD lr .1 decayed per step, momentum .5, dropout, max column norm, batch 100)
for one epoch from the same seeded init, then measures the per-epoch metrics a real run records: clean
and FGSM (ε = .25) error on the first 2,000 test images (``train.eval_limit = 2000`` in the configs).
Clean mode and the adversarial objective (α = .5, ε = .25, ``configs/maxout_adv.toml``):

- ``ours``: the real :class:`tui_adv.runner.Runner` on ``configs/maxout[_adv].toml`` with
  ``train.epochs = 1``, ``data.train_limit = N``, ``sweep.enabled = false``, writing to a fresh SQLite
  catalog through its background ``CatalogWriter`` (batch losses 50× per epoch, progress, epoch metrics,
  logs) with progress events on. Timed from the runner's ``phase: train`` event to its ``epoch_end``
  event, i.e. the epoch and its evaluation (data loading and checkpoint writing are outside, as for
  the other variants).
- ``bare``: a plain loop over the preloaded device tensors (seeded permutation, index slices) doing the
  same arithmetic; on CPU it reproduces our final weights bit for bit (checked).
- ``dataloader``: ``torchvision.datasets.MNIST(transform=ToTensor())`` + ``DataLoader(batch_size=100,
  shuffle=True)`` (num_workers = 0, the default; pin_memory on CUDA), the same step and evaluation.

``N`` defaults to 60,000 (the whole training set) on CUDA and to the first 12,000 on CPU, where a full
epoch of every variant × 5 repeats would take ~10 minutes on this machine's 2 cores; the subset is the
same for every variant. ``--json`` prints ``{"ours_s", "bare_s", "dataloader_s", "adv_ours_s",
"adv_bare_s", "device", …}`` (medians of interleaved repeats).

FLOP accounting (issue 11): the epoch's matrix-product FLOPs are counted from the layer shapes
(:mod:`tui_adv.core.flops`: forward, parameter gradients, input gradients where needed, and the
evaluation's clean forward + FGSM direction + perturbed forward), and the machine's float32 matrix rate
is measured in the same process as one more interleaved variant (``matrix``: the faster of a
1000×784·784×1200 and a 2048³ product), and so is ``products``: only the matrix products of a clean
epoch, at the step's own shapes (batch 100), on random operands — the rate those shapes allow, i.e. the
ceiling of a step whose elementwise work were free (``<variant>_fraction_of_products``). ``--json`` adds ``matrix_rate_gflops`` and per variant
``<variant>_gflops`` and ``<variant>_fraction_of_matrix_rate``, each from its fastest round (the
machine is shared; the fastest round is the one least disturbed), with the medians beside them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import REPO, add_common_args, apply_threads, emit_json, interleaved, log, machine, matrix_round, median, rates, resolve_device, sync

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tui_adv.config import load_config  # noqa: E402
from tui_adv.core.data import load_mnist, resolve_data_root  # noqa: E402
from tui_adv.core.flops import epoch_flops, linear_shapes  # noqa: E402
from tui_adv.core.models import build_model  # noqa: E402

EVAL_N = 2000


def _cfg(mode: str, n: int, device: torch.device):
    name = "maxout_adv.toml" if mode == "adversarial" else "maxout.toml"
    overrides = ["train.epochs=1", f"data.train_limit={n}", "sweep.enabled=false", "train.checkpoint_every=0", f"device={device.type}"]
    return load_config(REPO / "configs" / name, overrides)


# ------------------------------------------------------------------------------------------------- ours
def run_ours(cfg, device: torch.device, data_dir: str | None, workdir: Path) -> tuple[float, dict]:
    """The real runner into a fresh catalog; returns (seconds of the epoch + its evaluation, final weights)."""
    from tui_adv.catalog.store import Store
    from tui_adv.runner import Runner, load_checkpoint

    db = workdir / f"runs-{time.monotonic_ns()}.db"
    store = Store(f"sqlite:///{db}")
    marks: dict[str, float] = {}

    def on_event(e: dict) -> None:  # the progress stream the CLI/dashboard consume
        if e["type"] == "phase" and e.get("phase") == "train":
            sync(device)
            marks["start"] = time.perf_counter()
        elif e["type"] == "epoch_end":
            sync(device)
            marks["end"] = time.perf_counter()

    try:
        runner = Runner(cfg, store, data_dir=data_dir, device=device.type, emit=on_event)
        status = runner.execute()
        if status != "completed":
            raise SystemExit(f"our run ended {status}: {store.get_run(runner.run_id).error}")
        state = load_checkpoint(store.get_run(runner.run_id).checkpoint_path)["model"]
    finally:
        store.close()
    return marks["end"] - marks["start"], state


# ------------------------------------------------------------------------------------------------- the others
def _step_fn(model, opt, mode: str, alpha: float, eps: float):
    def step(x, y):
        opt.zero_grad(set_to_none=True)
        if mode == "adversarial":
            xg = x.detach().requires_grad_(True)
            clean = F.cross_entropy(model(xg), y)
            (alpha * clean).backward()
            x_adv = (x + eps * xg.grad.sign()).clamp_(0, 1)
            ((1 - alpha) * F.cross_entropy(model(x_adv), y)).backward()
        else:
            F.cross_entropy(model(x), y).backward()
        opt.step()
        model.apply_max_norm()

    return step


def _evaluate(model, batches, eps: float) -> tuple[float, float]:
    """Clean and FGSM error, as a loop over (x, y) batches; one host sync at the end."""
    model.eval()
    wrong = adv_wrong = n = 0
    for x, y in batches:
        with torch.inference_mode():
            wrong = wrong + (model(x).argmax(1) != y).sum()
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
        with torch.inference_mode():
            adv_wrong = adv_wrong + (model((x + eps * g.sign()).clamp_(0, 1)).argmax(1) != y).sum()
        n += len(y)
    return float(wrong) / n, float(adv_wrong) / n


def _model_and_opt(cfg, device):
    torch.manual_seed(cfg.seed)  # as the runner does before building the model
    model = build_model("maxout", **cfg.model.params()).to(device)
    t = cfg.train
    opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum)
    return model, opt


def run_bare(cfg, data, device: torch.device) -> tuple[float, dict]:
    t = cfg.train
    model, opt = _model_and_opt(cfg, device)
    step = _step_fn(model, opt, t.mode, t.alpha, t.epsilon)
    x_all, y_all = data.train.x, data.train.y
    xe, ye = data.test.x[:EVAL_N], data.test.y[:EVAL_N]
    gen = torch.Generator().manual_seed(cfg.seed)
    sync(device)
    t0 = time.perf_counter()
    model.train()
    perm = torch.randperm(len(y_all), generator=gen).to(device)
    for i, s in enumerate(range(0, len(y_all), t.batch_size)):
        opt.param_groups[0]["lr"] = max(t.lr * t.lr_decay**i, t.min_lr)
        idx = perm[s : s + t.batch_size]
        step(x_all[idx], y_all[idx])
    _evaluate(model, [(xe[s : s + 1000], ye[s : s + 1000]) for s in range(0, EVAL_N, 1000)], t.epsilon)
    sync(device)
    return time.perf_counter() - t0, model.state_dict()


def run_products(shapes, n: int, batch_size: int, device: torch.device) -> float:
    """Only the matrix products of a clean epoch and its evaluation, at the shapes the step has them
    (batch 100: forward, parameter gradients, input gradients below the first layer; the evaluation's
    at batch 1000), on random operands: the rate these shapes allow on this machine, i.e. the ceiling of
    a step that hid every elementwise pass, the optimiser and the dropout masks."""
    ops = []
    for i, (fan_in, fan_out) in enumerate(shapes):
        w = torch.rand(fan_out, fan_in, device=device)
        x = torch.rand(batch_size, fan_in, device=device)
        g = torch.rand(batch_size, fan_out, device=device)
        ops.append((w, x, g, i > 0))
    xe = [torch.rand(1000, fi, device=device) for fi, _ in shapes]
    ge = [torch.rand(1000, fo, device=device) for _, fo in shapes]
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n // batch_size):
        for w, x, g, below in ops:
            x @ w.t()  # forward
            g.t() @ x  # parameter gradient
            if below:
                g @ w  # input gradient
    for _ in range(EVAL_N // 1000):  # clean forward, FGSM direction (forward + input gradients), perturbed forward
        for (w, _x, _g, _b), a, g in zip(ops, xe, ge):
            a @ w.t()
            a @ w.t()
            g @ w
            a @ w.t()
    sync(device)
    return time.perf_counter() - t0


def make_loaders(root: Path, n: int, device: torch.device):
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    tf = transforms.ToTensor()
    train = Subset(datasets.MNIST(str(root), train=True, transform=tf), range(n))
    test = Subset(datasets.MNIST(str(root), train=False, transform=tf), range(EVAL_N))
    pin = device.type == "cuda"
    return (
        DataLoader(train, batch_size=100, shuffle=True, pin_memory=pin),
        DataLoader(test, batch_size=1000, shuffle=False, pin_memory=pin),
    )


def run_dataloader(cfg, loaders, device: torch.device) -> float:
    t = cfg.train
    model, opt = _model_and_opt(cfg, device)
    step = _step_fn(model, opt, t.mode, t.alpha, t.epsilon)
    train_loader, test_loader = loaders
    nb = device.type == "cuda"
    sync(device)
    t0 = time.perf_counter()
    model.train()
    for i, (x, y) in enumerate(train_loader):
        opt.param_groups[0]["lr"] = max(t.lr * t.lr_decay**i, t.min_lr)
        step(x.to(device, non_blocking=nb), y.to(device, non_blocking=nb))
    _evaluate(model, ((x.to(device, non_blocking=nb), y.to(device, non_blocking=nb)) for x, y in test_loader), t.epsilon)
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p)
    p.add_argument("--train-size", type=int, default=None, help="training examples per epoch (default: 60000 on CUDA, 12000 on CPU)")
    p.add_argument("--skip-dataloader", action="store_true")
    args = p.parse_args()
    apply_threads(args)
    device = resolve_device(args.device)
    n = args.train_size or (60_000 if device.type == "cuda" else 12_000)
    log(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    log(f"maxout 240x5, one epoch on {n} training images + clean/FGSM error on {EVAL_N} test images; {machine(device)}")

    from tui_adv.core.datasets import _prepare_raw

    data = load_mnist(args.data_dir, device, train_limit=n)
    cfgs = {m: _cfg(m, n, device) for m in ("clean", "adversarial")}
    workdir = Path(tempfile.mkdtemp(prefix="adv-tui-bench-"))
    import os

    os.environ["ADV_TUI_CHECKPOINTS"] = str(workdir / "checkpoints")  # keep checkpoints out of the user's cache
    loaders = None if args.skip_dataloader else make_loaders(_prepare_raw(resolve_data_root(args.data_dir)), n, device)

    # warm-up + the fairness check: on CPU the bare loop must reproduce our weights exactly
    for mode, cfg in cfgs.items():
        _, ours_w = run_ours(cfg, device, args.data_dir, workdir)
        _, bare_w = run_bare(cfg, data, device)
        same = all(torch.equal(ours_w[k].cpu(), bare_w[k].cpu()) for k in ours_w)
        log(f"{mode}: bare loop reproduces our final weights bit for bit: {same}")
        if device.type == "cpu" and not same:
            raise SystemExit("the bare loop does not do the same arithmetic as ours; fix the benchmark")
    if loaders is not None:
        run_dataloader(cfgs["clean"], loaders, device)

    variants = {
        "ours": lambda: run_ours(cfgs["clean"], device, args.data_dir, workdir)[0],
        "bare": lambda: run_bare(cfgs["clean"], data, device)[0],
        "adv_ours": lambda: run_ours(cfgs["adversarial"], device, args.data_dir, workdir)[0],
        "adv_bare": lambda: run_bare(cfgs["adversarial"], data, device)[0],
    }
    if loaders is not None:
        variants["dataloader"] = lambda: run_dataloader(cfgs["clean"], loaders, device)
    shapes = linear_shapes(build_model("maxout", **cfgs["clean"].model.params()))
    variants["products"] = lambda: run_products(shapes, n, cfgs["clean"].train.batch_size, device)
    variants["matrix"] = lambda: matrix_round(device)  # seconds per GFLOP, same rounds as the variants
    times = interleaved(variants, args.repeats)
    clean_gflop = epoch_flops(shapes, n, cfgs["clean"].train.batch_size, "clean", EVAL_N) / 1e9
    adv_gflop = epoch_flops(shapes, n, cfgs["adversarial"].train.batch_size, "adversarial", EVAL_N) / 1e9
    gflop = {"ours": clean_gflop, "bare": clean_gflop, "adv_ours": adv_gflop, "adv_bare": adv_gflop, "products": clean_gflop}
    if loaders is not None:
        gflop["dataloader"] = clean_gflop
    med = {k: median(v) for k, v in times.items()}
    result = {
        "ours_s": round(med["ours"], 4),
        "bare_s": round(med["bare"], 4),
        "dataloader_s": round(med["dataloader"], 4) if "dataloader" in med else None,
        "adv_ours_s": round(med["adv_ours"], 4),
        "adv_bare_s": round(med["adv_bare"], 4),
        "device": str(device),
        "ratios": {
            "ours_over_bare": round(med["ours"] / med["bare"], 3),
            "adv_ours_over_adv_bare": round(med["adv_ours"] / med["adv_bare"], 3),
            **({"dataloader_over_ours": round(med["dataloader"] / med["ours"], 3)} if "dataloader" in med else {}),
        },
        "best_s": {k: round(min(v), 4) for k, v in times.items() if k != "matrix"},  # fastest round: robust to load spikes
        **rates(times, gflop),
        # what the step's own product shapes allow: the fraction of that ceiling the training reaches
        **{f"{v}_fraction_of_products": round(min(times["products"]) / min(times[v]) * gflop[v] / clean_gflop, 3) for v in ("ours", "adv_ours")},
        "train_size": n,
        "eval_size": EVAL_N,
        "repeats": args.repeats,
        "machine": machine(device),
    }
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
