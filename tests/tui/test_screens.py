"""Pilot tests of every screen and key flow of the dashboard, on a seeded catalog (no training)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from textual.widgets import DataTable, Input, Static

from tui_adv.errors import UserError
from tui_adv.tui.model import STATUS_FILTERS
from tui_adv.tui.screens.compare import CompareScreen
from tui_adv.tui.screens.detail import RunDetailScreen
from tui_adv.tui.screens.dialogs import ConfirmScreen, ExportScreen, HelpScreen
from tui_adv.tui.screens.launch import LaunchScreen
from tui_adv.tui.screens.live import LiveRunScreen
from tui_adv.tui.screens.runs import RunsScreen
from tui_adv.tui.screens.scorecard import ScorecardScreen
from tui_adv.tui.widgets.charts import Chart

from .seed import seed_many

SIZES = [(160, 48), (80, 24)]


def table_ids(app) -> list[int]:
    t = app.screen.query_one("#runs-table", DataTable)
    return [int(t.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(t.row_count)]


async def home(pilot, until):
    await until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen) and pilot.app.screen.loaded)
    return pilot.app.screen


def static_text(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_a_poll_that_arrives_while_the_app_quits_is_dropped(make, seeded, until):
    """CI once failed at the end of a run_test block: a CatalogUpdate queued by the poller was dispatched
    while Textual was removing the history's widgets (NoMatches '#runs-title'). Reproduced exactly: the
    screen loses its children during shutdown, then an update arrives and is processed."""
    import asyncio

    from tui_adv.tui.messages import CatalogUpdate

    store, ids = seeded
    app = make()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await home(pilot, until)
        close_all = app._close_all  # Textual's shutdown step that prunes the screens (textual>=8.2,<9)

        async def close_all_with_a_late_poll() -> None:
            await screen.query_children().remove()
            app.post_message(CatalogUpdate([store.get_run(ids["softmax"])], len(ids), []))
            await asyncio.sleep(0.2)  # the app's own task dispatches the update meanwhile
            await close_all()

        app._close_all = close_all_with_a_late_poll
    # leaving the block re-raises whatever the app raised while it shut down


# ------------------------------------------------------------------------------------------ history
@pytest.mark.parametrize("size", SIZES)
async def test_history_lists_runs_newest_first(make, seeded, until, size):
    _store, ids = seeded
    app = make()
    async with app.run_test(size=size) as pilot:
        screen = await home(pilot, until)
        assert table_ids(app) == sorted(ids.values(), reverse=True)
        t = screen.query_one("#runs-table", DataTable)
        def cell(rid, key):
            return str(t.get_cell(str(rid), key))

        if size[0] >= 110:
            assert "● running" in cell(ids["running"], "status") and "ep 5/10" in cell(ids["running"], "progress")
        else:  # 80 columns: the percent moves into the status cell so the FGSM column stays on screen
            assert cell(ids["running"], "status") == "● running 40%"
            assert "progress" not in [c.key.value for c in t.columns.values()]
        assert cell(ids["running"], "duration").strip() == "30:00"  # frozen clock: started 11:30, now 12:00
        assert cell(ids["softmax"], "clean") == "7.56%" and cell(ids["softmax"], "fgsm") == "99.81%"
        assert cell(ids["softmax"], "duration").strip() == "0:11"
        assert ("started" in [c.key.value for c in t.columns.values()]) == (size[0] >= 110)
        assert "6 in catalog" in static_text(screen, "#runs-title")


@pytest.mark.parametrize("other_dataset", [False, True])
async def test_history_at_80_columns_keeps_the_fgsm_column_on_screen(make, seeded, until, other_dataset):
    """Long names, a running run's progress and a dataset column used to push FGSM off an 80×24 screen."""
    import json

    store, _ids = seeded
    cfg = {"name": "x", "data": {"dataset": "fashion_mnist" if other_dataset else "mnist"}, "model": {"kind": "maxout"}}
    long = store.create_run(name="maxout_adversarial_sigmoid_seed4_long", experiment="maxout", config_json=json.dumps(cfg), status="completed")
    store.update_run(int(long.id), clean_error=0.0091, fgsm_error=0.1767)
    app = make()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await home(pilot, until)
        await until(pilot, lambda: int(long.id) in table_ids(app))
        t = screen.query_one("#runs-table", DataTable)
        keys = [c.key.value for c in t.columns.values()]
        assert "fgsm" in keys and "clean" in keys and ("dataset" in keys) == other_dataset
        assert sum(c.get_render_width(t) for c in t.columns.values()) <= 78  # the table's width less its scrollbar
        assert str(t.get_cell(str(long.id), "fgsm")) == "17.67%"
        if other_dataset:
            assert str(t.get_cell(str(long.id), "dataset")) == "fashion"


async def test_filter_by_text_and_status(make, seeded, until):
    _store, ids = seeded
    app = make()
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await home(pilot, until)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"adv")
        await until(pilot, lambda: sorted(table_ids(app)) == sorted([ids["cancel"], ids["running"]]))
        # q while typing is text, not quit
        await pilot.press("q")
        assert app.screen.query_one("#runs-filter", Input).value == "advq" and app.is_running
        await pilot.press("escape")
        await until(pilot, lambda: len(table_ids(app)) == 6)
        assert screen.text_filter == ""
        await pilot.press("f")  # status: active
        await until(pilot, lambda: table_ids(app) == [ids["running"]])
        await pilot.press("f")  # completed
        await until(pilot, lambda: table_ids(app) == [ids["maxout"], ids["softmax"]])
        assert "completed" in static_text(screen, "#runs-filters")


async def test_sort_cycles_and_keeps_cursor(make, seeded, until):
    _store, ids = seeded
    app = make()
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await home(pilot, until)
        await pilot.press("down")  # cursor on the second-newest run
        cur = screen.highlighted_id()
        await pilot.press("o")  # sort by name
        names = [screen.runs[i].name for i in table_ids(app)]
        assert names == sorted(names, key=str.lower)
        assert screen.highlighted_id() == cur
        for _ in range(3):
            await pilot.press("o")  # status, clean err, FGSM err
        errs = [screen.runs[i].fgsm_error for i in table_ids(app) if screen.runs[i].fgsm_error is not None]
        assert errs == sorted(errs)


async def test_the_history_follows_its_state_whoever_sets_it(make, seeded, until):
    """Selection (on the app), filter, status, sort and totals are reactive: setting them from anywhere
    (the scorecard selects runs, the palette clears them, the poller counts the catalog) redraws the
    history without the setter knowing the screen."""
    store, ids = seeded
    app = make(poll_interval=0.1)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await home(pilot, until)
        t = screen.query_one("#runs-table", DataTable)

        def marked() -> set[int]:
            return {rid for rid in table_ids(app) if "◆" in str(t.get_cell(str(rid), "sel"))}

        app.select_runs([ids["softmax"], ids["maxout"]])  # as the scorecard's enter on a multi-run value
        await until(pilot, lambda: marked() == {ids["softmax"], ids["maxout"]})
        assert "2 selected (c compares)" in static_text(screen, "#runs-status")
        app.toggle_selected(ids["softmax"])
        await until(pilot, lambda: marked() == {ids["maxout"]})
        # typing in an Input (the filter box) leaves the runs selected (Textual's App.clear_selection is
        # the text selection's, called by every Input; the dashboard once overrode it)
        await pilot.press("slash", *"max", "enter")
        await until(pilot, lambda: screen.text_filter == "max")
        assert app.selected == {ids["maxout"]}
        await pilot.press("escape")
        await until(pilot, lambda: screen.text_filter == "" and len(table_ids(app)) == 6)
        await pilot.pause(0.3)  # the emptied box's own debounced Changed has applied "" again
        app.clear_run_selection()  # the palette's "Clear selection"
        await until(pilot, lambda: marked() == set() and "space selects" in static_text(screen, "#runs-status"))

        screen.sort_by = (1, True)  # name, reversed
        names = lambda: [screen.runs[i].name for i in table_ids(app)]  # noqa: E731
        await until(pilot, lambda: names() == sorted(names(), key=str.lower, reverse=True) and "name ↑" in static_text(screen, "#runs-filters"))
        screen.text_filter = "softmax"
        await until(pilot, lambda: sorted(table_ids(app)) == sorted([ids["softmax"], ids["interrupted"]]))
        assert "“softmax”" in static_text(screen, "#runs-filters")
        screen.status_index = [label for label, _ in STATUS_FILTERS].index("completed")
        await until(pilot, lambda: table_ids(app) == [ids["softmax"]])

        # totals: a run written by another process reaches the header through the poller
        assert "6 in catalog" in static_text(screen, "#runs-title")
        store.create_run(name="elsewhere", experiment="softmax", config_json="{}", status="running")
        await until(pilot, lambda: "7 in catalog" in static_text(screen, "#runs-title"))


async def test_history_pages_a_large_catalog(seeded, until, tmp_path):
    from tui_adv.catalog import Store
    from tui_adv.tui.app import make_app

    store = Store(f"sqlite:///{tmp_path / 'big.db'}")
    seed_many(store, 5000)
    app = make_app(store=store, poll_interval=0.1)
    async with app.run_test(size=(160, 48)) as pilot:
        t0 = time.perf_counter()
        screen = await home(pilot, until)
        assert time.perf_counter() - t0 < 3.0
        assert len(table_ids(app)) == 200 and table_ids(app)[0] == 5000
        await pilot.press("G")  # bottom: the next page arrives
        await until(pilot, lambda: len(screen.runs) == 400)
        assert "5,000" in static_text(screen, "#runs-title")
    store.close()


async def test_live_updates_reach_the_history(make, seeded, until):
    store, ids = seeded
    app = make()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await home(pilot, until)
        store.update_run(ids["running"], progress=0.8, epoch=8)
        t = screen.query_one("#runs-table", DataTable)
        await until(pilot, lambda: "ep 9/10" in str(t.get_cell(str(ids["running"]), "progress")))
        new = store.create_run(name="fresh", experiment="softmax", config_json="{}", status="queued")
        await until(pilot, lambda: table_ids(app)[0] == int(new.id))
        assert "7 in catalog" in static_text(screen, "#runs-title")


async def test_dead_process_shows_interrupted(make, seeded, until):
    store, _ids = seeded
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run = store.create_run(name="ghost", experiment="softmax", config_json="{}", status="running", pid=proc.pid, host=socket.gethostname())
    app = make(liveness_interval=0.2)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await home(pilot, until)
        t = screen.query_one("#runs-table", DataTable)
        await until(pilot, lambda: "interrupted" in str(t.get_cell(str(run.id), "status")))


# ------------------------------------------------------------------------------------------ live / detail
@pytest.mark.parametrize("size", SIZES)
async def test_enter_opens_live_screen_for_running_run(make, seeded, until, size):
    store, ids = seeded
    app = make()
    async with app.run_test(size=size) as pilot:
        await home(pilot, until)
        await pilot.press("enter")  # newest = the running run
        await until(pilot, lambda: isinstance(app.screen, LiveRunScreen) and app.screen.updates > 0)
        screen = app.screen
        await until(pilot, lambda: len(screen.query_one("#chart-loss", Chart).series) == 1)
        assert "run 6" in static_text(screen, "#live-title")
        assert "epoch 5/10" in static_text(screen, "#live-phase") and "ETA" in static_text(screen, "#live-phase")
        errors = screen.query_one("#chart-errors", Chart).series
        assert [s.label for s in errors] == ["train", "test clean", "test FGSM"] and len(errors[0].xs) == 4
        # the sweep fills in point by point
        store.add_sweep_points(ids["running"], "fgsm", "true", [{"epsilon": 0.0, "accuracy": 0.9, "error": 0.1, "mean_confidence": 0.9, "mean_confidence_wrong": 0.5, "n": 100, "n_wrong": 10}])
        await until(pilot, lambda: len(screen.query_one("#chart-sweep", Chart).series) == 1)
        store.add_sweep_points(ids["running"], "fgsm", "true", [{"epsilon": 0.1, "accuracy": 0.2, "error": 0.8, "mean_confidence": 0.9, "mean_confidence_wrong": 0.5, "n": 100, "n_wrong": 80}])
        await until(pilot, lambda: list(screen.query_one("#chart-sweep", Chart).series[0].xs) == [0.0, 0.1])
        store.log(ids["running"], "hello from the runner")
        await until(pilot, lambda: any("hello from the runner" in str(line.text) for line in screen.query_one("#live-log").lines))
        await pilot.press("k")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))


@pytest.mark.parametrize("size", SIZES)
async def test_detail_screen_pages_samples_and_eps(make, seeded, until, size):
    _store, ids = seeded
    app = make()
    async with app.run_test(size=size) as pilot:
        await home(pilot, until)
        app.open_run(ids["softmax"])
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded)
        screen = app.screen
        assert screen.query_one("#sweep-table", DataTable).row_count == 7
        await pilot.press("2")
        assert "sample 1/4" in static_text(screen, "#views-nav") and "ε 0.1" in static_text(screen, "#views-nav")
        await pilot.press("n", "n")
        assert "sample 3/4" in static_text(screen, "#views-nav")
        await pilot.press("right_square_bracket")
        assert "ε 0.25" in static_text(screen, "#views-nav")
        await pilot.press("p", "p", "p")
        assert "sample 4/4" in static_text(screen, "#views-nav")  # wraps around
        caption = str(screen.query_one("#view-adv").render())
        assert "pred 6 (85.0%)" in caption and "fooled" in caption
        for key in "13456":
            await pilot.press(key)
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, LiveRunScreen))


async def test_detail_of_missing_run_is_a_notification(make, until):
    app = make()
    async with app.run_test(size=(120, 30)) as pilot:
        await home(pilot, until)
        app.open_run(12345)
        await until(pilot, lambda: any("no run with id 12345" in n.message for n in app._notifications))
        assert isinstance(app.screen, RunsScreen)


async def test_export_from_detail(make, seeded, until, tmp_path):
    _store, ids = seeded
    app = make()
    out = tmp_path / "export.csv"
    async with app.run_test(size=(120, 30)) as pilot:
        await home(pilot, until)
        app.open_run(ids["softmax"])
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen))
        box = app.screen.query_one(Input)
        box.value = "bad.txt"
        await pilot.press("enter")
        assert isinstance(app.screen, ExportScreen) and ".json or .csv" in static_text(app.screen, "#export-error")
        box.value = str(out)
        await pilot.press("enter")
        await until(pilot, lambda: out.exists(), timeout=30)
        detail = app.screen
        await until(pilot, lambda: len(detail.saved) == 3, timeout=60)
    head = out.read_text().splitlines()[0]
    assert head == "run_id,table,attack,labels,key,step,epsilon,value"
    # the screen's charts beside the export, as PNG
    assert detail.saved[1:] == [tmp_path / "export-accuracy.png", tmp_path / "export-training.png"]
    _assert_png(detail.saved[1], min_width=600)
    _assert_png(detail.saved[2], min_width=900)


def _assert_png(path, min_width: int) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    assert img.shape[1] >= min_width and float(img[..., :3].std()) > 0.05  # drawn, not blank


async def test_cancel_sends_sigterm_after_confirmation(make, seeded, until):
    store, _ids = seeded
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = store.create_run(name="victim", experiment="softmax", config_json="{}", status="running", pid=proc.pid, host=socket.gethostname())
        app = make()
        async with app.run_test(size=(120, 30)) as pilot:
            screen = await home(pilot, until)
            await until(pilot, lambda: table_ids(app)[0] == int(run.id))
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("n")
            await pilot.pause(0.1)
            assert proc.poll() is None
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            assert proc.wait(timeout=10) == -signal.SIGTERM
            assert screen is app.screen
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_cancel_of_a_run_on_another_host_goes_through_the_catalog(make, seeded, until):
    """`x` on a run whose process is on another host: after confirmation the cancel request is stored on
    the row (its runner polls it there); nothing is signalled here."""
    from tui_adv.catalog.schema import utcnow

    store, _ids = seeded
    run = store.create_run(name="remote", experiment="softmax", config_json="{}", status="running", pid=os.getpid(), host="gpu-7.example",
                           heartbeat_at=utcnow())  # fmt: skip
    app = make(poll=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await home(pilot, until)
        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=table.get_row_index(str(run.id)))
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "gpu-7.example" in str(app.screen.query_one("#confirm-question", Static).render())
        await pilot.press("y")
        await until(pilot, lambda: any("cancel requested in the catalog" in n.message for n in app._notifications))
    assert store.get_run(int(run.id)).cancel_requested_at is not None  # and this process (its pid) is still here


# ------------------------------------------------------------------------------------------ compare
@pytest.mark.parametrize("size", SIZES)
async def test_compare_selected_runs(make, seeded, until, size, tmp_path, monkeypatch):
    _store, ids = seeded
    app = make()
    async with app.run_test(size=size) as pilot:
        screen = await home(pilot, until)
        await pilot.press("c")
        assert not isinstance(app.screen, CompareScreen)  # nothing selected: a hint, not a screen
        assert any("at least two" in n.message for n in app._notifications)
        t = screen.query_one("#runs-table", DataTable)
        t.move_cursor(row=t.get_row_index(str(ids["maxout"])))
        await pilot.press("space")  # selects and moves down to the softmax run
        await pilot.press("space")
        assert app.selected == {ids["maxout"], ids["softmax"]}
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        cmp = app.screen
        assert cmp.query_one("#compare-legend", DataTable).row_count == 2
        sweep = cmp.query_one("#cmp-sweep", Chart).series
        # each run labelled by id and name (the names differ, so no config values are added)
        assert {s.label for s in sweep} == {f"#{ids['maxout']} maxout", f"#{ids['softmax']} softmax"}
        colours = {s.label: s.colour for s in sweep}
        assert colours[f"#{ids['maxout']} maxout"] != colours[f"#{ids['softmax']} softmax"]
        diff = cmp.query_one("#compare-diff", DataTable)
        keys = [str(diff.get_row_at(i)[0]) for i in range(diff.row_count)]
        assert "model.kind" in keys and "name" in keys and "train.epochs" not in keys
        if size == SIZES[0]:  # `e`: the comparison's charts as PNG, in the working directory
            monkeypatch.chdir(tmp_path)
            await pilot.press("e")
            await until(pilot, lambda: len(cmp.saved) == 2, timeout=60)
            stem = 'compare-' + '-'.join(str(i) for i in sorted((ids['maxout'], ids['softmax'])))
            assert cmp.saved == [tmp_path / f"{stem}-accuracy.png", tmp_path / f"{stem}-training.png"]
            for f in cmp.saved:
                _assert_png(f, min_width=600)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        await pilot.press("escape", "escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))


# ------------------------------------------------------------------------------------------ launch
@pytest.mark.parametrize("size", SIZES)
async def test_launch_form_builds_overrides_and_spawns(make, until, monkeypatch, size):
    from tui_adv.tui import app as app_mod
    from tui_adv.services.launch import Launched

    calls = []

    def fake_spawn(config, overrides, *, db_url, data_dir=None, device=None, ray_address=None):
        calls.append((config, overrides, device))
        return Launched(pid=999_999, argv=[], log_path=__import__("pathlib").Path("/nonexistent"), started=0.0)

    monkeypatch.setattr(app_mod, "spawn_run", fake_spawn)
    app = make(poll=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.2)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        screen = app.screen
        names = [c.name for c in screen.configs]
        assert "softmax" in names
        screen.query_one("#launch-configs").highlighted = names.index("softmax")
        await pilot.pause()
        assert "P01" in static_text(screen, "#launch-desc")
        screen.query_one("#f-eps", Input).value = "0, .1, nope"
        await pilot.press("ctrl+s")
        assert "not a number" in static_text(screen, "#launch-error") and not calls
        screen.query_one("#f-eps", Input).value = "0, .1, .25"
        screen.query_one("#f-epochs", Input).value = "2"
        screen.query_one("#f-seed", Input).value = "7"
        screen.query_one("#f-extra", Input).value = "data.train_limit=abc"
        await pilot.press("ctrl+s")
        assert "train_limit" in static_text(screen, "#launch-error") and not calls  # validated by the config model
        screen.query_one("#f-extra", Input).value = "data.train_limit=1000"
        screen.query_one("#f-device").value = "cpu"
        await pilot.pause()
        assert "--set train.epochs=2" in static_text(screen, "#launch-cmd")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
        config, overrides, device = calls[0]
        assert config.endswith("softmax.toml") and device == "cpu"
        assert overrides == ["train.epochs=2", "sweep.epsilons=[0, 0.1, 0.25]", "seed=7", "data.train_limit=1000"]
        await pilot.press("q")
        assert isinstance(app.screen, RunsScreen)


async def test_launched_process_that_dies_early_shows_its_error(make, until, tmp_path):
    app = make(poll=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await home(pilot, until)
        launched = app.launch_run(str(tmp_path / "missing.toml"), [], "cpu")
        assert launched is not None
        await until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
        screen = app.screen
        await until(pilot, lambda: "did not start" in static_text(screen, "#live-title"), timeout=30)
        text = "\n".join(str(line.text) for line in screen.query_one("#live-log").lines)
        assert "config file not found" in text


# ------------------------------------------------------------------------------------------ misc
async def test_help_quit_and_palette_commands(make, until):
    app = make()
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await home(pilot, until)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("q")
        assert app.screen is screen and app.is_running
        titles = [c.title for c in app.get_system_commands(screen)]
        for want in ("Launch a run", "Compare selected runs", "Scorecard", "Show failed runs"):
            assert want in titles
        footer_keys = [k.key for k in screen.query("FooterKey")]
        assert footer_keys[:5] == ["question_mark", "q", "l", "c", "s"]  # global keys first
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Show failed", "enter")
        await until(pilot, lambda: screen.status_index == 3)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)


async def test_scorecard_reads_the_claims_module(make, seeded, until, monkeypatch):
    """The screen shows :func:`tui_adv.claims.scorecard` (through services.scorecard); enter opens the
    runs behind a row, or says there are none."""
    from tui_adv.claims import CLAIMS, Result
    from tui_adv.services import scorecard as service

    _store, ids = seeded
    app = make()
    async with app.run_test(size=(120, 30)) as pilot:
        await home(pilot, until)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ScorecardScreen) and app.screen.loaded)
        assert app.screen.query_one(DataTable).row_count == len(CLAIMS)  # the real claims, none measured here
        assert "nothing measured yet: run `adv-tui reproduce`" in static_text(app.screen, "#scorecard-note")
        await pilot.press("q")
        results = [
            Result("P01", "softmax", "quick", "0.1%", "0.2%", "PASS", "yes", [ids["softmax"]]),
            Result("P02", "maxout", None, "89.4%", "—", "NOT RUN", None, []),
        ]
        monkeypatch.setattr(service, "scorecard", lambda store, profiles=None: results)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ScorecardScreen) and app.screen.loaded)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 2
        await pilot.press("down", "enter")
        assert any("no run recorded" in n.message for n in app._notifications)
        await pilot.press("up", "enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run_id == ids["softmax"])


def test_unreachable_catalog_is_a_user_error(tmp_path):
    from tui_adv.tui.app import make_app

    with pytest.raises(UserError):
        make_app(db=str(tmp_path / "no" / "such" / "dir" / "runs.db"))


def test_cli_bad_db_one_line_exit_2(tmp_path, cli):
    r = cli("--db", str(tmp_path / "nope" / "runs.db"))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("adv-tui: error:") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_dashboard_module_keeps_headless_imports_out():
    """tui/model.py (formatting, configs, launching) is importable without textual."""
    code = "import sys, tui_adv.tui.model; assert 'textual' not in sys.modules, 'textual imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


async def test_launch_number_fields_give_overrides_or_one_readable_error(make, until):
    """epochs, α and seed: a changed value becomes a --set override, an unchanged or empty one none,
    and text that is not a number (e.g. a lone '-' or '.') a message naming the field."""
    app = make(poll=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        screen = app.screen
        names = [c.name for c in screen.configs]
        screen.query_one("#launch-configs").highlighted = names.index("maxout_adv")  # adversarial: α applies
        await pilot.pause()
        c = screen.current
        assert not screen.query_one("#f-alpha", Input).disabled
        fields = {"#f-epochs": str(c.epochs), "#f-alpha": f"{c.alpha:g}", "#f-seed": str(c.seed)}
        for field, value in fields.items():
            screen.query_one(field, Input).value = value
        assert screen.overrides()[0] == []
        for field in fields:
            screen.query_one(field, Input).value = ""
        assert screen.overrides()[0] == []
        screen.query_one("#f-epochs", Input).value = "3"
        screen.query_one("#f-alpha", Input).value = "0.25"
        screen.query_one("#f-seed", Input).value = "11"
        assert screen.overrides()[0] == ["train.epochs=3", "train.alpha=0.25", "seed=11"]
        for field, bad, message in (("#f-epochs", "-", "epochs must be a whole number, got '-'"),
                                    ("#f-alpha", ".", "α must be a number in [0, 1], got '.'"),
                                    ("#f-seed", "-", "seed must be a whole number, got '-'")):
            old = screen.query_one(field, Input).value
            screen.query_one(field, Input).value = bad
            with pytest.raises(ValueError) as e:
                screen.overrides()
            assert str(e.value) == message
            screen.query_one(field, Input).value = old
        screen.query_one("#launch-configs").highlighted = names.index("softmax")  # clean: α is not used
        await pilot.pause()
        assert screen.query_one("#f-alpha", Input).disabled
        screen.query_one("#f-alpha", Input).value = "."
        assert all(not o.startswith("train.alpha") for o in screen.overrides()[0])
