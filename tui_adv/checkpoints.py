"""Checkpoints: where they live, how they are written (atomically) and read (safely), and the one way
a run's model is built from its config (training, resume checks and ``load_model`` all use it).

A checkpoint is a dict of state dicts and plain values saved with ``torch.save`` and read back with
``weights_only=True`` (no pickled code runs on load).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from .catalog.store import Store, _sqlite_path, pid_alive
from .config import RunConfig, config_from_json
from .core.models import build_model
from .errors import NotFoundError, UserError
from .safe import expand_user

ENV_CHECKPOINTS = "ADV_TUI_CHECKPOINTS"
STALE_TEMP_S = 3600.0  # another checkpoint's temp file of a dead pid is removed after this long


def checkpoint_dir(store: Store) -> Path:
    """Absolute (a relative ``$ADV_TUI_CHECKPOINTS`` is taken from the current directory), so the path
    stored on the run row still works from any other directory (``load_model``, ``resume``)."""
    env = os.environ.get(ENV_CHECKPOINTS)
    if env:
        return expand_user(env).absolute()
    db = _sqlite_path(store.url)
    if db is not None:
        return db.resolve().parent / "checkpoints"
    from .core.datasets import cache_dir

    return cache_dir() / "checkpoints"


def checkpoint_file(store: Store, run: Any) -> Path:
    """``checkpoints/run-ID-CREATED.pt``: the run's creation time in the name keeps apart the runs of
    different catalogs that share a checkpoint directory (two ``runs.db`` side by side, or one
    ``$ADV_TUI_CHECKPOINTS`` for many catalogs), which would otherwise overwrite each other's run 1."""
    stamp = run.created_at.strftime("%Y%m%dT%H%M%S%f") if run.created_at else "0"
    return checkpoint_dir(store) / f"run-{run.id}-{stamp}.pt"


def file_stat(path: Path) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, to notice that another process rewrote it; None when it is gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def clean_stale_temps(path: Path) -> list[Path]:
    """Remove ``.run-….pt.PID.tmp`` files that a process killed during a checkpoint write left behind.

    Temp files of ``path`` itself go as soon as their pid is dead (the caller owns the run, so nobody
    else writes that checkpoint); temp files of other checkpoints in the directory also need to be an
    hour old, since the directory may be shared with other machines whose pids mean nothing here."""
    removed = []
    try:
        candidates = list(path.parent.glob(".*.pt.*.tmp"))
    except OSError:
        return removed
    now = time.time()
    for tmp in candidates:
        name = tmp.name
        stem, _, rest = name[1:].rpartition(".pt.")
        pid_text = rest[: -len(".tmp")] if rest.endswith(".tmp") else ""
        if not stem or not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
            continue
        try:
            if f"{stem}.pt" != path.name and now - tmp.stat().st_mtime < STALE_TEMP_S:
                continue
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same directory, fsync, then rename over the target (and first
    clean the temp files that killed writers left, see :func:`clean_stale_temps`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the previous checkpoint stays as it was
        raise


def load_checkpoint(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint {p} is missing")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated/corrupt files raise many kinds of errors
        raise UserError(f"checkpoint {p} is corrupt or unreadable ({type(e).__name__}); rerun the run to recreate it") from None


def model_for(cfg: RunConfig) -> torch.nn.Module:
    """The (untrained) model a config describes: a binary head for ``data.pair``, else ten classes."""
    return build_model(cfg.model.kind, num_classes=2 if cfg.data.pair else 10, **cfg.model.params())


def load_model(run_id: int, db: str | None = None, *, device: str = "cpu") -> torch.nn.Module:
    """The trained ``nn.Module`` of a run (eval mode; [0,1] images in, logits out)."""
    store = Store(db)
    try:
        run = store.get_run(run_id)
        if not run.checkpoint_path:
            raise NotFoundError(f"run {run_id} has no checkpoint (status {run.status})")
        cfg = config_from_json(run.config_json)
        model = model_for(cfg)
        state = load_checkpoint(run.checkpoint_path)
        try:
            model.load_state_dict(state["model"])
        except (KeyError, RuntimeError) as e:
            raise UserError(f"checkpoint {run.checkpoint_path} does not match run {run_id}'s model ({type(e).__name__})") from None
        return model.to(device).eval()
    finally:
        store.close()
