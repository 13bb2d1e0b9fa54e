"""The dashboard shows the dataset of each run (history column, `dataset:NAME` filter, compare legend)
and draws CIFAR-10's colour perturbation views; a catalog of MNIST runs only looks as it did."""

from __future__ import annotations

import json

from textual.widgets import DataTable, Input

from tui_adv.tui.screens.compare import CompareScreen
from tui_adv.tui.widgets.digit import Digit, colour_image_text

from .test_screens import home, table_ids


def _add(store, name: str, dataset: str) -> int:
    cfg = {"name": name, "data": {"dataset": dataset}, "model": {"kind": "conv_maxout" if dataset == "cifar10" else "softmax"}}
    run = store.create_run(name=name, experiment=name, config_json=json.dumps(cfg, sort_keys=True), status="completed")
    return int(run.id)


def _columns(app) -> list[str]:
    return [c.key.value for c in app.screen.query_one("#runs-table", DataTable).columns.values()]


async def test_dataset_column_and_filter(make, seeded, until):
    store, ids = seeded
    app = make()
    async with app.run_test(size=(160, 40)) as pilot:
        await home(pilot, until)
        assert "dataset" not in _columns(app)  # MNIST only: the history looks as it always did
    fashion = _add(store, "fash", "fashion_mnist")
    cifar = _add(store, "cif", "cifar10")
    app = make()
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await home(pilot, until)
        await until(pilot, lambda: cifar in table_ids(app))
        assert "dataset" in _columns(app)
        t = screen.query_one("#runs-table", DataTable)
        assert str(t.get_cell(str(fashion), "dataset")) == "fashion_mnist" and str(t.get_cell(str(cifar), "dataset")) == "cifar10"
        assert str(t.get_cell(str(ids["softmax"]), "dataset")) == "mnist"
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"dataset:fashion_mnist")
        await until(pilot, lambda: table_ids(app) == [fashion])
        await pilot.press("escape")
        await until(pilot, lambda: len(table_ids(app)) == len(ids) + 2)
        await pilot.press("slash", *"data:mnist")
        await until(pilot, lambda: sorted(table_ids(app)) == sorted(ids.values()))


async def test_compare_legend_names_the_datasets(make, seeded, until):
    store, ids = seeded
    cifar = _add(store, "cif", "cifar10")
    app = make()
    async with app.run_test(size=(160, 48)) as pilot:
        await home(pilot, until)
        app.push_screen(CompareScreen([ids["softmax"], cifar]))
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        legend = app.screen.query_one("#compare-legend", DataTable)
        assert "data" in [c.key.value for c in legend.columns.values()]
        assert str(legend.get_cell(str(cifar), "data")) == "cifar10" and str(legend.get_cell(str(ids["softmax"]), "data")) == "mnist"


def test_colour_image_text():
    img = bytes([200] * 1024 + [10] * 1024 + [30] * 1024)
    text = colour_image_text(img)
    assert text.plain.splitlines() == ["▀" * 32] * 16
    assert tuple(text.spans[0].style.color.triplet) == (200, 10, 30)
    d = Digit()
    d.show(img, "c")
    assert d._values is not None and d.styles.width.value == 34
    d.show(bytes(100), "c")
    assert d._values is None and "damaged" in d._caption
