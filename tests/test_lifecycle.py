"""The run lifecycle shared by training runs and analysis steps (tui_adv/lifecycle.py).

The liveness window is shortened (``HEARTBEAT_STALE_S``) and the recorder's heartbeat injected, so an
analysis that outlasts the window several times over takes seconds, not minutes. The poller is the
dashboard's: ``refresh_liveness`` in a loop, from another host (where only the heartbeat says a run is
alive; on its own host the pid and start time do).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

from tui_adv.catalog import Store
from tui_adv.choices import RunStatus

WINDOW_S = 2.5  # the readers' liveness window in these tests (120 s in real use)
ANALYSIS_S = 6.0  # well past it


@pytest.fixture
def short_window(monkeypatch):
    monkeypatch.setattr("tui_adv.catalog.ownership.HEARTBEAT_STALE_S", WINDOW_S)


@contextmanager
def dashboard_poller(url: str, run_name: str):
    """Poll as the dashboard does, from another host; yields the statuses it saw for ``run_name``."""
    store = Store(url)
    store.host = "dashboard-host"  # not the run's host: liveness goes by the heartbeat
    seen: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            store.refresh_liveness()
            seen.extend(r.status for r in store.list_runs() if r.name == run_name)
            stop.wait(0.1)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield seen
    finally:
        stop.set()
        t.join()
        store.close()


def test_the_row_stores_where_the_epoch_stands(tmp_path, mnist_root):
    """batch / batches on the row, as the runner passed them; the dashboard reads them as they are."""
    from tui_adv.config import validate
    from tui_adv.lifecycle import TRAIN_SHARE, train_share
    from tui_adv.runner import Runner
    from tui_adv.tui.model import batch_fraction

    assert train_share(True, 10) == TRAIN_SHARE and train_share(False, 10) == 1.0 and train_share(True, 0) == 0.0
    store = Store(str(tmp_path / "runs.db"))
    cfg = validate({"name": "t", "experiment": "softmax", "seed": 5, "device": "cpu", "data": {"train_limit": 400, "test_limit": 100},
                    "model": {"kind": "softmax"}, "train": {"epochs": 3, "batch_size": 50}, "sweep": {"epsilons": [0.0, 0.25], "samples": 1}})
    seen: list[tuple[int, int, int]] = []

    def emit(e: dict) -> None:
        if e["type"] == "batch":
            seen.append((e["epoch"], e["batch"], e["batches"]))
            if (e["epoch"], e["batch"]) == (2, 4):
                raise RuntimeError("stop here")

    r = Runner(cfg, store, data_dir=str(mnist_root), emit=emit)
    r.create()
    assert r.execute() == "failed"
    run = store.get_run(r.run_id)
    assert seen[-1] == (2, 4, 8) and (run.epoch, run.batch, run.batches) == (1, 3, 8)  # the last batch it finished
    from tui_adv.services.runs import list_row

    assert {k: list_row(run)[k] for k in ("epoch", "epochs", "batch", "batches")} == {"epoch": 1, "epochs": 3, "batch": 3, "batches": 8}  # runs list --json
    assert batch_fraction(run) is None  # a run that no longer trains has no epoch under way
    run.phase = "train"  # as the dashboard read it while it trained
    assert batch_fraction(run) == pytest.approx(3 / 8)
    # the overall progress still folds the phases into one number (training is TRAIN_SHARE of it)
    assert run.progress == pytest.approx(TRAIN_SHARE * (1 + 3 / 8) / 3)
    store.close()


def _analysis_task(url: str, parent_id: int):
    from tui_adv.executor import StepTask

    return StepTask(key="transfer_x", profile="quick", db_url=url, data_dir=None, device="cpu", claims=["P14"],
                    analysis="transfer", params={}, parent_ids={"source": parent_id})


def _parent(store: Store) -> int:
    from tui_adv.catalog.schema import utcnow

    return int(store.create_run(name="parent", experiment="p", status=RunStatus.COMPLETED, config_json="{}", finished_at=utcnow()).id)


def test_a_long_analysis_step_stays_running_while_a_dashboard_polls(tmp_path, monkeypatch, short_window):
    """An analysis step that outlasts the liveness window heartbeats through the run lifecycle: a
    dashboard on another host sees it ``running`` throughout, never ``interrupted``, then ``completed``."""
    from tui_adv import executor

    def slow_analysis(store, step, profile, parents, *, data_dir, device):  # noqa: ANN001 - run_analysis's signature
        time.sleep(ANALYSIS_S)
        return {"summary": {"transfer_error": 0.5}, "artifacts": {"note": {"ok": True}}, "sweep": None}

    monkeypatch.setattr("tui_adv.reproduce.run_analysis", slow_analysis)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(url)
    store.host = "analysis-host"
    task = _analysis_task(url, _parent(store))
    with dashboard_poller(url, "quick:transfer_x") as seen:
        outcome = executor._run_analysis_task(task, store, lambda e: None, time.perf_counter(), heartbeat_s=0.3)
    assert outcome.status == RunStatus.COMPLETED, outcome
    assert RunStatus.RUNNING in seen and RunStatus.INTERRUPTED not in seen, sorted(set(seen))
    run = store.get_run(outcome.run_id)
    assert run.status == RunStatus.COMPLETED and run.summary() == {"transfer_error": 0.5}
    assert store.artifacts(outcome.run_id)["note"] == {"ok": True}
    store.close()


def test_an_analysis_whose_row_was_taken_never_overwrites_it(tmp_path, monkeypatch):
    """Without heartbeats (none within the analysis) a reader marks the row ``interrupted`` and a resume
    claims it; the analysis that then finishes must not write ``completed`` over it."""
    from tui_adv import executor

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(url)

    def analysis_whose_row_is_taken(store_, step, profile, parents, *, data_dir, device):  # noqa: ANN001
        run = next(r for r in store.list_runs() if r.name == "quick:transfer_x")
        store.update_run(run.id, status=RunStatus.INTERRUPTED, claim_token="someone-else")
        return {"summary": {"transfer_error": 0.5}, "artifacts": {}, "sweep": None}

    monkeypatch.setattr("tui_adv.reproduce.run_analysis", analysis_whose_row_is_taken)
    task = _analysis_task(url, _parent(store))
    outcome = executor._run_analysis_task(task, store, lambda e: None, time.perf_counter(), heartbeat_s=60)
    assert outcome.status == RunStatus.INTERRUPTED
    run = store.get_run(outcome.run_id)
    assert run.status == RunStatus.INTERRUPTED and run.claim_token == "someone-else" and run.summary_json in (None, "", "{}", "null")
    store.close()
