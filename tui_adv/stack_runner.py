"""Several runs of one config that differ only by seed, trained together as one stacked model.

:func:`run_stack` is :class:`~tui_adv.runner.Runner` for K runs at once (``reproduce --stack``): each
run is its own catalog row with its own claim token, heartbeat, batched writes, progress, epoch metrics,
final checkpoint (in the format of a solo run's, so ``load_model``, the claims and ``resume`` read it
as they read any run's) and sweep; the training itself is one
:class:`~tui_adv.core.stacked.StackedTrainer` over all K (:mod:`tui_adv.core.stacked` says why each
member computes its solo run). The K rows share one fate while they train: a failure, a cancel (of the
suite, or a cancel request on any member's row) or a Ctrl-C ends all of them with the same status (each
through its own :class:`~tui_adv.lifecycle.RunRecorder`), the others' error naming the member that
stopped them; a member whose row another process took over is left to that process. After the training
each member ends on its own: every member's checkpoint is written first, then each sweeps, and a failed
sweep fails that member only. While it trains, the stack writes each member's checkpoint as a solo run
writes its own (every ``train.checkpoint_every`` epochs, or as ``$ADV_TUI_CHECKPOINT_S`` says: about every
30 s on a GPU), in the solo format: an interrupted member is resumed (``adv-tui resume``, a later
``reproduce``) alone, in its row, from its last checkpoint, and goes on as its solo run would have.
"""

from __future__ import annotations

import threading

import torch

from .catalog.store import ClaimLost, Store
from .checkpoints import atomic_save, checkpoint_file, model_for
from .choices import RunStatus
from .config import RunConfig
from .core.data import load_dataset
from .core.stacked import StackedTrainer, build_stack, stack_refusal
from .core.train_state import Cancelled
from .errors import UserError
from .lifecycle import CatalogWriter, Emit, RunRecorder, train_share
from .run_sweep import sweep_run
from .runner import Runner, resolve_device


def stack_key(cfg: RunConfig) -> str | None:
    """What runs must share to be trained as one stack (their config without seed and labels), or None
    for a config that cannot be stacked (not a softmax maxout, or a refused training mode)."""
    from .config.identity import identity

    if cfg.model.kind != "maxout" or (cfg.model.params().get("output") or "softmax") != "softmax" or cfg.data.pair:
        return None
    if stack_refusal(cfg.train) is not None:
        return None
    return identity(cfg.model_copy(update={"seed": 0}).to_json())


def run_stack(cfgs: list[RunConfig], store: Store, *, data_dir: str | None = None, device: str = "auto", emit: Emit | None = None,
              stop_event: threading.Event | None = None, parent_ids: list[int | None] | None = None) -> list[tuple[int, str]]:
    """Create a run per config and train them as one stack; returns ``(run id, final status)`` per config."""
    if len({stack_key(c) for c in cfgs}) != 1 or stack_key(cfgs[0]) is None:
        raise UserError("these configs cannot be trained as one stack (they must differ only by seed, and be stackable)")
    emit = emit or (lambda e: None)
    stop_event = stop_event or threading.Event()
    # the members' own stop: a member's cancel request or failed catalog write stops the stack, not the
    # caller's suite (whose stop event may be a whole worker pool's)
    stack_stop = threading.Event()
    dev = resolve_device(device)
    runners = [Runner(c, store, data_dir=data_dir, device=device, emit=emit, stop_event=stop_event,
                      parent_id=(parent_ids or [None] * len(cfgs))[i]) for i, c in enumerate(cfgs)]
    ids = [r.create() for r in runners]
    recorders = [RunRecorder(store, rid, owner=r.claim_token, stop_event=stack_stop, emit=emit) for rid, r in zip(ids, runners)]
    _start(recorders, store, dev)
    results: list[dict | BaseException] = []
    failure: list[BaseException] = []

    def level(i: int, writers: list[CatalogWriter]):  # noqa: ANN202
        """The work of recorder i: the next recorder's run around the stack's training; the innermost
        trains. A failure of the training is re-raised at every level, so every row records it; after
        the training each member's end is its own (``results[i]``: its summary, or what failed)."""

        def work(writer: CatalogWriter) -> dict:
            ws = [*writers, writer]
            if i == len(recorders) - 1:
                try:
                    emit({"type": "run_start", "run_id": ids[0], "name": f"stack of {len(ids)}: " + ", ".join(c.name for c in cfgs), "device": str(dev)})
                    results.extend(_train(cfgs, runners, store, ws, data_dir, dev, emit, stop_event, stack_stop))
                except BaseException as e:
                    failure.append(e)
                    raise
            else:
                try:
                    recorders[i + 1].run(level(i + 1, ws))
                except ClaimLost:
                    pass  # that member's row is another process's now (its recorder said so); this one goes on
                if failure:
                    raise failure[0]
            mine = results[i]
            if isinstance(mine, BaseException):
                raise mine
            return mine

        return work

    try:
        recorders[0].run(level(0, []))
    except ClaimLost:
        pass
    out = []
    for rid in ids:
        row = store.get_run(rid)
        out.append((rid, str(row.status) if row is not None else RunStatus.FAILED.value))
    return out


def _start(recorders: list[RunRecorder], store: Store, device: torch.device) -> None:
    """Every member's row ``running``; when one cannot start, none is left running: the started ones'
    writers are closed and every row of the stack is marked failed with the cause."""
    from .catalog.schema import utcnow

    started: list[RunRecorder] = []
    try:
        for rec in recorders:
            rec.start(device=str(device), started_at=utcnow())
            started.append(rec)
    except Exception as e:
        for rec in started:
            try:
                rec.writer.close()
            except Exception:  # noqa: BLE001 - the row is marked below either way
                pass
        for rec in recorders:
            try:
                store.update_run(rec.run_id, owner=rec.owner, status=RunStatus.FAILED, finished_at=utcnow(), error=f"its stack could not start: {e}")
            except Exception:  # noqa: BLE001 - a row that cannot be written is left to the liveness sweep
                pass
        raise


def _train(cfgs: list[RunConfig], runners: list[Runner], store: Store, writers: list[CatalogWriter], data_dir: str | None,
           device: torch.device, emit: Emit, stop_event: threading.Event, stack_stop: threading.Event) -> list[dict | BaseException]:
    """Train the stack (a failure here is every member's), then each member's checkpoint (all of them
    first, so a member's failed sweep loses no other member's weights) and sweep: one result per member,
    its summary or the exception that ended it."""
    cfg = cfgs[0]
    emit({"type": "phase", "phase": "data"})
    data = load_dataset(cfg.data.dataset, data_dir, device, pair=None, validation=cfg.data.validation,
                        train_limit=cfg.data.train_limit, test_limit=cfg.data.test_limit)
    seeds = [c.seed for c in cfgs]
    stack = build_stack(lambda: model_for(cfg), seeds, device)
    epochs = cfg.train.epochs
    share = train_share(cfg.sweep.enabled, epochs)
    batches = max(1, -(-len(data.train) // cfg.train.batch_size))
    for w in writers:
        w.log(f"data: {cfg.data.dataset}, {len(data.train)} train, {len(data.valid) if data.valid else 0} valid, {len(data.test)} test on {device}")
        w.log(f"trained as one stack of {len(cfgs)} members (seeds {', '.join(map(str, seeds))}) with runs {', '.join(str(r.run_id) for r in runners)}")

    def on_event(e: dict) -> None:
        emit(e)
        if e["type"] == "batch":
            done = (e["epoch"] - 1 + e["batch"] / e["batches"]) / max(epochs, 1)
            for w, loss in zip(writers, e["losses"]):
                w.metrics([("batch_loss", e["step"], loss)])
                w.progress(phase="train", epoch=e["epoch"] - 1, batch=e["batch"], batches=e["batches"], progress=share * done)
        elif e["type"] == "epoch_end":
            w = writers[e["member"]]
            w.metrics([(k, e["epoch"], v) for k, v in e["metrics"].items()])
            w.progress(phase="train", epoch=e["epoch"], batch=0, progress=share * e["epoch"] / max(epochs, 1))
            w.log(f"epoch {e['epoch']}/{e['epochs']}: " + ", ".join(f"{k}={v:.4g}" for k, v in e["metrics"].items()))

    def should_stop() -> bool:
        return stop_event.is_set() or stack_stop.is_set()

    def stopped(e: BaseException) -> BaseException:
        """A stop that came from inside the stack (a member's cancel request or failed write), named."""
        if isinstance(e, Cancelled) and not stop_event.is_set():
            return Cancelled(f"stopped with its stack: {_why_stopped(runners, writers, unsaved)}")
        return e

    paths = [checkpoint_file(store, store.get_run(r.run_id)) for r in runners]
    unsaved: dict[int, BaseException] = {}  # member -> why its checkpoint was not written (it stops the stack)

    def save_checkpoints(trainer: StackedTrainer) -> None:
        """Every member's checkpoint of this epoch, as its solo run writes one: its rows in the catalog
        first. A member whose rows cannot be written, or whose row another process took over, is skipped
        (never over that process's checkpoint): the stack stops at the next batch, and the others say
        which member stopped them and why."""
        for k, (runner, w, path) in enumerate(zip(runners, writers, paths)):
            try:
                w.sync()
                store.check_owner(runner.run_id, runner.claim_token)
            except Exception as e:  # noqa: BLE001 - that member stops the stack (the others name it)
                unsaved.setdefault(k, e)
                stack_stop.set()
                continue
            atomic_save(trainer.member_state(k, final=False), path)
            w.progress(checkpoint_path=str(path))
        store.checkpoint_wal()
        emit({"type": "checkpoint", "epoch": trainer.epoch, "path": ", ".join(map(str, paths))})

    emit({"type": "phase", "phase": "train", "epochs": epochs, "batches": batches})
    trainer = StackedTrainer(stack, data, cfg.train, seeds, emit=on_event, should_stop=should_stop, batch_every=max(1, batches // 50),
                             checkpoint=save_checkpoints)
    try:
        ends = trainer.run()
    except Cancelled as e:
        raise stopped(e) from None
    results: list[dict | BaseException] = []
    for k, (runner, w, path) in enumerate(zip(runners, writers, paths)):
        try:
            w.sync()
            store.check_owner(runner.run_id, runner.claim_token)
            atomic_save(trainer.member_state(k), path)
            w.progress(checkpoint_path=str(path), epoch=trainer.epoch)
            results.append({**ends[k], **{key: v for key, v in trainer.history[k][-1].items() if key != "epoch"}})
        except Exception as e:  # noqa: BLE001 - this member's end; the others go on
            results.append(e)
    for k, (c, runner, w) in enumerate(zip(cfgs, runners, writers)):
        if isinstance(results[k], BaseException) or not c.sweep.enabled:
            continue
        rid, owner = runner.run_id, runner.claim_token
        try:
            results[k] = {**results[k], **sweep_run(c, stack.member(k), data, w, share, emit=emit, should_stop=should_stop,
                                                    save_samples=lambda rows, rid=rid, owner=owner: store.add_samples(rid, rows, owner=owner))}
        except (Cancelled, KeyboardInterrupt) as e:  # a stop ends this sweep and the ones not begun (each has its checkpoint)
            for j in range(k, len(results)):
                if not isinstance(results[j], BaseException):
                    results[j] = stopped(e)
            break
        except Exception as e:  # noqa: BLE001 - this member's sweep failed; the others' go on
            results[k] = e
    return results


def _why_stopped(runners: list[Runner], writers: list[CatalogWriter], unsaved: dict[int, BaseException] | None = None) -> str:
    """Which member stopped the stack, and how (its cancel request, a catalog write that failed, or its
    row found another process's at a checkpoint)."""
    for k, (runner, w) in enumerate(zip(runners, writers)):
        if w.cancel_requested:
            return f"run {runner.run_id} was cancelled"
        if w.error is not None:
            return f"run {runner.run_id} could not write to the catalog ({type(w.error).__name__}: {w.error})"
        if unsaved and k in unsaved:
            e = unsaved[k]
            return f"run {runner.run_id}'s checkpoint could not be written ({type(e).__name__}: {e})"
    return "another member stopped"
