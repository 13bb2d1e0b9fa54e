"""The compare screen plots a grid's final FGSM error against the key(s) it varied; runs that differ in
other ways get no such plot."""

from __future__ import annotations

import json

import pytest

from tui_adv.tui.model import varied_axes
from tui_adv.tui.screens.compare import CompareScreen
from tui_adv.tui.widgets.charts import Chart

from .test_screens import home


def _grid(store) -> dict[tuple[str, str], int]:
    ids = {}
    for alpha in ("0", "0.5", "1"):
        for eps in ("0.1", "0.25"):
            cfg = {"name": "softmax", "experiment": "g", "model": {"kind": "softmax"}, "train": {"alpha": float(alpha), "epsilon": float(eps)}}
            run = store.create_run(name="softmax", experiment="g", config_json=json.dumps(cfg, sort_keys=True), status="completed")
            fgsm = 0.9 - 0.3 * float(alpha) * float(eps) * 4  # planted: falls with α, more steeply at ε = .25
            store.update_run(int(run.id), clean_error=0.08, fgsm_error=fgsm)
            ids[(alpha, eps)] = int(run.id)
    return ids


def test_varied_axes_picks_the_numeric_keys():
    diff = [("name", {1: "a", 2: "b"}), ("train.alpha", {1: "0", 2: "0.5"}), ("train.epsilon", {1: "0.1", 2: "0.1"})]
    assert varied_axes(diff) == ("train.alpha", "train.epsilon", {1: 0.0, 2: 0.5}, {1: "0.1", 2: "0.1"})
    assert varied_axes([("seed", {1: "1", 2: "2", 3: "3"})]) == ("seed", None, {1: 1.0, 2: 2.0, 3: 3.0}, {1: "", 2: "", 3: ""})
    assert varied_axes([("model.kind", {1: "softmax", 2: "maxout"})]) is None  # nothing numeric
    three = [(k, {1: "1", 2: "2"}) for k in ("a", "b", "c")]
    assert varied_axes(three) is None  # more than a grid of two keys


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
async def test_compare_plots_a_grids_fgsm_error_against_the_varied_keys(make, seeded, until, size):
    store, seeded_ids = seeded
    ids = _grid(store)
    app = make()
    async with app.run_test(size=size) as pilot:
        await home(pilot, until)
        app.push_screen(CompareScreen(sorted(ids.values())))
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        chart = app.screen.query_one("#cmp-vary", Chart)
        assert chart.has_class("-shown") and chart.display
        assert "vs train.alpha" in chart.title and "a line per train.epsilon" in chart.title
        by_label = {s.label: s for s in chart.series}
        assert set(by_label) == {"train.epsilon=0.1", "train.epsilon=0.25"}
        s25 = by_label["train.epsilon=0.25"]
        assert list(s25.xs) == [0.0, 0.5, 1.0] and [round(y, 6) for y in s25.ys] == [90.0, 75.0, 60.0]
        app.screen.query_one("#compare-scroll").scroll_to_widget(chart, animate=False)  # below the fold at 80×24
        await until(pilot, lambda: not chart.pending)
        assert "train.epsilon=0.25" in str(chart.render())  # drawn, with its legend
        # runs that are not a grid (the seeded ones differ in model, epochs, …): no such plot
        app.pop_screen()
        app.push_screen(CompareScreen([seeded_ids["softmax"], seeded_ids["maxout"]]))
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        assert not app.screen.query_one("#cmp-vary", Chart).has_class("-shown")
