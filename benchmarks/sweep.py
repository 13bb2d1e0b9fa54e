"""A k-point FGSM sweep over the 10k MNIST test set: ours against its lower bound and the peers.

    python benchmarks/sweep.py [--json] [--device auto|cpu|cuda] [--repeats 5] [--k 21] [--batch-size 1000]

Model: the maxout network (240 units × 5 pieces × 2 layers), PyTorch's default init, trained briefly
(one clean epoch on the first 10k training images, seed 0) so that the error curve is a real one;
timings do not depend on the weights. All variants work on the same preloaded test tensors, in batches
of ``--batch-size``, with ε = 0, .3/(k−1), …, .3:

- ``ours``: :func:`tui_adv.core.sweep.fgsm_sweep` (one input gradient, then k forwards, full statistics).
- ``lower_bound``: bare torch, one forward + one input-only backward (parameters frozen), then k
  inference-mode forwards counting errors on the device, one host sync at the end.
- ``per_eps``: for every ε, ``fgsm`` (gradient recomputed) + ``predict`` + the same statistics: what the
  sweep would cost without the shared direction (and the reference the sweep must equal exactly).
- ``torchattacks``: ``torchattacks.FGSM(model, eps)`` called per batch for every ε, then a no-grad
  forward counting errors, as its README loops over a test set (tensors preloaded, no DataLoader).

Every variant runs once untimed (warm-up, k = 2), then ``--repeats`` interleaved rounds; medians are
reported. ``--json`` prints ``{"k", "ours_s", "lower_bound_s", "per_eps_s", "torchattacks_s", "device", …}``.

FLOP accounting (issue 11): matrix-product FLOPs from the layer shapes (:mod:`tui_adv.core.flops`):
one direction (forward + input-only backward) and k forwards for ``ours`` and ``lower_bound``, k
directions and k forwards for ``per_eps`` and ``torchattacks``; the float32 matrix rate is measured in
the same rounds (``matrix``). ``--json`` adds ``matrix_rate_gflops`` and per variant ``<variant>_gflops``
and ``<variant>_fraction_of_matrix_rate`` from the fastest round, medians beside them.
"""

from __future__ import annotations

import argparse

from _common import add_common_args, apply_threads, emit_json, interleaved, log, machine, matrix_round, median, rates, resolve_device, sync, timed

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tui_adv.config import TrainConfig  # noqa: E402
from tui_adv.core.attacks import fgsm  # noqa: E402
from tui_adv.core.data import MNISTData, load_mnist  # noqa: E402
from tui_adv.core.flops import linear_shapes, sweep_flops  # noqa: E402
from tui_adv.core.models import build_model  # noqa: E402
from tui_adv.core.sweep import _stats, fgsm_sweep, predict  # noqa: E402
from tui_adv.core.train import Trainer  # noqa: E402


def epsilons(k: int) -> list[float]:
    return [0.0] if k == 1 else [round(0.3 * i / (k - 1), 10) for i in range(k)]


def lower_bound(model, x, y, eps, bs) -> list[int]:
    """One forward + one input-only backward per batch, then k forwards; error counts stay on the device."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        d = torch.empty_like(x)
        for s in range(0, len(x), bs):
            xb = x[s : s + bs].detach().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xb), y[s : s + bs], reduction="sum"), xb)
            d[s : s + bs] = g.sign()
    finally:
        for p in params:
            p.requires_grad_(True)
    wrong = []
    with torch.inference_mode():
        for e in eps:
            w = torch.zeros((), dtype=torch.long, device=x.device)
            for s in range(0, len(x), bs):
                w += (model((x[s : s + bs] + e * d[s : s + bs]).clamp_(0, 1)).argmax(1) != y[s : s + bs]).sum()
            wrong.append(w)
    return [int(w) for w in wrong]


def per_eps(model, x, y, eps, bs) -> list[dict]:
    out = []
    for e in eps:
        pred, conf = predict(model, fgsm(model, x, y, e, batch_size=bs), bs)
        out.append(_stats(e, pred, conf, y).as_dict())
    return out


def with_torchattacks(model, x, y, eps, bs) -> list[int]:
    import torchattacks

    model.eval()
    wrong = []
    for e in eps:
        atk = torchattacks.FGSM(model, eps=e)
        w = torch.zeros((), dtype=torch.long, device=x.device)
        for s in range(0, len(x), bs):
            adv = atk(x[s : s + bs], y[s : s + bs])
            with torch.no_grad():
                w += (model(adv).argmax(1) != y[s : s + bs]).sum()
        wrong.append(w)
    return [int(w) for w in wrong]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p)
    p.add_argument("--k", type=int, default=21, help="number of ε values (default 21)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--no-torchattacks", action="store_true", help="skip the torchattacks variant")
    args = p.parse_args()
    apply_threads(args)
    device = resolve_device(args.device)
    log(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    data = load_mnist(args.data_dir, device)
    x, y = data.test.x, data.test.y
    torch.manual_seed(0)
    model = build_model("maxout", units=240, init_range=None).to(device)
    brief = MNISTData(train=data.train.limit(10_000), test=data.test.limit(1000), valid=None, classes=data.classes)
    Trainer(model, brief, TrainConfig(epochs=1, eval_adv=False, checkpoint_every=0), seed=0).run()
    model.eval()
    eps, bs = epsilons(args.k), args.batch_size
    log(f"model: maxout 240x5, 1 clean epoch on 10k; test n={len(y)}, k={len(eps)}, batch {bs}; {machine(device)}")

    # correctness first (untimed): the sweep equals per-ε recomputation exactly; the others agree
    ours_pts = [q.as_dict() for q in fgsm_sweep(model, x, y, eps, batch_size=bs).points]
    assert ours_pts == per_eps(model, x, y, eps, bs), "the sweep differs from per-ε recomputation"
    lb = lower_bound(model, x, y, eps, bs)
    log("errors (ours):", [round(q["error"], 4) for q in ours_pts])
    log("lower bound n_wrong differs from ours at", sum(a != q["n_wrong"] for a, q in zip(lb, ours_pts)), "ε values")

    variants = {
        "ours": lambda e: fgsm_sweep(model, x, y, e, batch_size=bs),
        "lower_bound": lambda e: lower_bound(model, x, y, e, bs),
        "per_eps": lambda e: per_eps(model, x, y, e, bs),
    }
    if not args.no_torchattacks:
        ta = with_torchattacks(model, x, y, eps, bs)
        log("torchattacks max |Δ n_wrong| vs ours:", max(abs(a - q["n_wrong"]) for a, q in zip(ta, ours_pts)))
        variants["torchattacks"] = lambda e: with_torchattacks(model, x, y, e, bs)
    for fn in variants.values():  # warm-up
        fn(eps[:2])
    sync(device)
    rounds = {n: (lambda fn=fn: timed(lambda: fn(eps), device)[0]) for n, fn in variants.items()}
    rounds["matrix"] = lambda: matrix_round(device)  # seconds per GFLOP, in the same rounds
    times = interleaved(rounds, args.repeats)
    shapes = linear_shapes(model)
    one = sweep_flops(shapes, len(y), len(eps)) / 1e9
    recompute = len(eps) * sweep_flops(shapes, len(y), 1) / 1e9  # a direction and a forward per ε
    gflop = {"ours": one, "lower_bound": one, "per_eps": recompute}
    if "torchattacks" in variants:
        gflop["torchattacks"] = recompute
    med = {n: median(t) for n, t in times.items() if n != "matrix"}
    result = {
        "k": len(eps),
        "ours_s": round(med["ours"], 4),
        "lower_bound_s": round(med["lower_bound"], 4),
        "per_eps_s": round(med["per_eps"], 4),
        "torchattacks_s": round(med["torchattacks"], 4) if "torchattacks" in med else None,
        "device": str(device),
        "ratios": {
            "ours_over_lower_bound": round(med["ours"] / med["lower_bound"], 3),
            "per_eps_over_ours": round(med["per_eps"] / med["ours"], 3),
            **({"torchattacks_over_ours": round(med["torchattacks"] / med["ours"], 3)} if "torchattacks" in med else {}),
        },
        "best_s": {k: round(min(v), 4) for k, v in times.items() if k != "matrix"},  # fastest round: robust to load spikes
        **rates(times, gflop),
        "n": len(y),
        "batch_size": bs,
        "repeats": args.repeats,
        "machine": machine(device),
    }
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
