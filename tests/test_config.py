"""Config validation: shipped configs, errors naming the key path, --set overrides, a fuzz test."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui_adv.config import RunConfig, apply_overrides, config_from_json, load_config, parse_value, validate
from tui_adv.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "configs").glob("*.toml"))
REQUIRED = {"softmax", "logreg_3v7", "maxout", "maxout_adv"}
BASE = {"name": "t", "model": {"kind": "softmax"}}


def _err(raw: dict) -> str:
    with pytest.raises(UserError) as ei:
        validate(raw, "cfg.toml")
    msg = str(ei.value)
    assert "\n" not in msg, "errors must be one line"
    assert msg.startswith("invalid config cfg.toml: ")
    return msg


def _with(path: str, value) -> dict:
    return apply_overrides(BASE, [f"{path}={value}"])


# ---------------------------------------------------------------------------------------- shipped
def test_required_configs_ship():
    assert REQUIRED <= {p.stem for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    assert cfg.name == tomllib.loads(path.read_text()).get("name", path.stem)
    assert cfg.sweep.enabled
    assert 0.0 in cfg.sweep.epsilons, "every sweep includes the clean point"
    if path.stem in REQUIRED:
        assert 0.25 in cfg.sweep.epsilons, "the paper's configs end with a sweep over ε = 0 and .25"
    # stored as JSON on the run and read back identically
    assert config_from_json(cfg.to_json()) == cfg


def test_shipped_configs_match_their_claims():
    assert load_config(REPO / "configs/logreg_3v7.toml").data.pair == (3, 7)
    assert load_config(REPO / "configs/logreg_3v7.toml").model.kind == "logistic"
    maxout = load_config(REPO / "configs/maxout.toml")
    assert maxout.model.kind == "maxout" and maxout.model.units == 240
    adv = load_config(REPO / "configs/maxout_adv.toml")
    assert adv.train.mode == "adversarial" and adv.train.alpha == 0.5 and adv.train.epsilon == 0.25


# ---------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "raw,key",
    [
        ({**BASE, "bogus": 1}, "bogus: unknown key"),
        (_with("train.bogus", 1), "train.bogus: unknown key"),
        (_with("train.early_stopping.bogus", 1), "train.early_stopping.bogus: unknown key"),
        (_with("train.epochs", '"ten"'), "train.epochs"),
        (_with("train.epochs", 2.5), "train.epochs"),
        (_with("train.lr", 0), "train.lr"),
        (_with("train.epsilon", -0.1), "train.epsilon"),
        (_with("train.alpha", 1.5), "train.alpha"),
        (_with("train.alpha", -0.01), "train.alpha"),
        (_with("train.mode", "bogus"), "train.mode"),
        (_with("sweep.epsilons", "[0, -0.1]"), "sweep.epsilons.1"),
        (_with("sweep.epsilons", "[]"), "sweep.epsilons"),
        (_with("sweep.epsilons", "[0, nan]"), "sweep.epsilons"),
        (_with("sweep.epsilons", "0.1"), "sweep.epsilons"),
        (_with("sweep.sample_epsilons", "[inf]"), "sweep.sample_epsilons"),
        (_with("sweep.labels", "gold"), "sweep.labels"),
        (_with("data.pair", "[3, 3]"), "data.pair"),
        (_with("data.pair", "[3, 11]"), "data.pair"),
        (_with("data.train_limit", 0), "data.train_limit"),
        (_with("model.kind", "resnet"), "model.kind"),
        (_with("model.units", 10), "model"),  # a maxout knob on a softmax model
        (_with("device", "tpu"), "device"),
        ({"model": {"kind": "softmax"}}, "name: required key is missing"),
        ({"name": "t"}, "model: required key is missing"),
        ({"name": "t", "model": {"kind": "logistic"}}, "data.pair"),
        ({"name": "t", "model": {"kind": "maxout"}, "train": {"mode": "analytic"}}, "analytic"),
        ({**BASE, "train": {"early_stopping": {"patience": 3}}}, "data.validation"),
        (_with("train.early_stopping.metric", "loss"), "train.early_stopping.metric"),
        ({**BASE, "train": {"epochs": 2, "augment_after": 3}}, "augment_after"),
        ({**BASE, "train": 5}, "train"),
    ],
)
def test_invalid_values_name_the_key(raw, key):
    assert key in _err(raw)


def test_several_errors_reported_together():
    msg = _err({**BASE, "train": {"alpha": 2, "epsilon": -1}})
    assert "train.alpha" in msg and "train.epsilon" in msg


def test_valid_edge_values_accepted():
    cfg = validate(apply_overrides(BASE, ["train.alpha=0", "train.epsilon=0", "sweep.epsilons=[0]", "train.epochs=0"]))
    assert cfg.train.alpha == 0 and cfg.train.epsilon == 0 and cfg.sweep.epsilons == [0.0]
    assert validate(_with("train.alpha", 1)).train.alpha == 1.0


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found") as ei:
        load_config(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in str(ei.value)


def test_malformed_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('name = "x"\n[model\nkind = "softmax"\n')
    with pytest.raises(UserError, match="malformed TOML") as ei:
        load_config(p)
    assert str(p) in str(ei.value)


def test_binary_garbage_file(tmp_path):
    p = tmp_path / "garbage.toml"
    p.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(UserError) as ei:
        load_config(p)
    assert str(p) in str(ei.value)


def test_invalid_file_message_names_file_and_key(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[model]\nkind = "softmax"\n[train]\nalpha = 3\n')
    with pytest.raises(UserError) as ei:
        load_config(p)
    assert str(p) in str(ei.value) and "train.alpha" in str(ei.value)
    assert load_config(p, ["train.alpha=0.3"]).train.alpha == 0.3
    assert load_config(p, ["train.alpha=0.3"]).name == "c"  # the file's stem when no name is given


# ---------------------------------------------------------------------------------------- --set
def test_set_overrides_types():
    raw = apply_overrides(
        BASE,
        [
            "train.epochs=5",
            "train.lr=0.05",
            "train.eval_adv=false",
            "sweep.epsilons=[0, 0.1, .25]",
            'name="quoted name"',
            "experiment=bare_word",
            "train.early_stopping.patience=3",  # creates the nested table
            "data.validation=true",
            "data.pair=[3, 7]",
            "model.kind=logistic",
        ],
    )
    cfg = validate(raw)
    assert cfg.train.epochs == 5 and isinstance(raw["train"]["epochs"], int)
    assert cfg.train.lr == 0.05
    assert cfg.train.eval_adv is False
    assert cfg.sweep.epsilons == [0.0, 0.1, 0.25]
    assert cfg.name == "quoted name" and cfg.experiment == "bare_word"
    assert cfg.train.early_stopping is not None and cfg.train.early_stopping.patience == 3
    assert cfg.data.pair == (3, 7) and cfg.model.kind == "logistic"
    assert BASE == {"name": "t", "model": {"kind": "softmax"}}, "overrides must not modify their input"


def test_set_last_wins_and_whitespace():
    raw = apply_overrides(BASE, ["train.epochs=5", " train.epochs = 7 "])
    assert validate(raw).train.epochs == 7


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2] and parse_value('"a b"') == "a b" and parse_value("word") == "word"
    assert parse_value("configs/x.toml") == "configs/x.toml"
    # numbers written with a bare leading dot, as in the README's `--set sweep.epsilons=[0,.1,.25]`
    assert parse_value(".25") == 0.25 and parse_value("-.5") == -0.5
    assert parse_value("[0,.1,.25]") == [0, 0.1, 0.25]
    assert parse_value('".25"') == ".25" and parse_value("run.5") == "run.5"


@pytest.mark.parametrize("item", ["train.epochs", "=5", "...=5"])
def test_set_malformed(item):
    with pytest.raises(UserError, match="--set"):
        apply_overrides(BASE, [item])


def test_set_through_a_scalar():
    with pytest.raises(UserError, match="not a table"):
        apply_overrides({**BASE, "train": {"epochs": 3}}, ["train.epochs.x=1"])


def test_set_unknown_key_is_rejected_by_validation(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[model]\nkind = "softmax"\n')
    with pytest.raises(UserError, match=r"train\.epoch: unknown key"):
        load_config(p, ["train.epoch=5"])


# ---------------------------------------------------------------------------------------- fuzz
KEYS = ["name", "model", "kind", "train", "data", "sweep", "epochs", "alpha", "epsilon", "pair", "epsilons", "units",
        "early_stopping", "metric", "patience", "mode", "lr", "labels", "device", "seed", "x"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["softmax", "logistic", "maxout", "rbf", "inception", "adversarial", "analytic", "true", "cpu"]),
    st.binary(max_size=4),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner, max_size=5),
    ),
    max_leaves=12,
)
configs = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), values, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_fuzz_validate_raises_only_user_error(raw):
    try:
        cfg = validate(raw)
    except UserError as e:
        assert str(e).startswith("invalid config")
    else:
        assert isinstance(cfg, RunConfig)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["train", "data", "sweep", "model", "train.early_stopping"]),
            st.sampled_from(KEYS),
            values,
        ),
        max_size=4,
    )
)
def test_fuzz_values_on_a_valid_base(edits):
    """A valid config with random values at real key paths: valid or UserError, nothing else;
    and whatever validates keeps the documented invariants."""
    raw = {"name": "t", "model": {"kind": "softmax"}, "train": {}, "data": {}, "sweep": {}}
    for table, key, value in edits:
        node = raw
        for part in table.split("."):
            node = node.setdefault(part, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node[key] = value
    try:
        cfg = validate(raw)
    except UserError:
        return
    t, s = cfg.train, cfg.sweep
    assert 0 <= t.alpha <= 1 and t.epsilon >= 0 and t.lr > 0
    assert s.epsilons and all(e >= 0 and math.isfinite(e) for e in s.epsilons)
    assert config_from_json(cfg.to_json()) == cfg


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
def test_fuzz_set_overrides(key, value):
    """Any --set text either applies or raises UserError (from apply_overrides or validate)."""
    try:
        validate(apply_overrides(BASE, [f"{key}={value}"]))
    except UserError:
        pass
