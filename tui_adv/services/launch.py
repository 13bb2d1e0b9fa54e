"""Starting runs as separate processes: the configs on offer, and detached ``adv-tui`` children.

A config is read through the validated model (:func:`tui_adv.config.load_config`), so a launcher shows
exactly the values the run will get, defaults included, and a broken file is listed with its one-line
error instead of being hidden. A child gets the catalog URL in ``$ADV_TUI_DB`` (never argv: it is
visible to every user in ``ps`` and may hold a password) and writes its output to a launch log only
the user can read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import UserError


# ------------------------------------------------------------------------------------------ configs
def config_dirs() -> list[Path]:
    """Where a launcher looks for configs: ./configs, then the shipped ones."""
    from ..config import shipped_config_dirs

    out: list[Path] = []
    for d in (Path.cwd() / "configs", *shipped_config_dirs()):
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
    dataset: str = "mnist"
    error: str | None = None


def read_config_info(path: Path) -> ConfigInfo:
    """Describe a config file for the picker from its validated config (the defaults are the model's);
    a file that does not validate is listed with its error, not hidden."""
    from ..config import load_config

    try:
        cfg = load_config(path)
    except UserError as e:
        return ConfigInfo(path=path, name=path.stem, error=str(e))
    return ConfigInfo(
        path=path,
        name=cfg.name,
        description=cfg.description,
        claims=list(cfg.claims),
        experiment=cfg.experiment,
        epochs=cfg.train.epochs,
        epsilons=[float(e) for e in cfg.sweep.epsilons],
        alpha=cfg.train.alpha,
        mode=cfg.train.mode,
        device=cfg.device,
        seed=cfg.seed,
        profile=cfg.profile,
        model=cfg.model.kind,
        dataset=cfg.data.dataset,
    )


def list_configs(dirs: Iterable[Path] | None = None) -> list[ConfigInfo]:
    """Every ``*.toml`` of ``dirs`` (default :func:`config_dirs`), the first of each file name."""
    seen: set[str] = set()
    out = []
    for d in dirs if dirs is not None else config_dirs():
        for p in sorted(d.glob("*.toml")):
            if p.name in seen:
                continue
            seen.add(p.name)
            out.append(read_config_info(p))
    return out


# ------------------------------------------------------------------------------------------ processes
def launch_log_dir() -> Path:
    from ..core.datasets import cache_dir

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


def adv_tui_argv(args: list[str]) -> list[str]:
    """``adv-tui ARGS`` as a child's command line (this interpreter, so the same install)."""
    return [sys.executable, "-m", "tui_adv.cli", *args]


ENV_RAY_ADDRESS = "ADV_TUI_RAY_ADDRESS"


def configured_ray_address() -> str | None:
    """The Ray cluster the dashboard may send runs to (``adv-tui --ray-address ADDR`` or
    ``$ADV_TUI_RAY_ADDRESS``), or None."""
    return (os.environ.get(ENV_RAY_ADDRESS) or "").strip() or None


def launch_argv(config: str, overrides: list[str], *, db_url: str | None = None, data_dir: str | None, device: str | None,
                ray_address: str | None = None) -> list[str]:
    """The child's command line. The catalog URL is not on it (argv is visible to every user in
    ``ps``, and the URL may hold a password): :func:`child_env` passes it as ``$ADV_TUI_DB``. With
    ``ray_address`` the child submits the run to that Ray cluster and waits for it there."""
    argv = adv_tui_argv(["run", str(config), "--headless", "--quiet"])
    if data_dir:
        argv += ["--data-dir", str(data_dir)]
    if device:
        argv += ["--device", device]
    for o in overrides:
        argv += ["--set", o]
    if ray_address:
        argv += ["--executor", "ray", "--ray-address", ray_address]
    return argv


def child_env(db_url: str) -> dict[str, str]:
    """The environment of an ``adv-tui`` child process: the catalog URL in ``$ADV_TUI_DB`` (not argv)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "ADV_TUI_DB": db_url}


def private_file(path: Path) -> int:
    """Create ``path`` readable by its owner only (0600) and return its descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def check_data_dir(data_dir: str | None, dataset: str = "mnist") -> tuple[bool, str]:
    """``adv-tui data [--dataset NAME]`` for a data root: (ok, its last line). Run as a child process on purpose: loading
    MNIST needs torch, which stays out of the dashboard's process (its memory and start-up)."""
    argv = adv_tui_argv(["data"] + (["--data-dir", data_dir] if data_dir else []) + (["--dataset", dataset] if dataset != "mnist" else []))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"cannot check the data: {e}"
    out = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    return proc.returncode == 0, out[-1] if out else f"exit code {proc.returncode}"


def spawn_run(config: str, overrides: list[str], *, db_url: str, data_dir: str | None = None, device: str | None = None,
              ray_address: str | None = None) -> Launched:
    """Start ``adv-tui run --headless`` (``--executor ray`` with ``ray_address``) as a detached process
    (see :func:`spawn_detached`)."""
    return _spawn(launch_argv(config, overrides, data_dir=data_dir, device=device, ray_address=ray_address), db_url)


def resume_argv(run_id: int, *, data_dir: str | None, device: str | None) -> list[str]:
    """The command line of a child that continues run ``run_id`` from its checkpoint."""
    argv = adv_tui_argv(["resume", str(int(run_id)), "--headless", "--quiet"])
    if data_dir:
        argv += ["--data-dir", str(data_dir)]
    if device:
        argv += ["--device", device]
    return argv


def spawn_resume(run_id: int, *, db_url: str, data_dir: str | None = None, device: str | None = None) -> Launched:
    """Start ``adv-tui resume ID --headless`` as a detached process (the resume itself checks the run's
    state and checkpoint, and refuses in one line that lands in its launch log)."""
    return _spawn(resume_argv(run_id, data_dir=data_dir, device=device), db_url)


def spawn_detached(args: list[str], *, db_url: str) -> Launched:
    """Start ``adv-tui ARGS`` as a detached process (own session: it outlives the dashboard).
    Its output goes to a launch log that only the user can read (0600, in a 0700 directory)."""
    return _spawn(adv_tui_argv(args), db_url)


def _spawn(argv: list[str], db_url: str) -> Launched:
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
