"""Pure helpers for the dashboard: formatting, config discovery, launching runs, run colours.

Nothing here imports textual, so it is cheap to test and safe to call from worker threads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from ..catalog.schema import Run

Clock = Callable[[], datetime]

STATUS_GLYPH = {
    "queued": "◌",
    "running": "●",
    "completed": "✓",
    "failed": "✗",
    "cancelled": "■",
    "interrupted": "!",
}
STATUS_STYLE = {
    "queued": "dim",
    "running": "bold green",
    "completed": "",
    "failed": "bold red",
    "cancelled": "yellow",
    "interrupted": "bold dark_orange",
}
STATUS_FILTERS: list[tuple[str, tuple[str, ...] | None]] = [
    ("all", None),
    ("active", ("queued", "running")),
    ("completed", ("completed",)),
    ("failed", ("failed",)),
    ("cancelled", ("cancelled",)),
    ("interrupted", ("interrupted",)),
]

# stable per-run colours (colour-blind friendly-ish, readable on dark and light backgrounds)
PALETTE: list[tuple[int, int, int]] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (23, 190, 207),
    (188, 189, 34),
    (227, 119, 194),
    (140, 86, 75),
    (127, 127, 127),
]


def run_colour(run_id: int) -> tuple[int, int, int]:
    """A run keeps its colour everywhere (compare overlays, legends), whatever else is selected."""
    return PALETTE[(int(run_id) * 7) % len(PALETTE)]


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


# ------------------------------------------------------------------------------------------ time
def utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def real_clock() -> datetime:
    return datetime.now(timezone.utc)


def fmt_seconds(s: float | None) -> str:
    if s is None or s != s or s < 0:
        return "—"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def elapsed_s(run: Run, now: datetime) -> float | None:
    start = utc(run.started_at)
    if start is None:
        return None
    end = utc(run.finished_at) or now
    return max(0.0, (end - start).total_seconds())


def duration(run: Run, now: datetime) -> str:
    return fmt_seconds(elapsed_s(run, now))


def eta_s(run: Run, now: datetime) -> float | None:
    """Remaining time from the overall progress so far (linear extrapolation)."""
    if run.status != "running" or not run.progress or run.progress <= 0.005:
        return None
    el = elapsed_s(run, now)
    if el is None:
        return None
    return el * (1 - run.progress) / run.progress


def fmt_started(run: Run) -> str:
    dt = utc(run.started_at or run.created_at)
    if dt is None:
        return "—"
    return dt.astimezone().strftime("%Y-%m-%d %H:%M")


def pct(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{100 * v:.{digits}f}%"


def progress_bar(p: float, width: int = 8) -> str:
    p = min(max(p or 0.0, 0.0), 1.0)
    full = int(p * width)
    part = " ▏▎▍▌▋▊▉"[int((p * width - full) * 8)] if full < width else ""
    return ("█" * full + part).ljust(width, " ")


def phase_text(run: Run) -> str:
    """'train 3/10' / 'sweep' / '' for the live marker."""
    if run.status not in ("running", "queued"):
        return ""
    if run.phase == "train":
        return f"epoch {min(run.epoch + 1, run.epochs)}/{run.epochs}" if run.epochs else "train"
    if run.phase == "sweep":
        return "sweep"
    return run.phase or run.status


def batch_fraction(run: Run, cfg: dict | None) -> float | None:
    """Fraction of the current epoch done, derived from the row's overall progress."""
    if run.phase != "train" or not run.epochs:
        return None
    sweep_on = bool(((cfg or {}).get("sweep") or {}).get("enabled", True))
    share = 0.9 if sweep_on else 1.0
    done = min(1.0, (run.progress or 0.0) / share) * run.epochs
    return min(max(done - run.epoch, 0.0), 1.0)


# ------------------------------------------------------------------------------------------ configs
def config_dirs() -> list[Path]:
    """Where the Launch screen looks for configs: ./configs, then the repo's configs/."""
    out: list[Path] = []
    for d in (Path.cwd() / "configs", Path(__file__).resolve().parents[2] / "configs"):
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


@dataclass
class ConfigInfo:
    path: Path
    name: str
    description: str = ""
    claims: list[str] = field(default_factory=list)
    experiment: str = ""
    epochs: int | None = None
    epsilons: list[float] | None = None
    alpha: float | None = None
    mode: str = "clean"
    device: str = "auto"
    seed: int = 0
    profile: str | None = None
    model: str = ""
    error: str | None = None


def read_config_info(path: Path) -> ConfigInfo:
    """Describe a config file for the picker; a broken file is listed with its error, not hidden."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        return ConfigInfo(path=path, name=path.stem, error=f"cannot read: {e}")
    train = raw.get("train") or {}
    sweep = raw.get("sweep") or {}
    eps = sweep.get("epsilons")
    return ConfigInfo(
        path=path,
        name=str(raw.get("name") or path.stem),
        description=str(raw.get("description") or ""),
        claims=[str(c) for c in raw.get("claims") or []],
        experiment=str(raw.get("experiment") or ""),
        epochs=train.get("epochs", 10),
        epsilons=[float(e) for e in eps] if isinstance(eps, list) else [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
        alpha=train.get("alpha", 0.5),
        mode=str(train.get("mode", "clean")),
        device=str(raw.get("device", "auto")),
        seed=int(raw.get("seed", 0) or 0),
        profile=raw.get("profile"),
        model=str((raw.get("model") or {}).get("kind", "")),
    )


def list_configs(dirs: Iterable[Path] | None = None) -> list[ConfigInfo]:
    seen: set[str] = set()
    out = []
    for d in dirs if dirs is not None else config_dirs():
        for p in sorted(d.glob("*.toml")):
            if p.name in seen:
                continue
            seen.add(p.name)
            out.append(read_config_info(p))
    return out


def parse_eps_list(text: str) -> list[float]:
    """'0, .05, .1' or '[0, 0.05]' → [0.0, 0.05, 0.1]; raises ValueError with a readable message."""
    body = text.strip().strip("[]")
    if not body:
        raise ValueError("ε list is empty")
    out = []
    for part in body.replace(";", ",").replace(" ", ",").split(","):
        if not part:
            continue
        try:
            v = float(part)
        except ValueError:
            raise ValueError(f"ε list: {part!r} is not a number") from None
        if v < 0 or v != v or v == float("inf"):
            raise ValueError(f"ε list: {part} must be a finite number ≥ 0")
        out.append(v)
    if not out:
        raise ValueError("ε list is empty")
    return out


def fmt_eps_list(eps: Iterable[float]) -> str:
    return ", ".join(f"{e:g}" for e in eps)


def gpu_hint() -> str:
    """A cheap guess (no torch import in the dashboard): is an NVIDIA GPU visible?"""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return "no GPU visible (CUDA_VISIBLE_DEVICES)"
    if Path("/proc/driver/nvidia/gpus").is_dir() or shutil.which("nvidia-smi"):
        return "NVIDIA GPU detected: auto uses cuda"
    return "no GPU detected: auto uses cpu"


# ------------------------------------------------------------------------------------------ launching
def launch_log_dir() -> Path:
    from ..core.data import cache_dir

    return cache_dir() / "launch-logs"


@dataclass
class Launched:
    pid: int
    argv: list[str]
    log_path: Path
    started: float
    popen: subprocess.Popen | None = None

    def exited(self) -> int | None:
        """The exit code when the process has ended (reaps it), else None."""
        if self.popen is None:
            return None
        return self.popen.poll()

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def launch_argv(config: str, overrides: list[str], *, db_url: str | None = None, data_dir: str | None, device: str | None) -> list[str]:
    """The child's command line. The catalog URL is not on it (argv is visible to every user in
    ``ps``, and the URL may hold a password): :func:`child_env` passes it as ``$ADV_TUI_DB``."""
    argv = [sys.executable, "-m", "tui_adv.cli", "run", str(config), "--headless", "--quiet"]
    if data_dir:
        argv += ["--data-dir", str(data_dir)]
    if device:
        argv += ["--device", device]
    for o in overrides:
        argv += ["--set", o]
    return argv


def child_env(db_url: str) -> dict[str, str]:
    """The environment of an ``adv-tui`` child process: the catalog URL in ``$ADV_TUI_DB`` (not argv)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "ADV_TUI_DB": db_url}


def private_file(path: Path) -> int:
    """Create ``path`` readable by its owner only (0600) and return its descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def spawn_run(config: str, overrides: list[str], *, db_url: str, data_dir: str | None = None, device: str | None = None) -> Launched:
    """Start ``adv-tui run --headless`` as a detached process (own session: it outlives the dashboard).
    Its output goes to a launch log that only the user can read (0600, in a 0700 directory)."""
    argv = launch_argv(config, overrides, data_dir=data_dir, device=device)
    log_dir = launch_log_dir()
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = log_dir / f"launch-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 100000}.log"
    with os.fdopen(private_file(log_path), "wb") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=os.getcwd(),
            env=child_env(db_url),
        )
    return Launched(pid=popen.pid, argv=argv, log_path=log_path, started=time.monotonic(), popen=popen)


# ------------------------------------------------------------------------------------------ configs of runs
def run_config(run: Run) -> dict:
    try:
        return json.loads(run.config_json or "{}")
    except (TypeError, ValueError):
        return {}


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'train': {'epochs': 3}} → {'train.epochs': 3}."""
    if isinstance(d, dict) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def config_diff(configs: dict[int, dict]) -> list[tuple[str, dict[int, str]]]:
    """Keys whose values differ between the runs' configs (missing counts as a difference)."""
    flat = {rid: flatten(c) for rid, c in configs.items()}
    keys = sorted(set().union(*[set(f) for f in flat.values()])) if flat else []
    rows = []
    for k in keys:
        vals = {rid: f.get(k, "∅") for rid, f in flat.items()}
        if len({json.dumps(v, sort_keys=True, default=str) for v in vals.values()}) > 1:
            rows.append((k, {rid: fmt_value(v) for rid, v in vals.items()}))
    return rows


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    if v is None:
        return "—"
    return str(v)


# ------------------------------------------------------------------------------------------ scorecard
def load_scorecard(store) -> tuple[list[dict] | None, str]:
    """Call the claims module's scorecard function when it exists.

    Returns (rows, message); rows is None when there is no scorecard (the message says why)."""
    try:
        import importlib

        claims = importlib.import_module("tui_adv.claims")
    except ImportError:
        return None, "no scorecard yet: run `adv-tui reproduce` (the claims module is not installed)"
    fn = None
    for name in ("compute_scorecard", "scorecard", "build_scorecard", "evaluate"):
        fn = getattr(claims, name, None)
        if callable(fn):
            break
    if fn is None:
        return None, "no scorecard yet: run `adv-tui reproduce`"
    result = None
    for args in ((store,), (store.url,), ()):
        try:
            result = fn(*args)
            break
        except TypeError:
            continue
    if result is None:
        return None, "no scorecard yet: run `adv-tui reproduce`"
    rows = _rows_of(result)
    if not rows:
        return None, "no scorecard yet: run `adv-tui reproduce` (no claim has a measured value)"
    return rows, ""


def _rows_of(result: Any) -> list[dict]:
    if isinstance(result, dict):
        for key in ("rows", "claims", "items", "results"):
            if isinstance(result.get(key), list):
                result = result[key]
                break
        else:
            result = [dict(v, claim=k) if isinstance(v, dict) else {"claim": k, "value": v} for k, v in result.items()]
    if hasattr(result, "rows"):
        result = result.rows
    rows = []
    for r in result or []:
        if isinstance(r, dict):
            rows.append(dict(r))
        elif hasattr(r, "model_dump"):
            rows.append(r.model_dump())
        elif hasattr(r, "__dataclass_fields__"):
            from dataclasses import asdict

            rows.append(asdict(r))
        elif hasattr(r, "__dict__"):
            rows.append({k: v for k, v in vars(r).items() if not k.startswith("_")})
    return rows


def row_run_ids(row: dict) -> list[int]:
    for key in ("run_ids", "runs", "run_id", "run"):
        v = row.get(key)
        if v is None:
            continue
        if isinstance(v, (int, str)):
            v = [v]
        out = []
        for x in v:
            try:
                out.append(int(x.id if hasattr(x, "id") else x))
            except (TypeError, ValueError):
                pass
        if out:
            return out
    return []
