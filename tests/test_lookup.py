"""Finding the newest run of an experiment is one indexed query on the stored identity key: it finds
runs made by any command, rows of a catalog upgraded from before the key existed, rows stamped by
another rule, and the same rows in a catalog this process cannot write."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sqlalchemy import text

from tui_adv.catalog import Store
from tui_adv.catalog.lookup import identity_fields
from tui_adv.choices import RunStatus
from tui_adv.errors import UserError
from tui_adv.config.identity import IDENTITY_RULE, identity_key
from tui_adv.reproduce import find_completed, find_resumable, step_config, suite

DATA = Path(__file__).parent / "data" / "catalog_schema3.sql"


def _softmax_step_json() -> str:
    (step,) = [s for s in suite("quick") if s.key == "softmax"]
    return step_config(step, "quick").to_json()


def _relabelled(config_json: str, **labels: object) -> str:
    raw = json.loads(config_json)
    raw.update(labels)
    return json.dumps(raw, sort_keys=True)


def test_the_newest_completed_run_of_an_experiment_whatever_made_it(tmp_path):
    s = Store(str(tmp_path / "runs.db"))
    cfg = _softmax_step_json()
    by_hand = _relabelled(cfg, name="my softmax", experiment="mine", profile=None, claims=[])
    other = _relabelled(cfg, seed=12345)  # another seed: another experiment
    a = s.create_run(name="a", experiment="mine", config_json=by_hand, status=RunStatus.COMPLETED)
    b = s.create_run(name="b", experiment="softmax", profile="quick", config_json=other, status=RunStatus.COMPLETED)
    s.create_run(name="c", experiment="softmax", profile="quick", config_json=cfg, status=RunStatus.FAILED)
    assert a.identity == identity_key(cfg) and a.identity_rule == IDENTITY_RULE
    assert find_completed(s, "softmax", "quick", cfg).id == a.id  # labels do not make it another experiment
    d = s.create_run(name="d", experiment="softmax", profile="quick", config_json=cfg, status=RunStatus.COMPLETED)
    assert find_completed(s, "softmax", "quick", cfg).id == d.id  # the newest wins
    # without a config: the newest completed run the profile recorded under the key
    assert find_completed(s, "softmax", "quick").id == d.id
    assert find_completed(s, "softmax", "standard") is None
    # a row whose stored config is rewritten is found as what it now says
    s.update_run(int(d.id), config_json=other)
    assert find_completed(s, "softmax", "quick", cfg).id == a.id and find_completed(s, "softmax", "quick", other).id == d.id
    # the light index the scorecard resolves from: newest first, the same keys
    assert [(rid, key) for rid, key, *_ in s.run_keys()][:2] == [(d.id, identity_key(other)), (b.id, identity_key(other))]


def test_a_stopped_run_with_its_checkpoint_file_is_resumable(tmp_path):
    s = Store(str(tmp_path / "runs.db"))
    cfg = _softmax_step_json()
    ck = tmp_path / "ck.pt"
    gone = s.create_run(name="gone", experiment="softmax", config_json=cfg, status=RunStatus.INTERRUPTED, checkpoint_path=str(tmp_path / "missing.pt"))
    assert find_resumable(s, cfg) is None
    ck.write_bytes(b"x")
    kept = s.create_run(name="kept", experiment="softmax", config_json=cfg, status=RunStatus.CANCELLED, checkpoint_path=str(ck))
    s.create_run(name="newer, no checkpoint", experiment="softmax", config_json=cfg, status=RunStatus.INTERRUPTED)
    assert find_resumable(s, cfg).id == kept.id != gone.id


def _upgraded(tmp_path: Path) -> Path:
    db = tmp_path / "runs.db"
    con = sqlite3.connect(db)
    con.executescript(DATA.read_text())
    con.close()
    Store(str(db)).close()  # upgraded in place to the head schema: the identity columns are NULL
    return db


def _config_of(db: Path, run_id: int) -> str:
    return sqlite3.connect(db).execute("SELECT config_json FROM runs WHERE id = ?", (run_id,)).fetchone()[0]


def test_rows_of_an_upgraded_catalog_are_found_and_get_their_key(tmp_path):
    db = _upgraded(tmp_path)
    assert sqlite3.connect(db).execute("SELECT identity, identity_rule FROM runs").fetchall() == [(None, None)] * 2
    cfg = _config_of(db, 2)
    s = Store(str(db))
    assert find_completed(s, "softmax", "quick", _relabelled(cfg, name="renamed")).id == 2
    assert sqlite3.connect(db).execute("SELECT identity_rule FROM runs").fetchall() == [(IDENTITY_RULE,)] * 2
    # and from then on it is the query alone: no row is stale any more
    assert s.refresh_identities() == 0


def test_rows_stamped_by_another_rule_are_recomputed(tmp_path):
    s = Store(str(tmp_path / "runs.db"))
    cfg = _softmax_step_json()
    run = s.create_run(name="a", experiment="softmax", config_json=cfg, status=RunStatus.COMPLETED)
    with s.engine.begin() as conn:  # as an adv-tui with another config model left it
        conn.execute(text("UPDATE runs SET identity = 'stale', identity_rule = 'other' WHERE id = :i"), {"i": run.id})
    fresh = Store(s.url)
    assert find_completed(fresh, "softmax", "quick", cfg).id == run.id
    assert fresh.get_run(run.id).identity == identity_key(cfg)


def test_a_catalog_this_process_cannot_write_finds_the_same_runs(tmp_path, monkeypatch):
    db = _upgraded(tmp_path)
    s = Store(str(db))

    def refused(*_a, **_k):  # what a read-only file or a read-only server role answers
        raise UserError(f"catalog {db} is read-only")

    monkeypatch.setattr(s, "_write", refused)
    assert [find_completed(s, "softmax", "quick", _config_of(db, i)).id for i in (1, 2)] == [1, 2]  # two seeds: two experiments
    assert [key for _rid, key, *_ in s.run_keys()] == [identity_key(_config_of(db, i)) for i in (2, 1)]
    assert sqlite3.connect(db).execute("SELECT identity FROM runs").fetchall() == [(None,)] * 2  # nothing written


def test_a_damaged_config_is_no_experiment():
    assert identity_fields("{not json") == {"identity": None, "identity_rule": IDENTITY_RULE}
    assert identity_fields('{"model": {"kind": "softmax"}}')["identity"] == identity_key('{"model": {"kind": "softmax"}}')
