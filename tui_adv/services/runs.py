"""A run as the front ends show it: the run document, the list rows, and resuming it in the background.
(Cancelling: :mod:`.cancel`.)"""

from __future__ import annotations

from typing import Any

from ..catalog.schema import Run, damage_of
from ..catalog.store import Store
from .launch import Launched, spawn_resume


def run_document(store: Store, run: Run) -> dict[str, Any]:
    """Everything about one run (``run --json``, ``runs show --json``, the JSON export): the row, its
    config, its final metrics (the latest of each series, then the summary), and its sweeps."""
    metrics = {**store.latest_metrics(run.id), **run.summary()}
    metrics.pop("batch_loss", None)
    doc = {
        "run_id": run.id,
        "name": run.name,
        "status": run.status,
        "experiment": run.experiment,
        "profile": run.profile,
        "claims": run.claim_ids(),
        "device": run.device,
        "seed": run.seed,
        "parent_id": run.parent_id,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_s": run.active_seconds(),  # start to finish less paused_s
        "paused_s": run.paused_s,  # the time it sat stopped before a resume
        "error": run.error,
        "checkpoint_path": run.checkpoint_path,
        "config": run.config(),
        "metrics": metrics,
        "sweeps": store.sweeps(run.id),
    }
    if damage_of(run):
        doc["damaged"] = damage_of(run)
    return doc


def resumable(run: Run | None) -> bool:
    """The run can be continued (``adv-tui resume ID``, the dashboard's ``r``): it stopped (interrupted,
    cancelled, failed) and its checkpoint file is there."""
    from pathlib import Path

    from ..choices import RESUMABLE

    return bool(run is not None and run.status in RESUMABLE and run.checkpoint_path and Path(run.checkpoint_path).is_file())


def next_step(run: Run) -> str | None:
    """What a user can do with a stopped run, as a command line (None for a finished or active one)."""
    from ..choices import RESUMABLE

    if run.status not in RESUMABLE:
        return None
    if resumable(run):
        return f"continue it from its last checkpoint: adv-tui resume {run.id}"
    if run.checkpoint_path:
        return f"its checkpoint {run.checkpoint_path} is gone, so it cannot be resumed; start it again with `adv-tui run`"
    return f"it stopped before its first checkpoint: `adv-tui resume {run.id}` restarts it from epoch 0 in the same row"


def list_row(run: Run) -> dict[str, Any]:
    """One run of ``runs list --json``: the row's headline fields, no joins."""
    from ..config import dataset_of

    return {
        "run_id": run.id,
        "name": run.name,
        "experiment": run.experiment,
        "dataset": dataset_of(run.config_json),
        "status": run.status,
        "progress": run.progress,
        "epoch": run.epoch,  # epochs finished, of "epochs"; "batch" of "batches": the epoch under way
        "epochs": run.epochs,
        "batch": run.batch,
        "batches": run.batches,
        "clean_error": run.clean_error,
        "fgsm_error": run.fgsm_error,
        "device": run.device,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_s": run.active_seconds(),
        "parent_id": run.parent_id,
        **({"damaged": damage_of(run)} if damage_of(run) else {}),
    }


def resume_detached(store: Store, run_id: int, *, data_dir: str | None = None, device: str | None = None) -> Launched:
    """Continue run ``run_id`` as a detached ``adv-tui resume --headless`` on this store's catalog."""
    return spawn_resume(run_id, db_url=store.url, data_dir=data_dir, device=device)
