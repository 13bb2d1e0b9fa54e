"""The headless services both front ends call: configs offered through the validated model, the run
document and export, resuming in the background, the scorecard rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui_adv.config import SweepConfig, TrainConfig, load_config
from tui_adv.services import launch
from tui_adv.services.scorecard import row_run_ids, scorecard_rows

REPO = Path(__file__).resolve().parents[1]


def test_every_shipped_config_is_offered_with_its_validated_values():
    infos = launch.list_configs([REPO / "configs"])
    assert infos and all(i.error is None for i in infos), [i.error for i in infos if i.error]
    for info in infos:
        cfg = load_config(info.path)
        assert (info.name, info.epochs, info.epsilons, info.alpha, info.mode, info.model) == (
            cfg.name, cfg.train.epochs, cfg.sweep.epsilons, cfg.train.alpha, cfg.train.mode, cfg.model.kind,
        )


def test_a_config_without_keys_shows_the_models_defaults_and_a_broken_one_its_error(tmp_path):
    (tmp_path / "bare.toml").write_text('[model]\nkind = "softmax"\n')
    (tmp_path / "typo.toml").write_text('[model]\nkind = "softmax"\n[train]\nepoch = 3\n')
    bare, typo = launch.list_configs([tmp_path])
    assert bare.error is None and bare.name == "bare"
    assert bare.epochs == TrainConfig().epochs and bare.alpha == TrainConfig().alpha
    assert bare.epsilons == SweepConfig().epsilons
    assert typo.error is not None and "train.epoch" in typo.error and typo.name == "typo"


def test_resume_in_the_background_refuses_in_its_log(tmp_path, monkeypatch):
    """A detached resume of a run that does not exist: the child's one-line refusal is in its log."""
    from tui_adv.catalog import Store
    from tui_adv.services.runs import resume_detached

    monkeypatch.setattr(launch, "launch_log_dir", lambda: tmp_path / "logs")
    store = Store(str(tmp_path / "r.db"))
    launched = resume_detached(store, 7)
    assert launched.popen.wait(timeout=120) == 2
    assert launched.argv[-4:] == ["resume", "7", "--headless", "--quiet"]
    assert "adv-tui: error:" in launched.log_tail() and "7" in launched.log_tail()


def test_scorecard_rows_are_the_claims_results(tmp_path):
    from tui_adv.catalog import Store
    from tui_adv.claims import CLAIMS

    rows, note = scorecard_rows(Store(str(tmp_path / "r.db")))
    assert note == "" and len(rows) == len(CLAIMS)
    assert all(r["verdict"] == "NOT RUN" and row_run_ids(r) == [] for r in rows)
    assert json.loads(json.dumps(rows))  # plain data, ready for a table or --json
    assert row_run_ids({"runs": [3, "4", None]}) == [3, 4]


@pytest.mark.parametrize("name", ["x.txt", "x"])
def test_export_names_its_format_or_refuses(name, tmp_path):
    from tui_adv.errors import UserError
    from tui_adv.services.export import format_of

    assert format_of("a.CSV") == "csv" and format_of("b.json") == "json"
    with pytest.raises(UserError, match=r"\.json or \.csv"):
        format_of(tmp_path / name)
