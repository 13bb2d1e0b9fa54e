"""Shared helpers of the benchmarks: device choice, synchronized timing, interleaved repeats, machine notes.

Diagnostics go to stderr; ``--json`` output (the only thing on stdout) is printed by each script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def add_common_args(p: argparse.ArgumentParser, repeats: int = 5) -> None:
    p.add_argument("--json", action="store_true", help="print the medians as one JSON object on stdout")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda when visible")
    p.add_argument("--repeats", type=int, default=repeats, help=f"timed repeats per variant (median; default {repeats})")
    p.add_argument("--data-dir", default=None, help="MNIST root (default: $ADV_TUI_DATA, then the cache)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's, = the cores)")


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible here")
    return torch.device(name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """Wall seconds of ``fn()`` with the device synchronized before and after."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def interleaved(variants: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run every variant once per round, ``repeats`` rounds, rotating the order each round so that a
    change of machine load during the run falls on all variants alike. Each callable returns seconds."""
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            times[n].append(variants[n]())
        log(f"  round {r + 1}/{repeats}: " + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names))
    return times


# the machine's float32 matrix rate: the largest product of the maxout's layers and a large square one
MATRIX_SHAPES = ((1000, 784, 1200), (2048, 2048, 2048))


def matrix_round(device: torch.device) -> float:
    """One round of the matrix-rate measurement: seconds per GFLOP of the faster of the two products
    (each timed on its own, synchronized), so ``1 / value`` is GFLOP/s. Interleaved with the variants,
    it sees the same machine load they do."""
    best = float("inf")
    for m, k, n in MATRIX_SHAPES:
        a = torch.rand(m, k, device=device)
        b = torch.rand(k, n, device=device)
        a @ b  # allocate / pick the kernel outside the timed region
        reps = max(1, int(2e9 // (2 * m * k * n)))  # ~2 GFLOP per timing
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / (2 * m * k * n * reps / 1e9))
    return best


def rates(times: dict[str, list[float]], gflop: dict[str, float]) -> dict:
    """The JSON keys of the FLOP accounting, each from its fastest round: ``matrix_rate_gflops``, and per
    variant ``<variant>_gflops`` and ``<variant>_fraction_of_matrix_rate``; plus the medians."""
    matrix = 1.0 / min(times["matrix"])
    out = {"matrix_rate_gflops": round(matrix, 1), "matrix_rate_median_gflops": round(1.0 / median(times["matrix"]), 1)}
    for name, g in gflop.items():
        best = g / min(times[name])
        out[f"{name}_gflop"] = round(g, 3)
        out[f"{name}_gflops"] = round(best, 1)
        out[f"{name}_median_gflops"] = round(g / median(times[name]), 1)
        out[f"{name}_fraction_of_matrix_rate"] = round(best / matrix, 3)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def machine(device: torch.device) -> dict:
    """What the figures were measured on (stderr notes, also stored in the JSON under ``machine``)."""
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def emit_json(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        log(json.dumps(result, indent=2))
