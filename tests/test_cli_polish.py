"""Issue 14's CLI polish: --version, -h, the shipped configs listed and found by name from any directory."""

from __future__ import annotations

import sys
from pathlib import Path

from _helpers import main_in_process

from tui_adv import __version__
from tui_adv import config as config_mod

REPO = Path(__file__).resolve().parents[1]


def test_version_and_short_help(capsys):
    code, out, _err = main_in_process(capsys, "--version")
    assert code == 0 and out.strip() == f"adv-tui {__version__}"
    code, out, _err = main_in_process(capsys, "-h")
    assert code == 0 and "opens the dashboard" in out
    code, out, _err = main_in_process(capsys, "report", "-h")
    assert code == 0 and "--figures" in out


def test_configs_lists_every_shipped_config(capsys):
    code, out, _err = main_in_process(capsys, "configs")
    assert code == 0
    names = {line.split()[0] for line in out.splitlines() if line and not line.startswith("(")}
    assert {p.stem for p in (REPO / "configs").glob("*.toml")} <= names
    assert "P01" in next(line for line in out.splitlines() if line.startswith("softmax "))


def test_a_config_is_found_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for arg in ("softmax", "softmax.toml", "configs/softmax.toml"):
        assert config_mod.resolve_config_path(arg) == REPO / "configs" / "softmax.toml"
    (tmp_path / "softmax.toml").write_text("x = 1\n")  # a file of that name here wins: a path is a path
    assert config_mod.resolve_config_path("softmax.toml") == Path("softmax.toml")
    assert config_mod.resolve_config_path("nope") == Path("nope")


def test_installed_configs_are_found_under_the_prefix(tmp_path, monkeypatch):
    """Where `pip install .` puts them (pyproject's data-files: <prefix>/share/adv-tui/configs), when
    there is no checkout beside the package."""
    share = tmp_path / "share" / "adv-tui" / "configs"
    share.mkdir(parents=True)
    (share / "softmax.toml").write_text((REPO / "configs" / "softmax.toml").read_text())
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    fake_pkg = tmp_path / "site" / "tui_adv"
    fake_pkg.mkdir(parents=True)
    monkeypatch.setattr("tui_adv.config.load.PACKAGE", fake_pkg)  # no checkout beside the package
    assert config_mod.shipped_config_dirs()[0] == share
    assert config_mod.config_dir() == share
    assert "data-files" in (REPO / "pyproject.toml").read_text() and '"share/adv-tui/configs" = ["configs/*.toml"]' in (REPO / "pyproject.toml").read_text()


def test_a_not_run_row_of_the_scorecard_names_the_command_that_fills_it(capsys, store, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _err = main_in_process(capsys, "report", "--db", store.url, "--profile", "quick")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("│ P02 "))
    assert "NOT RUN" in row and "(run: adv-tui reproduce --profile quick --only P02)" in row


def test_runs_show_reads_as_one_report(capsys, store, tmp_path, monkeypatch):
    """One header (not repeated as the table's title); final metrics in percent where they are rates,
    not ``clean_error=0.0479``; the run's own reading first and marked even when another reading was
    stored first; and a stopped run says what to do next (``adv-tui resume ID``)."""
    import json

    monkeypatch.setenv("COLUMNS", "120")
    pts = [{"epsilon": e, "accuracy": 1 - err, "error": err, "mean_confidence": 0.9, "mean_confidence_wrong": 0.8, "n": 100, "n_wrong": int(100 * err)}
           for e, err in ((0.0, 0.0479), (0.25, 0.9))]
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"x")
    rid = store.create_run(name="maxout", experiment="maxout", config_json="{}", status="cancelled", checkpoint_path=str(ckpt),  # noqa: E501
                           summary_json=json.dumps({"reading": "eval+clip", "clean_error": 0.0479, "epochs_run": 7, "lr": 0.0978})).id
    store.add_sweep_points(rid, "fgsm", "true", [{**p, "error": min(1.0, p["error"] + 0.05)} for p in pts], clip=False)  # stored first
    store.add_sweep_points(rid, "fgsm", "true", pts, clip=True)
    code, out, err = main_in_process(capsys, "runs", "show", str(rid), "--db", store.url)
    assert code == 0, err
    assert out.count(f"run {rid} ·") == 1, out
    assert "clean_error=" not in out and "4.79%" in out and "epochs_run" in out
    rows = [line for line in out.splitlines() if "eval gradient" in line]
    assert rows[0].lstrip("│ ").startswith("★ eval gradient, clipped") and "★" not in rows[1], rows
    assert f"adv-tui resume {rid}" in out
    ckpt.unlink()
    code, out, _ = main_in_process(capsys, "runs", "show", str(rid), "--db", store.url)
    flat = " ".join(out.split())  # the hint wraps at the terminal width
    assert code == 0 and "cannot be resumed" in flat and f"adv-tui resume {rid}" not in flat


def test_runs_list_fits_80_columns_without_cutting_a_value(capsys, store, monkeypatch):
    """At 80 columns every shown cell is whole (no ``soft…``): columns are dropped (experiment, device,
    progress into the status…) until the table fits, and the headline numbers always stay."""
    names = ["quick:maxout_sigmoid", "softmax", "maxout1600_adv@s1"]
    for i, name in enumerate(names):
        run = store.create_run(name=name, experiment=name.split(":")[-1], config_json="{}", status="completed" if i else "interrupted",
                               device="cpu")
        store.update_run(run.id, clean_error=0.0222 + i / 100, fgsm_error=0.949, progress=1.0 if i else 0.6)
    for cols in ("80", "200"):
        monkeypatch.setenv("COLUMNS", cols)
        code, out, _ = main_in_process(capsys, "runs", "list", "--db", store.url)
        assert code == 0 and "…" not in out, out
        title, *table = out.splitlines()
        assert title.startswith("3 of 3 runs · ") and store.safe_url in title  # one line: the terminal wraps a long URL
        assert max(len(line) for line in table) <= int(cols)
        for name in names:
            assert name in out
        assert "2.22%" in out and "94.90%" in out and "interrupted 60%" in out if cols == "80" else "experiment" in out
