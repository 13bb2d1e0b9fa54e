"""`adv-tui report --figures DIR`: the paper's figures drawn from a miniature suite of real (tiny) runs.

The suite is the quick profile's step keys with tiny overrides, run through the real Reproducer; the
figures module finds the runs the way the scorecard does and must draw every figure from them, as PNG
(a real image of a sensible size) and SVG."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tui_adv import figures as fg
from tui_adv import reproduce as rp
from tui_adv.catalog.store import Store

pytest.importorskip("matplotlib")

SMALL = {"data.train_limit": 600, "data.test_limit": 300, "train.epochs": 1, "sweep.epsilons": [0.0, 0.1, 0.25], "sweep.samples": 4,
         "sweep.sample_epsilons": [0.25], "train.eval_limit": None}
TINY_MAXOUT = {**SMALL, "model.units": 6, "model.pieces": 2, "sweep.matrix_masks": 1}


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def mini_catalog(tmp_path_factory, mnist_root):
    steps = [
        rp.Step("softmax", "softmax.toml", SMALL, claims=["P01"]),
        rp.Step("logreg_3v7", "logreg_3v7.toml", SMALL, claims=["P03"]),
        rp.Step("maxout", "maxout.toml", TINY_MAXOUT, claims=["P02"]),
        rp.Step("maxout_adv", "maxout_adv.toml", TINY_MAXOUT, claims=["P06"]),
        rp.Step("logit_curve", analysis="logit_curve", parents={"model": "maxout"}, params={"digit": 4}, claims=["P20"]),
    ]
    mp = pytest.MonkeyPatch()
    mp.setattr(rp.orchestrator, "suite", lambda profile: steps)
    try:
        store = Store(str(tmp_path_factory.mktemp("fig") / "runs.db"))
        ids = rp.Reproducer(store, "quick", data_dir=str(mnist_root), device="cpu").run()
    finally:
        mp.undo()
    assert set(ids) == {s.key for s in steps}
    return store, ids


def test_every_figure_is_drawn_as_png_and_svg(mini_catalog, tmp_path):
    store, ids = mini_catalog
    out = tmp_path / "figs"
    figs = fg.write_figures(store, out, "quick")
    by = {f.name: f for f in figs}
    assert set(by) == {"accuracy_vs_eps", "fig2_logreg_3v7", "fig3_maxout_filters", "fig4_logits", "digits"}
    for f in figs:
        assert f.missing is None, (f.name, f.missing)
        assert sorted(p.suffix for p in f.files) == [".png", ".svg"]
        w, h = _png_size(out / f"{f.name}.png")
        assert w >= 300 and h >= 150, (f.name, w, h)
        assert "<svg" in (out / f"{f.name}.svg").read_text()[:2000]
        assert f.caption and f.runs
    # each figure names the runs it was drawn from
    assert set(by["accuracy_vs_eps"].runs) == {ids["softmax"], ids["logreg_3v7"], ids["maxout"], ids["maxout_adv"]}
    assert by["fig2_logreg_3v7"].runs == [ids["logreg_3v7"]]
    assert by["fig3_maxout_filters"].runs == [ids["maxout"], ids["maxout_adv"]]
    assert by["fig4_logits"].runs == [ids["logit_curve"]]
    # the paper's points are drawn and named in the caption's readings
    assert "maxout: eval-mode gradient, unclipped" in by["accuracy_vs_eps"].caption
    svg = (out / "accuracy_vs_eps.svg").read_text()
    for claim in ("P01", "P02", "P09"):
        assert claim in svg


def test_an_empty_catalog_draws_nothing_and_says_which_command_fills_each(tmp_path):
    store = Store(str(tmp_path / "empty.db"))
    figs = fg.write_figures(store, tmp_path / "figs", "quick")
    assert all(not f.files and f.missing and "adv-tui reproduce --only" in f.missing for f in figs)
    assert list((tmp_path / "figs").iterdir()) == []
    md = "\n".join(fg.markdown_section(figs))
    assert "Not drawn:" in md and "![" not in md


def test_markdown_embeds_each_png_with_its_caption(mini_catalog, tmp_path):
    store, _ids = mini_catalog
    out = tmp_path / "figs"
    figs = fg.write_figures(store, out, "quick")
    md = "\n".join(fg.markdown_section(figs, relative_to=tmp_path))
    for f in figs:
        assert f"![{f.title}](figs/{f.name}.png)" in md
        assert f.caption in md


def test_a_directory_that_cannot_be_made_is_one_clear_error(tmp_path):
    from tui_adv.errors import UserError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create the figures directory"):
        fg.write_figures(Store(str(tmp_path / "e.db")), blocker / "sub", "quick")


def test_report_figures_writes_them_and_markdown_embeds_them(mini_catalog, tmp_path, capsys, monkeypatch):
    from _helpers import main_in_process

    store, _ids = mini_catalog
    monkeypatch.chdir(tmp_path)
    code, out, err = main_in_process(capsys, "report", "--db", store.url, "--profile", "quick", "--markdown", "--figures", "figs")
    assert code == 0, err
    assert "## Figures" in out and "![Fig. 4: logits along one FGSM direction" in out and "(figs/fig4_logits.png)" in out
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(f"{n}.{e}" for n in fg.FIGURES_NAMES for e in ("png", "svg"))
    assert err.count("adv-tui: figure ") == 5


def test_report_figures_into_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    from _helpers import main_in_process

    (tmp_path / "f").write_text("x")
    code, _out, err = main_in_process(capsys, "report", "--db", str(tmp_path / "e.db"), "--figures", str(tmp_path / "f" / "sub"))
    assert code == 2 and err.count("\n") == 1 and "cannot create the figures directory" in err
