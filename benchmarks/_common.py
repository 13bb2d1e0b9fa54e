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
