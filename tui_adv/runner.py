"""Run a config end to end: data → model → training → FGSM sweep, every step written to the catalog.

The runner is the one path for every run: ``adv-tui run --headless`` calls it directly and the dashboard
spawns that command. It reports progress as plain dict events (no UI imports here): the CLI renders
them with rich, the dashboard reads the catalog. What it builds on: :mod:`tui_adv.lifecycle` (the run
row's life, heartbeats, batched writes), :mod:`tui_adv.checkpoints` (paths, atomic save, safe load, the
model of a config), :mod:`tui_adv.run_sweep` (the sweep phase). This module adds the training phase
and resuming a run from its checkpoint in the same row.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import torch

from .catalog.schema import as_utc, claims_text, damage_of, utcnow
from .catalog.store import Store, process_start_time
from .checkpoints import atomic_save, checkpoint_file, file_stat, load_checkpoint, model_for
from .choices import ACTIVE, RESUMABLE, RunStatus
from .config import RunConfig, config_from_json
from .core.data import load_dataset
from .core.train import Trainer
from .errors import UserError
from .lifecycle import CatalogWriter, Emit, RunRecorder, train_share
from .run_sweep import sweep_run



def resolve_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is visible here; use --device cpu or --device auto")
        return torch.device("cuda")
    if requested == "cpu":
        return torch.device("cpu")
    raise UserError(f"unknown device {requested!r}; use auto, cpu or cuda")


def check_training_env() -> None:
    """The environment variables a training reads (``ADV_TUI_CUDA_GRAPH``, ``ADV_TUI_CHECKPOINT_S``),
    checked by the commands that train before a run row exists: a bad value is one line, nothing stored."""
    from .core.step_graph import graph_mode
    from .core.train_state import checkpoint_interval

    graph_mode(torch.device("cpu"))
    checkpoint_interval(torch.device("cpu"))


class Runner:
    """Execute one run. ``stop_event`` (set by a signal handler or a test) cancels it cleanly."""

    def __init__(
        self,
        cfg: RunConfig,
        store: Store,
        *,
        data_dir: str | None = None,
        device: str | None = None,
        emit: Emit | None = None,
        stop_event: threading.Event | None = None,
        parent_id: int | None = None,
    ):
        self.cfg, self.store, self.data_dir = cfg, store, data_dir
        self.device_request = device or cfg.device
        self.emit = emit or (lambda e: None)
        self.stop_event = stop_event or threading.Event()
        self.parent_id = parent_id
        self.run_id: int | None = None
        self.resume_from: dict | None = None  # a checkpoint to continue from (see for_resume)
        self.resume_path: Path | None = None
        self.resume_stat: tuple[int, int] | None = None  # (mtime_ns, size) of that checkpoint when it was read
        self.restart: bool = False  # resume a run that stopped before its first checkpoint: from epoch 0
        self.claim_token: str | None = None  # this process's claim on the run row (every write checks it)
        self.working = False  # training or sweeping (a second Ctrl-C may interrupt it at once)

    # ------------------------------------------------------------------------------------------ api
    def create(self) -> int:
        """Insert the run row (status queued) and return its id."""
        cfg = self.cfg
        self.claim_token = uuid.uuid4().hex
        run = self.store.create_run(
            name=cfg.name,
            experiment=cfg.experiment,
            profile=cfg.profile,
            claims=claims_text(cfg.claims),
            config_json=cfg.to_json(),
            status=RunStatus.QUEUED,
            seed=cfg.seed,
            parent_id=self.parent_id,
            epochs=cfg.train.epochs,
            host=socket.gethostname(),
            pid=os.getpid(),
            pid_start=process_start_time(os.getpid()),
            claim_token=self.claim_token,
        )
        self.run_id = int(run.id)
        return self.run_id

    @classmethod
    def for_resume(
        cls,
        store: Store,
        run_id: int,
        *,
        data_dir: str | None = None,
        device: str | None = None,
        emit: Emit | None = None,
        stop_event: threading.Event | None = None,
    ) -> "Runner":
        """A runner that continues run ``run_id`` from its last checkpoint, in the same run row.

        Everything is checked before anything is written: a run that cannot be resumed (unknown id,
        still running, completed, no or a corrupt checkpoint) raises :class:`UserError` and leaves the
        catalog as it was."""
        store.refresh_liveness()
        run = store.get_run(run_id)
        if damage_of(run):
            raise UserError(f"run {run_id}'s catalog row is damaged ({'; '.join(damage_of(run))}); it cannot be resumed, start it again with `adv-tui run`")
        if run.status == RunStatus.COMPLETED:
            raise UserError(f"run {run_id} is already completed; nothing to resume")
        if run.status in ACTIVE:
            where = f"pid {run.pid} on {run.host}" if run.pid else "another process"
            raise UserError(f"run {run_id} is still {run.status} ({where}); stop it first or wait for it to finish")
        try:
            cfg = config_from_json(run.config_json)
        except (UserError, ValueError, TypeError) as e:  # ValueError: not JSON at all
            raise UserError(f"run {run_id}'s stored config cannot be used any more: {e}") from None
        if run.status not in RESUMABLE:
            raise UserError(f"run {run_id} is {run.status}; only interrupted, cancelled or failed runs can be resumed")
        # the row learns its checkpoint path just after the first checkpoint is written; a run killed in
        # between still has the file at the path checkpoint_file() gives
        path = Path(run.checkpoint_path) if run.checkpoint_path else checkpoint_file(store, run)
        if not path.is_file():
            if run.checkpoint_path:  # it had one: deleted or moved since
                raise UserError(f"run {run_id} ({run.status}) has no checkpoint at {path} any more; start it again with `adv-tui run`")
            # stopped before its first checkpoint: what the user means is "run it again, here"
            runner = cls(cfg, store, data_dir=data_dir, device=device, emit=emit, stop_event=stop_event)
            runner.run_id = int(run_id)
            runner.restart = True
            runner.resume_path = path
            return runner
        state = load_checkpoint(path)
        try:
            ts = state["train_state"]
            int(ts["epoch"]), int(ts["step"])
            state["model"], state["optimizer"], state["gen"], state["torch_rng"]
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"checkpoint {path} of run {run_id} is incomplete ({type(e).__name__}: {e}); start the run again") from None
        if int(ts["epoch"]) > cfg.train.epochs:
            raise UserError(f"checkpoint {path} is at epoch {ts['epoch']} but run {run_id} has {cfg.train.epochs} epochs; it belongs to another run")
        try:
            model_for(cfg).load_state_dict(state["model"])
        except (RuntimeError, ValueError, TypeError) as e:
            raise UserError(f"checkpoint {path} does not match run {run_id}'s model ({type(e).__name__}); start the run again") from None
        # the checkpoint's generator states belong to the device the run trained on (a CUDA generator
        # state does not fit a CPU generator), so a resume continues there unless told otherwise
        ran_on = (run.device or "").split(":")[0] or None
        if ran_on and int(ts["epoch"]) > 0:
            wanted = resolve_device(device).type if device else ran_on
            if wanted != ran_on:
                raise UserError(f"run {run_id} was trained on {ran_on}; resume it there (--device {ran_on}): its checkpoint's random-number state belongs to that device")
            device = ran_on
        runner = cls(cfg, store, data_dir=data_dir, device=device, emit=emit, stop_event=stop_event)
        runner.run_id = int(run_id)
        runner.resume_from = state
        runner.resume_path = path
        runner.resume_stat = file_stat(path)
        return runner

    def _rewind_catalog(self, run_id: int) -> None:
        """Drop what the run wrote after its checkpoint: epoch metrics after the checkpoint's epoch,
        batch losses after its global step, and the sweep (it is redone in full). A restart (no
        checkpoint) drops every metric. Every write checks the claim."""
        own = self.claim_token
        if self.resume_from is None:
            self.store.delete_metrics_after(run_id, -(2**62), owner=own)
            self.store.delete_sweeps(run_id, owner=own)
            return
        ts = self.resume_from["train_state"]
        epoch, step = int(ts["epoch"]), int(ts["step"])
        self.store.delete_metrics_after(run_id, step, keys=["batch_loss"], owner=own)
        self.store.delete_metrics_after(run_id, epoch, exclude_keys=["batch_loss"], owner=own)
        # the epoch metrics the checkpoint knows are rewritten (idempotent), in case the last flush was lost
        rows = [(k, int(h["epoch"]), float(v)) for h in ts.get("history") or [] for k, v in h.items() if k != "epoch"]
        self.store.add_metrics(run_id, rows, owner=own)
        self.store.delete_sweeps(run_id, owner=own)

    def _paused_s(self, run_id: int) -> float | None:
        """The run's stopped time so far plus the time since it stopped (its last heartbeat when it was
        interrupted, its end when cancelled or failed), so its duration counts only the time it ran. A
        restart from epoch 0 starts the clock again (None)."""
        if self.resume_from is None:
            return None
        row = self.store.get_run(run_id)
        if row is None:
            return None
        stopped = (row.heartbeat_at or row.finished_at) if row.status == RunStatus.INTERRUPTED else (row.finished_at or row.heartbeat_at)
        stopped = as_utc(stopped or row.updated_at)
        if stopped is None:
            return row.paused_s
        return float(row.paused_s or 0.0) + max(0.0, (utcnow() - stopped).total_seconds())

    def _claim_for_resume(self, run_id: int, device: torch.device) -> None:
        """Take the run row with one conditional UPDATE (interrupted/cancelled/failed → running, with
        this pid, host and a new claim token); a second resume, or one that comes after the run was
        completed meanwhile, gets one line and changes nothing. Then re-read the checkpoint if another
        process rewrote it between the checks and the claim."""
        token = uuid.uuid4().hex
        pid = os.getpid()
        ok = self.store.claim_run(
            run_id,
            token=token,
            from_statuses=RESUMABLE,
            paused_s=self._paused_s(run_id),
            pid=pid,
            pid_start=process_start_time(pid),
            host=socket.gethostname(),
            device=str(device),
            finished_at=None,
            error=None,
            traceback=None,
            summary_json=None,
        )
        if not ok:
            now = self.store.get_run(run_id)
            who = f" by pid {now.pid} on {now.host}" if now.status in ACTIVE and now.pid else ""
            raise UserError(f"run {run_id} was claimed{who} meanwhile (it is {now.status} now); this resume changed nothing")
        self.claim_token = token
        if self.resume_path is not None and self.resume_from is not None and file_stat(self.resume_path) != self.resume_stat:
            try:
                self.resume_from = load_checkpoint(self.resume_path)
                self.resume_stat = file_stat(self.resume_path)
            except UserError as e:
                self.store.update_run(run_id, owner=token, status=RunStatus.FAILED, finished_at=utcnow(), error=str(e))
                raise

    def execute(self) -> str:
        """Run to the end; returns the final status (completed / cancelled / failed)."""
        if self.run_id is None:
            self.create()
        run_id = self.run_id
        assert run_id is not None
        device = resolve_device(self.device_request)  # a UserError here leaves the row for the caller
        fields: dict[str, Any] = {}
        resuming = self.resume_from is not None or self.restart
        if resuming:
            self._claim_for_resume(run_id, device)
            self._rewind_catalog(run_id)
            who = f"by pid {os.getpid()} on {socket.gethostname()}"
            if self.resume_from is not None:
                ts = self.resume_from["train_state"]
                fields = dict(epoch=int(ts["epoch"]), batch=0)
                self.store.log(run_id, f"resumed from the checkpoint of epoch {ts['epoch']} (step {ts['step']}) {who}", owner=self.claim_token)
            else:
                fields = dict(epoch=0, batch=0, batches=0, progress=0.0, phase=None, clean_error=None, fgsm_error=None, checkpoint_path=None, started_at=utcnow())
                self.store.log(
                    run_id,
                    f"resumed {who}: the run stopped before its first checkpoint, so it restarts from epoch 0 in the same row (same id, same config)",
                    owner=self.claim_token,
                )
        else:
            fields["started_at"] = utcnow()
        recorder = RunRecorder(self.store, run_id, owner=self.claim_token, stop_event=self.stop_event, emit=self.emit)
        recorder.start(device=str(device), **fields)

        def work(writer: CatalogWriter) -> dict:
            # whatever goes wrong from here on (even in a progress renderer) ends the run with a status
            # instead of leaving the row "running"
            try:
                self.emit({"type": "run_start", "run_id": run_id, "name": self.cfg.name, "device": str(device)})
                self.working = True
                return self._execute(run_id, device, writer)
            finally:
                self.working = False  # from here on the run's end is recorded: a second Ctrl-C must not cut it

        return recorder.run(work)

    # ------------------------------------------------------------------------------------------ work
    def _execute(self, run_id: int, device: torch.device, writer: CatalogWriter) -> dict:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        self.emit({"type": "phase", "phase": "data"})
        data = load_dataset(
            cfg.data.dataset,
            self.data_dir,
            device,
            pair=tuple(cfg.data.pair) if cfg.data.pair else None,
            validation=cfg.data.validation,
            train_limit=cfg.data.train_limit,
            test_limit=cfg.data.test_limit,
        )
        writer.log(f"data: {cfg.data.dataset}, {len(data.train)} train, {len(data.valid) if data.valid else 0} valid, {len(data.test)} test on {device}")
        model = model_for(cfg).to(device)
        epochs = cfg.train.epochs
        share = train_share(cfg.sweep.enabled, epochs)
        batches_per_epoch = max(1, -(-len(data.train) // cfg.train.batch_size))
        ckpt_path = self.resume_path or checkpoint_file(self.store, self.store.get_run(run_id))

        def on_train_event(e: dict) -> None:
            self.emit(e)
            if e["type"] == "batch":
                writer.metrics([("batch_loss", e["step"], e["loss"])])
                done = (e["epoch"] - 1 + e["batch"] / e["batches"]) / max(epochs, 1)
                writer.progress(phase="train", epoch=e["epoch"] - 1, batch=e["batch"], batches=e["batches"], progress=share * done)
            elif e["type"] == "epoch_end":
                writer.metrics([(k, e["epoch"], v) for k, v in e["metrics"].items()])
                writer.progress(phase="train", epoch=e["epoch"], batch=0, progress=share * e["epoch"] / max(epochs, 1))
                writer.log(f"epoch {e['epoch']}/{e['epochs']}: " + ", ".join(f"{k}={v:.4g}" for k, v in e["metrics"].items()))
            elif e["type"] == "log":
                writer.log(e["message"])

        def save_checkpoint(trainer: Trainer) -> None:
            writer.sync()  # every row up to this checkpoint is in the catalog before the checkpoint exists
            if self.claim_token:  # never overwrite the checkpoint of a process that took the run over
                self.store.check_owner(run_id, self.claim_token)
            atomic_save(trainer.state_dict(), ckpt_path)
            self.store.checkpoint_wal()  # the rows this checkpoint covers are in the database file too
            writer.progress(checkpoint_path=str(ckpt_path))
            self.emit({"type": "checkpoint", "epoch": trainer.state.epoch, "path": str(ckpt_path)})

        trainer = Trainer(
            model,
            data,
            cfg.train,
            seed=cfg.seed,
            emit=on_train_event,
            should_stop=self.stop_event.is_set,
            checkpoint=save_checkpoint,
            batch_every=max(1, batches_per_epoch // 50),
        )
        resumed_final = False
        if self.resume_from is not None:
            try:
                trainer.load_state_dict(self.resume_from)
            except (KeyError, RuntimeError, ValueError, TypeError) as e:
                raise UserError(f"checkpoint {self.resume_path} does not match run {run_id}'s model ({type(e).__name__}: {e})") from None
            resumed_final = bool(self.resume_from.get("final"))
            writer.log(f"continuing at epoch {trainer.state.epoch + 1}/{epochs}" if not resumed_final else "training had finished; redoing the sweep")
        self.emit({"type": "phase", "phase": "train", "epochs": epochs, "batches": batches_per_epoch})
        train_summary = trainer.run() if epochs and not resumed_final else {}
        if resumed_final:
            train_summary = {"epochs_run": float(trainer.state.epoch)}
            if cfg.train.early_stopping:
                train_summary["best_epoch"] = float(trainer.state.best_epoch)
        # the final weights (after early stopping restored the best) are what load_model returns
        final = trainer.state_dict()
        final["final"] = True
        writer.sync()
        if self.claim_token:
            self.store.check_owner(run_id, self.claim_token)
        atomic_save(final, ckpt_path)
        writer.progress(checkpoint_path=str(ckpt_path), epoch=trainer.state.epoch)

        summary: dict[str, Any] = {**train_summary}
        if trainer.state.history:
            summary.update({k: v for k, v in trainer.state.history[-1].items() if k != "epoch"})
        if cfg.sweep.enabled:
            store, run_id, owner = self.store, self.run_id, self.claim_token
            summary.update(sweep_run(self.cfg, model, data, writer, share, emit=self.emit, should_stop=self.stop_event.is_set,
                                     save_samples=lambda rows: store.add_samples(run_id, rows, owner=owner)))
        return summary
