"""Run a config end to end: data → model → training → FGSM sweep, every step written to the catalog.

The runner is the one path for every run: ``adv-tui run --headless`` calls it directly and the dashboard
spawns that command. It reports progress as plain dict events (no UI imports here): the CLI renders
them with rich, the dashboard reads the catalog.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import socket
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable

import torch

from .catalog.schema import RESUMABLE, Sample, damage_of, utcnow
from .catalog.store import ClaimLost, Store, _sqlite_path, combine_draws, pid_alive, process_start_time
from .config import RunConfig, config_from_json
from .core.attacks import mask_generator
from .core.data import load_mnist
from .core.models import build_model
from .core.sweep import SampleView, SweepPoint, fgsm_sweep
from .core.train import Cancelled, Diverged, Trainer
from .errors import NotFoundError, UserError
from .safe import expand_user

Emit = Callable[[dict[str, Any]], None]
ENV_CHECKPOINTS = "ADV_TUI_CHECKPOINTS"
HEARTBEAT_S = 5.0
FLUSH_S = 0.5
REFERENCE_EPS = 0.25


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


def checkpoint_dir(store: Store) -> Path:
    """Absolute (a relative ``$ADV_TUI_CHECKPOINTS`` is taken from the current directory), so the path
    stored on the run row still works from any other directory (``load_model``, ``resume``)."""
    env = os.environ.get(ENV_CHECKPOINTS)
    if env:
        return expand_user(env).absolute()
    db = _sqlite_path(store.url)
    if db is not None:
        return db.resolve().parent / "checkpoints"
    from .core.data import cache_dir

    return cache_dir() / "checkpoints"


def checkpoint_file(store: Store, run: Any) -> Path:
    """``checkpoints/run-ID-CREATED.pt``: the run's creation time in the name keeps apart the runs of
    different catalogs that share a checkpoint directory (two ``runs.db`` side by side, or one
    ``$ADV_TUI_CHECKPOINTS`` for many catalogs), which would otherwise overwrite each other's run 1."""
    stamp = run.created_at.strftime("%Y%m%dT%H%M%S%f") if run.created_at else "0"
    return checkpoint_dir(store) / f"run-{run.id}-{stamp}.pt"


def versions() -> dict[str, str]:
    from . import __version__

    return {"adv_tui": __version__, "torch": torch.__version__, "python": platform.python_version()}


def sample_row(v: SampleView) -> Sample:
    def u8(t: torch.Tensor) -> bytes:
        return (t.clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes()

    return Sample(
        run_id=0,
        idx=v.index,
        epsilon=v.epsilon,
        label=v.label,
        clean=u8(v.clean),
        sign=(v.sign.sign() + 1).to(torch.uint8).numpy().tobytes(),
        adversarial=u8(v.adversarial),
        clean_pred=v.clean_pred,
        clean_conf=v.clean_conf,
        adv_pred=v.adv_pred,
        adv_conf=v.adv_conf,
    )


def reference_point(points: list[dict], eps: float = REFERENCE_EPS) -> dict | None:
    """The sweep point at ε = .25, else the largest swept ε below it."""
    below = [p for p in points if p["epsilon"] <= eps + 1e-9 and p["epsilon"] > 0]
    return max(below, key=lambda p: p["epsilon"]) if below else None


class CatalogWriter:
    """Writes metrics, sweep points and progress from a background thread, so training never waits on
    the database. Batches whatever arrived in the last ``FLUSH_S`` seconds into one transaction."""

    def __init__(self, store: Store, run_id: int, owner: str | None = None, on_error: Callable[[BaseException], None] | None = None):
        self.store, self.run_id, self.owner = store, run_id, owner
        self.on_error = on_error
        self.q: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self._progress: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # the writer thread and sync() never flush at the same time
        self._stop = threading.Event()
        self._last_hb = 0.0
        self.thread = threading.Thread(target=self._loop, name=f"catalog-writer-{run_id}", daemon=True)
        self.thread.start()

    def metrics(self, rows: list[tuple[str, int, float]]) -> None:
        self.q.put(("metrics", rows))

    def sweep_point(self, attack: str, labels: str, point: dict, **reading: Any) -> None:
        """``reading``: gradient, clip, cost, mask (the sweep_points key beyond attack and labels)."""
        self.q.put(("sweep", (attack, labels, point, tuple(sorted(reading.items())))))

    def log(self, message: str, level: str = "info") -> None:
        self.q.put(("log", (message, level)))

    def progress(self, **fields: Any) -> None:
        with self._lock:
            self._progress = {**(self._progress or {}), **fields}

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(FLUSH_S)
            self._flush()

    def sync(self) -> None:
        """Write everything queued so far, now, from the calling thread. The runner calls this before it
        writes a checkpoint, so every metric row up to a checkpoint is in the catalog when the checkpoint
        exists (a resume then only has to delete the rows after it)."""
        self._flush()
        if self.error is not None:
            raise self.error

    def _flush(self) -> None:
        with self._flush_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        try:
            items = []
            while True:
                try:
                    items.append(self.q.get_nowait())
                except queue.Empty:
                    break
            if self.error is not None:  # after a failed write (e.g. the claim was lost) nothing more is written
                return
            metrics = [r for kind, rows in items if kind == "metrics" for r in rows]
            own = self.owner
            if metrics:
                self.store.add_metrics(self.run_id, metrics, owner=own)
            sweeps: dict[tuple, list[dict]] = {}
            for kind, payload in items:
                if kind == "sweep":
                    attack, labels, point, reading = payload
                    sweeps.setdefault((attack, labels, reading), []).append(point)
                elif kind == "log":
                    self.store.log(self.run_id, *payload, owner=own)
            for (attack, labels, reading), pts in sweeps.items():
                self.store.add_sweep_points(self.run_id, attack, labels, pts, **dict(reading), owner=own)
            with self._lock:
                progress, self._progress = self._progress, None
            now = time.monotonic()
            if progress or now - self._last_hb >= HEARTBEAT_S:
                self.store.update_run(self.run_id, owner=own, heartbeat_at=utcnow(), **(progress or {}))
                self._last_hb = now
        except BaseException as e:  # noqa: BLE001 - reported by close()
            self.error = e
            self._stop.set()
            if self.on_error is not None:
                self.on_error(e)

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self._flush()
        if self.error is not None:
            raise self.error


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
            claims=",".join(cfg.claims),
            config_json=cfg.to_json(),
            status="queued",
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
        if run.status == "completed":
            raise UserError(f"run {run_id} is already completed; nothing to resume")
        if run.status in ("queued", "running"):
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
            probe = build_model(cfg.model.kind, num_classes=2 if cfg.data.pair else 10, **cfg.model.params())
            probe.load_state_dict(state["model"])
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
        runner.resume_stat = _stat(path)
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
            who = f" by pid {now.pid} on {now.host}" if now.status in ("queued", "running") and now.pid else ""
            raise UserError(f"run {run_id} was claimed{who} meanwhile (it is {now.status} now); this resume changed nothing")
        self.claim_token = token
        if self.resume_path is not None and self.resume_from is not None and _stat(self.resume_path) != self.resume_stat:
            try:
                self.resume_from = load_checkpoint(self.resume_path)
                self.resume_stat = _stat(self.resume_path)
            except UserError as e:
                self.store.update_run(run_id, owner=token, status="failed", finished_at=utcnow(), error=str(e))
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
                fields = dict(epoch=int(ts["epoch"]))
                self.store.log(run_id, f"resumed from the checkpoint of epoch {ts['epoch']} (step {ts['step']}) {who}", owner=self.claim_token)
            else:
                fields = dict(epoch=0, progress=0.0, phase=None, clean_error=None, fgsm_error=None, checkpoint_path=None, started_at=utcnow())
                self.store.log(
                    run_id,
                    f"resumed {who}: the run stopped before its first checkpoint, so it restarts from epoch 0 in the same row (same id, same config)",
                    owner=self.claim_token,
                )
        else:
            fields["started_at"] = utcnow()
        self.store.update_run(
            run_id,
            owner=self.claim_token,
            status="running",
            heartbeat_at=utcnow(),
            pid=os.getpid(),
            pid_start=process_start_time(os.getpid()),
            host=socket.gethostname(),
            device=str(device),
            versions_json=json.dumps(versions()),
            **fields,
        )
        stop = self.stop_event
        writer = CatalogWriter(self.store, run_id, owner=self.claim_token, on_error=lambda e: stop.set())
        status, error, tb = "completed", None, None
        lost: ClaimLost | None = None
        try:
            # inside the try: whatever goes wrong from here on (even in a progress renderer) ends the
            # run with a status instead of leaving the row "running"
            self.emit({"type": "run_start", "run_id": run_id, "name": self.cfg.name, "device": str(device)})
            self.working = True
            summary = self._execute(run_id, device, writer)
        except Cancelled:
            status, error = "cancelled", "cancelled by the user"
        except KeyboardInterrupt:
            status, error = "cancelled", "cancelled by the user (Ctrl-C)"
        except Diverged as e:
            status, error = "failed", f"diverged: {e}"
        except UserError as e:
            status, error = "failed", str(e)
        except Exception as e:  # noqa: BLE001 - any crash is recorded on the run, then re-raised by the CLI
            status, error, tb = "failed", f"{type(e).__name__}: {e}", traceback.format_exc()[-4000:]
        finally:
            self.working = False  # from here on the run's end is recorded: a second Ctrl-C must not cut it
            try:
                writer.close()
            except ClaimLost as e:
                lost = e
            except Exception as e:  # noqa: BLE001
                status, error = "failed", f"catalog write failed: {e}"
        if lost is None and isinstance(writer.error, ClaimLost):
            lost = writer.error
        if lost is None:
            try:  # how hard the catalog was to write to (read by scripts/stress.py); never fails the run
                self.store.set_artifact(
                    run_id,
                    "catalog_stats",
                    {"lock_retries": self.store.lock_retries, "slowest_write_s": round(self.store.slowest_write_s, 4), "pid": os.getpid()},
                    owner=self.claim_token,
                )
            except ClaimLost as e:
                lost = e
            except Exception:  # noqa: BLE001
                pass
        if lost is None:
            fields = {"status": status, "finished_at": utcnow(), "error": error, "traceback": tb, "phase": None}
            if status == "completed":
                fields.update(progress=1.0, summary_json=json.dumps(summary))
            try:
                self.store.update_run(run_id, owner=self.claim_token, **fields)
            except ClaimLost as e:
                lost = e
        if lost is not None:  # the row is someone else's now: report, never touch it
            self.emit({"type": "run_end", "run_id": run_id, "status": "lost", "error": str(lost)})
            raise lost
        self.store.checkpoint_wal("TRUNCATE")  # the whole run into the database file, the log emptied
        self.emit({"type": "run_end", "run_id": run_id, "status": status, "error": error})
        return status

    # ------------------------------------------------------------------------------------------ work
    def _execute(self, run_id: int, device: torch.device, writer: CatalogWriter) -> dict:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        self.emit({"type": "phase", "phase": "data"})
        data = load_mnist(
            self.data_dir,
            device,
            pair=tuple(cfg.data.pair) if cfg.data.pair else None,
            validation=cfg.data.validation,
            train_limit=cfg.data.train_limit,
            test_limit=cfg.data.test_limit,
        )
        writer.log(f"data: {len(data.train)} train, {len(data.valid) if data.valid else 0} valid, {len(data.test)} test on {device}")
        model = build_model(cfg.model.kind, num_classes=len(data.classes), **cfg.model.params()).to(device)
        epochs = cfg.train.epochs
        train_share = 0.9 if cfg.sweep.enabled and epochs else (1.0 if epochs else 0.0)
        batches_per_epoch = max(1, -(-len(data.train) // cfg.train.batch_size))
        ckpt_path = self.resume_path or checkpoint_file(self.store, self.store.get_run(run_id))

        def on_train_event(e: dict) -> None:
            self.emit(e)
            if e["type"] == "batch":
                writer.metrics([("batch_loss", e["step"], e["loss"])])
                done = (e["epoch"] - 1 + e["batch"] / e["batches"]) / max(epochs, 1)
                writer.progress(phase="train", epoch=e["epoch"] - 1, progress=train_share * done)
            elif e["type"] == "epoch_end":
                writer.metrics([(k, e["epoch"], v) for k, v in e["metrics"].items()])
                writer.progress(phase="train", epoch=e["epoch"], progress=train_share * e["epoch"] / max(epochs, 1))
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
            summary.update(self._sweep(model, data, writer, train_share))
        return summary

    def _sweep(self, model: torch.nn.Module, data, writer: CatalogWriter, train_share: float) -> dict:
        """Every reading of the config's sweep (its own, its variants, the protocol matrix), one input
        gradient per reading and mask draw. The first reading is the run's headline (summary, samples)."""
        cfg = self.cfg.sweep
        eps = sorted(set(float(e) for e in cfg.epsilons))
        readings = self.cfg.readings()
        total = sum(len(eps) * r.masks for r in readings)
        self.emit({"type": "phase", "phase": "sweep", "points": total, "readings": len(readings)})
        writer.progress(phase="sweep")
        done = 0
        headline: list[dict] = []
        by_reading: dict[str, list[list[dict]]] = {}
        for ri, r in enumerate(readings):
            for draw in range(r.masks):
                points: list[dict] = []
                mask = draw if r.gradient == "dropout" else 0

                def on_point(p: SweepPoint, r=r, points=points, mask=mask) -> None:
                    nonlocal done
                    d = p.as_dict()
                    points.append(d)
                    done += 1
                    writer.sweep_point("fgsm", r.labels, d, gradient=r.gradient, clip=r.clip, cost=r.cost, mask=mask)
                    writer.progress(progress=train_share + (1 - train_share) * done / total)
                    self.emit({"type": "sweep_point", "attack": "fgsm", "labels": r.labels, "reading": r.name, "mask": mask,
                               "index": done, "points": total, **d})

                first = ri == 0 and draw == 0
                result = fgsm_sweep(
                    model,
                    data.test.x,
                    data.test.y,
                    eps,
                    labels=r.labels,
                    batch_size=cfg.batch_size,
                    on_point=on_point,
                    sample_indices=range(min(cfg.samples, len(data.test))) if first else (),
                    sample_epsilons=cfg.sample_epsilons if first else (),
                    should_stop=self.stop_event.is_set,
                    gradient=r.gradient,
                    clip=r.clip,
                    cost=r.cost,
                    generator=mask_generator(self.cfg.seed, draw, data.test.x.device) if r.gradient == "dropout" else None,
                )
                if self.stop_event.is_set():
                    raise Cancelled()
                if result.samples:
                    self.store.add_samples(self.run_id, [sample_row(s) for s in result.samples], owner=self.claim_token)
                by_reading.setdefault(r.name, []).append(points)
                if ri == 0:
                    headline.append(points)
        points = combine_draws(headline)
        out: dict[str, Any] = {}
        clean = next((p for p in points if p["epsilon"] == 0), None)
        ref = reference_point(points)
        if clean:
            out.update(clean_error=clean["error"], clean_mean_confidence=clean["mean_confidence"])
        if ref:
            out.update(
                fgsm_epsilon=ref["epsilon"],
                fgsm_error=ref["error"],
                fgsm_mean_confidence=ref["mean_confidence"],
                fgsm_mean_confidence_wrong=ref["mean_confidence_wrong"],
            )
            if len(readings) > 1:  # each reading's value at the reference ε
                out["readings"] = {}
                for name, draws in by_reading.items():
                    rp = reference_point(combine_draws(draws))
                    if rp:
                        out["readings"][name] = {k: rp.get(k) for k in ("error", "mean_confidence_wrong", "error_spread") if k in rp}
        out["reading"] = readings[0].name
        writer.progress(clean_error=out.get("clean_error"), fgsm_error=out.get("fgsm_error"))
        return out


STALE_TEMP_S = 3600.0  # another checkpoint's temp file of a dead pid is removed after this long


def _stat(path: Path) -> tuple[int, int] | None:
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


def load_model(run_id: int, db: str | None = None, *, device: str = "cpu") -> torch.nn.Module:
    """The trained ``nn.Module`` of a run (eval mode; [0,1] images in, logits out)."""
    store = Store(db)
    try:
        run = store.get_run(run_id)
        if not run.checkpoint_path:
            raise NotFoundError(f"run {run_id} has no checkpoint (status {run.status})")
        cfg = config_from_json(run.config_json)
        num_classes = 2 if cfg.data.pair else 10
        model = build_model(cfg.model.kind, num_classes=num_classes, **cfg.model.params())
        state = load_checkpoint(run.checkpoint_path)
        try:
            model.load_state_dict(state["model"])
        except (KeyError, RuntimeError) as e:
            raise UserError(f"checkpoint {run.checkpoint_path} does not match run {run_id}'s model ({type(e).__name__})") from None
        return model.to(device).eval()
    finally:
        store.close()
