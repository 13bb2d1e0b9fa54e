"""Issue 14 in the dashboard: resume from the dashboard, launch failures kept as failed rows, headers that
keep their numbers at 80×24, a footer that keeps the screen's keys, charts with whole-number ticks,
a right axis for FGSM error and the legend above the plot, run labels that tell same-named runs apart."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import DataTable, Static

from tui_adv.tui.model import run_label
from tui_adv.tui.screens.compare import CompareScreen
from tui_adv.tui.screens.detail import RunDetailScreen
from tui_adv.tui.screens.live import LiveRunScreen
from tui_adv.tui.screens.runs import RunsScreen
from tui_adv.tui.widgets.charts import Chart, integer_ticks

from .conftest import REPO

SIZES = [(160, 48), (80, 24)]


async def open_detail(pilot, until, run_id: int):
    """From the history, once loaded, to the detail screen of ``run_id``, once loaded."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
    app.open_run(run_id)
    await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded)
    return app.screen


def _text(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def test_integer_ticks_are_whole_round_numbers():
    assert integer_ticks(1, 10, 8) == [2, 4, 6, 8, 10]
    assert integer_ticks(18, 2763, 8) == [500, 1000, 1500, 2000, 2500]
    assert integer_ticks(1, 3, 20) == [1, 2, 3]
    assert integer_ticks(1, 1, 8) == [1]
    assert all(isinstance(t, int) for t in integer_ticks(0.5, 1390.5, 6))


@pytest.mark.parametrize("size", SIZES)
async def test_detail_header_keeps_status_and_both_errors_with_their_set(make, seeded, until, size):
    _store, ids = seeded
    app = make()
    async with app.run_test(size=size) as pilot:
        await open_detail(pilot, until, ids["maxout"])
        title = app.screen.query_one("#detail-title", Static)
        shown = "\n".join(line.text for line in title.render_lines(title.region.reset_offset))
        for want in ("completed", "clean 1.12%", "FGSM ε=.25 89.43%", "test set"):
            assert want in shown.replace("\n", " ").replace("  ", " ") or want in shown, (want, shown)


@pytest.mark.parametrize("size", SIZES)
async def test_the_history_footer_keeps_the_screens_keys(make, until, size):
    app = make()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
        await until(pilot, lambda: all(k.outer_size.width > 0 for k in app.screen.query("FooterKey")) and len(app.screen.query("FooterKey")) > 5)
        # the keys whose whole text lies within the screen's width, in footer order
        visible, x = [], 0
        for k in app.screen.query("FooterKey"):
            x += k.outer_size.width
            if x <= size[0]:
                visible.append(k.key)
        assert visible[0] == "question_mark"
        for key in ("slash", "f", "o", "x", "enter"):
            assert key in visible, (key, visible)


async def test_training_chart_has_integer_ticks_fgsm_on_its_own_axis_and_legend_above(make, seeded, until):
    _store, ids = seeded
    app = make()
    async with app.run_test(size=(160, 48)) as pilot:
        await open_detail(pilot, until, ids["maxout"])
        await pilot.press("3")
        chart = app.screen.query_one("#detail-errors", Chart)
        await until(pilot, lambda: len(chart.series) == 3 and not chart.pending and chart._cache is not None)
        assert [s.yside for s in chart.series] == ["left", "left", "right"]
        lines = chart._cache.plain.splitlines()
        assert lines[0].strip() == "error per epoch (%)"
        assert "test FGSM" in lines[1] and "(right axis)" in lines[1]  # the legend, above the canvas
        assert not any("test FGSM" in ln for ln in lines[2:])  # and not drawn over the data
        tick_row = next(ln for ln in reversed(lines) if any(ch.isdigit() for ch in ln) and "epoch" not in ln and "┤" not in ln and "%" not in ln)
        assert "." not in tick_row, tick_row


def test_run_labels_name_what_differs_from_the_shipped_config():
    from tui_adv.catalog.schema import Run
    from tui_adv.config import load_config

    cfg = load_config(REPO / "configs" / "maxout.toml", ["train.epochs=3", "data.train_limit=5000"])
    run = Run(id=1, name="maxout", experiment="maxout", config_json=cfg.to_json())
    assert run_label(run, limit=None) == "maxout · train_limit=5000, epochs=3" or run_label(run, limit=None) == "maxout · epochs=3, train_limit=5000"
    plain = Run(id=2, name="maxout", experiment="maxout", config_json=load_config(REPO / "configs" / "maxout.toml").to_json())
    assert run_label(plain) == "maxout"


async def test_compare_names_same_named_runs_by_what_differs(make, seeded, until):
    from tui_adv.config import load_config

    store, _ids = seeded
    a = store.create_run(name="softmax", experiment="softmax", config_json=load_config(REPO / "configs/softmax.toml", ["train.epochs=3"]).to_json(), status="completed")
    b = store.create_run(name="softmax", experiment="softmax", config_json=load_config(REPO / "configs/softmax.toml", ["train.epochs=5"]).to_json(), status="completed")
    app = make()
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
        app.push_screen(CompareScreen([int(a.id), int(b.id)]))
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        legend = app.screen.query_one("#compare-legend", DataTable)
        names = {str(legend.get_cell(str(r.id), "name")) for r in (a, b)}
        assert names == {"softmax · epochs=3", "softmax · epochs=5"}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["key", "command"])
async def test_a_cancelled_run_resumes_from_the_dashboard(how, tmp_path, mnist_root, until):
    """``r`` on a cancelled run's detail screen, or ``adv-tui resume ID`` without --headless (the app
    opened with ``resume=``), continues it in a background process, followed on the live screen."""
    from tui_adv.catalog import Store
    from tui_adv.config import load_config
    from tui_adv.runner import Runner
    from tui_adv.tui.app import make_app

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    cfg = load_config(REPO / "configs" / "softmax.toml", ["data.train_limit=600", "data.test_limit=200", "train.epochs=2", "sweep.epsilons=[0, 0.25]",
                                                          "sweep.samples=0", "device=cpu"])
    stop = threading.Event()
    runner = Runner(cfg, store, data_dir=str(mnist_root), device="cpu", stop_event=stop)
    runner.emit = lambda e: stop.set() if e["type"] == "batch" and e["epoch"] == 2 else None
    runner.create()
    assert runner.execute() == "cancelled"
    rid = runner.run_id
    app = make_app(store=store, data_dir=str(mnist_root), poll_interval=0.2, config_dirs=[REPO / "configs"],
                   resume=(rid, "cpu") if how == "command" else None)
    async with app.run_test(size=(80, 24) if how == "key" else (160, 48)) as pilot:
        if how == "key":
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
            app.open_run(rid)
            await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded)
            await until(pilot, lambda: "r" in [k.key for k in app.screen.query("FooterKey")])
            await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
        live = app.screen
        await until(pilot, lambda: live.state.run is not None and live.state.run.status == "completed", timeout=120)
    run = store.get_run(rid)
    assert run.status == "completed" and len(store.list_runs()) == 1  # the same row, continued


async def test_a_completed_run_offers_no_resume(make, seeded, until):
    _store, ids = seeded
    app = make()
    async with app.run_test(size=(120, 30)) as pilot:
        await open_detail(pilot, until, ids["maxout"])
        assert "r" not in [k.key for k in app.screen.query("FooterKey")]


async def test_a_launch_that_fails_leaves_a_failed_row_with_its_cause(make, seeded, until, tmp_path):
    store, _ids = seeded
    before = {int(r.id) for r in store.list_runs()}
    app = make(poll=False, data_dir=str(tmp_path / "no-data-here"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
        app.launch_run(str(REPO / "configs" / "softmax.toml"), ["train.epochs=1"], "cpu")
        await until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
        live = app.screen
        await until(pilot, lambda: "did not start" in _text(live, "#live-title"), timeout=60)
        phase = _text(live, "#live-phase")
        assert "waiting" not in phase and "no-data-here" in phase
    new = [r for r in store.list_runs() if int(r.id) not in before]
    assert len(new) == 1 and new[0].status == "failed" and new[0].name == "softmax"
    assert "did not start" in new[0].error and "no-data-here" in new[0].error


@pytest.mark.parametrize("size", SIZES)
async def test_launch_letters_stay_in_the_form_and_the_data_is_checked(make, until, size, tmp_path):
    from tui_adv.tui.screens.launch import LaunchScreen

    app = make(data_dir=str(tmp_path / "nowhere"))
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        launch = app.screen
        for key in ("s", "c", "l", "slash"):  # focus on the config list, not a field
            await pilot.press(key)
            await pilot.pause(0.05)
            assert app.screen is launch, key
        assert launch.query_one("#f-data").value == str(tmp_path / "nowhere")
        await until(pilot, lambda: launch.data_ok is False, timeout=60)  # the dir does not exist: said before starting
        assert "nowhere" in _text(launch, "#launch-data")
        await until(pilot, lambda: "estimate" in _text(launch, "#launch-estimate"))
        assert "--data-dir" in _text(launch, "#launch-cmd")


def test_the_estimate_scales_a_measured_run_by_epochs_and_images(tmp_path):
    import socket
    from datetime import timedelta

    from tui_adv.catalog import Store
    from tui_adv.catalog.schema import utcnow
    from tui_adv.config import load_config
    from tui_adv.tui.model import estimate_duration

    store = Store(str(tmp_path / "r.db"))
    done = load_config(REPO / "configs" / "maxout.toml", ["train.epochs=2", "data.train_limit=10000"])
    t0 = utcnow()
    store.create_run(name="maxout", experiment="maxout", config_json=done.to_json(), status="completed", host=socket.gethostname(), device="cpu",
                     started_at=t0, finished_at=t0 + timedelta(seconds=100))
    want = load_config(REPO / "configs" / "maxout.toml", ["train.epochs=10", "data.train_limit=20000"])
    assert estimate_duration(store, want.to_json()).startswith("estimate ≈ 16:40 on cpu")  # 100 s × 5 × 2
    other = load_config(REPO / "configs" / "softmax.toml")
    assert estimate_duration(store, other.to_json()).startswith("no estimate yet")


async def test_the_launch_data_check_follows_the_chosen_configs_dataset(make, until):
    """With real MNIST under the data root, MNIST configs check ✓; choosing a Fashion-MNIST config
    checks Fashion-MNIST's files instead, which are not there, and says which files go where."""
    import os

    from tui_adv.tui.screens.launch import LaunchScreen

    app = make(data_dir=os.environ["ADV_TUI_DATA"])
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        launch = app.screen
        mnist = next(c for c in launch.configs if c.name == "softmax")
        fashion = next(c for c in launch.configs if c.dataset == "fashion_mnist")
        launch._select(mnist)
        await until(pilot, lambda: launch.data_ok is True and "MNIST ok" in _text(launch, "#launch-data"), timeout=60)
        launch._select(fashion)
        await until(pilot, lambda: launch.data_ok is False, timeout=60)
        assert "Fashion-MNIST" in _text(launch, "#launch-data") and "FashionMNIST" in _text(launch, "#launch-data")


async def test_the_theme_is_kept_across_restarts(make, until, tmp_path):
    """A theme chosen in the dashboard (ctrl+p → themes) is the theme of the next dashboard; a
    corrupt settings file, or a theme this Textual does not have, falls back to the default."""
    import os
    from pathlib import Path

    from tui_adv.tui.settings import load_settings, settings_path

    assert Path(os.environ["ADV_TUI_CONFIG"]).is_relative_to(tmp_path)
    app = make()
    default = None
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
        default = app.theme
        chosen = "nord" if default != "nord" else "gruvbox"
        app.theme = chosen
        await pilot.pause()
    assert load_settings() == {"theme": chosen}
    app = make()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
        assert app.theme == chosen
    for damage in ("{not json", '{"theme": "no-such-theme"}', '["theme"]'):
        settings_path().write_text(damage)
        app = make()
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
            assert app.theme == default, damage
