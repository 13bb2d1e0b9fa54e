"""SVG snapshots of the main screens on the seeded catalog (frozen clock, UTC). Update with
``pytest tests/tui --snapshot-update`` after checking the new SVGs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_adv.tui.screens.compare import CompareScreen
from tui_adv.tui.screens.detail import RunDetailScreen
from tui_adv.tui.screens.launch import LaunchScreen
from tui_adv.tui.screens.live import LiveRunScreen
from tui_adv.tui.screens.runs import RunsScreen
from tui_adv.tui.screens.scorecard import ScorecardScreen
from tui_adv.tui.widgets.charts import Chart

from .conftest import wait_for

CONFIGS = Path(__file__).parent / "configs"


@pytest.fixture
def snap_app(make, monkeypatch):
    monkeypatch.setattr("tui_adv.tui.screens.launch.gpu_hint", lambda: "no GPU detected: auto uses cpu")
    return make(config_dirs=[CONFIGS], liveness_interval=3600)


async def _home(pilot):
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
    await settle(pilot)


async def settle(pilot):
    """Let DataTables compute their column widths (done when the app is idle) before the shot."""
    from textual.widgets import DataTable

    await pilot.pause(0.2)
    await wait_for(pilot, lambda: not any(t._require_update_dimensions for t in pilot.app.screen.query(DataTable)))

    def charts_drawn():
        screen = pilot.app.screen
        return not any(c.pending for c in screen.query(Chart) if screen.region.overlaps(c.region))  # on-screen ones

    await wait_for(pilot, charts_drawn)
    await pilot.pause(0.1)
    await wait_for(pilot, charts_drawn)
    await pilot.pause(0.1)


def _open(run_key: str, cls, *, tab: str | None = None, keys: tuple[str, ...] = ()):
    async def run_before(pilot):
        app = pilot.app
        await _home(pilot)
        rid = _ids(app)[run_key]
        app.open_run(rid)
        await wait_for(pilot, lambda: isinstance(app.screen, cls) and app.screen.loaded and app.screen.updates > 0)
        await pilot.pause(0.3)
        if tab:
            await pilot.press(tab)
        if keys:
            await pilot.press(*keys)
        await settle(pilot)

    return run_before


def _ids(app) -> dict[str, int]:
    runs = sorted(app.screen.runs.values(), key=lambda r: r.id)
    keys = ["softmax", "maxout", "logreg", "cancel", "interrupted", "running"]
    return {k: int(r.id) for k, r in zip(keys, runs)}


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
def test_snapshot_history(snap_compare, snap_app, size):
    async def run_before(pilot):
        await _home(pilot)
        await pilot.press("down", "space", "down", "space")
        await settle(pilot)

    assert snap_compare(snap_app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
def test_snapshot_live(snap_compare, snap_app, size):
    async def run_before(pilot):
        await _open("running", LiveRunScreen)(pilot)
        screen = pilot.app.screen
        await wait_for(pilot, lambda: len(screen.query_one("#chart-errors", Chart).series) == 3)
        await settle(pilot)

    assert snap_compare(snap_app, terminal_size=size, run_before=run_before)


def test_snapshot_detail_sweep(snap_compare, snap_app):
    assert snap_compare(snap_app, terminal_size=(160, 48), run_before=_open("softmax", RunDetailScreen))


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
def test_snapshot_detail_perturbations(snap_compare, snap_app, size):
    assert snap_compare(snap_app, terminal_size=size, run_before=_open("softmax", RunDetailScreen, tab="2", keys=("n", "right_square_bracket")))


def test_snapshot_compare(snap_compare, snap_app):
    async def run_before(pilot):
        app = pilot.app
        await _home(pilot)
        ids = _ids(app)
        app.select_runs({ids["softmax"], ids["maxout"]})
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        await settle(pilot)

    assert snap_compare(snap_app, terminal_size=(160, 48), run_before=run_before)


def test_snapshot_launch(snap_compare, snap_app):
    async def run_before(pilot):
        app = pilot.app
        await _home(pilot)
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        await pilot.press("down")  # softmax
        await wait_for(pilot, lambda: app.screen.data_ok is not None, timeout=60)  # the data check has answered
        await pilot.pause(0.2)

    assert snap_compare(snap_app, terminal_size=(160, 48), run_before=run_before)


def test_snapshot_help(snap_compare, snap_app):
    async def run_before(pilot):
        await _home(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.3)

    assert snap_compare(snap_app, terminal_size=(120, 40), run_before=run_before)


def test_snapshot_scorecard_missing(snap_compare, snap_app):
    async def run_before(pilot):
        app = pilot.app
        await _home(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ScorecardScreen) and app.screen.loaded)
        await settle(pilot)

    assert snap_compare(snap_app, terminal_size=(120, 30), run_before=run_before)
