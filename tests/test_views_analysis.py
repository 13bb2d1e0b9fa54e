"""Text renderings of the P20 logit curve and the P21 weight images (tui_adv.views), and `runs show` on
a catalog holding such runs. The artifacts come from real (small, untrained) models through the same
functions the reproduce suite stores (tui_adv.core.experiments)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from _helpers import main_in_process
from tui_adv.core import experiments as ex
from tui_adv.views import halfblock, logit_curve_chart, logit_winners, side_by_side, sign_image, weights_view

PLOT_ROW = re.compile(r"^\s*(-?[\d.]+)?[┤│](.*)│\s*$")


@pytest.fixture(scope="module")
def curve(mnist_small) -> dict:
    """P20 on a small softmax regression fitted for a moment (30 full-batch SGD steps on 1000 images)."""
    from conftest import build_tiny

    model = build_tiny("softmax", seed=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(mnist_small.train.x), mnist_small.train.y).backward()
        opt.step()
    return ex.logit_curve(model, mnist_small.test.x, mnist_small.test.y, digit=4)


@pytest.fixture(scope="module")
def weights() -> dict:
    from conftest import build_tiny

    return {
        "logreg_3v7": ex.weight_images(build_tiny("logistic", seed=1)),
        "maxout": ex.weight_images(build_tiny("maxout", seed=2)),
    }


def _plot_body(chart: str) -> str:
    """The characters drawn inside the plot frame."""
    return "".join(m.group(2) for line in chart.splitlines() if (m := PLOT_ROW.match(line)))


# ------------------------------------------------------------------------------------------------ P20
def test_logit_chart_axis_runs_from_minus_15_to_15(curve):
    chart = logit_curve_chart(curve, width=100, height=26)
    lines = chart.splitlines()
    axis = next(i for i, line in enumerate(lines) if line.lstrip().startswith("└"))
    ticks = [float(t) for t in lines[axis + 1].split()]
    assert ticks == [-15, -10, -5, 0, 5, 10, 15]
    assert "ε" in lines[axis + 2]
    assert "P20: logits of a '4'" in lines[0]
    assert max(len(line) for line in lines) <= 100


def _key_labels(chart: str) -> list[str]:
    key = chart.split("lines, each drawn with its class's digit: ")[1]
    key = key.split("\na wrong class")[0].replace("\n  ", " ")
    return [lab.strip() for lab in key.split(",")]


def test_logit_chart_has_ten_labelled_series(curve):
    chart = logit_curve_chart(curve, width=120, height=30)
    labels = _key_labels(chart)
    assert [lab.split()[0] for lab in labels] == [str(c) for c in range(10)]
    assert labels[4] == "4 true class"
    # the winning wrong class on each side of 0: the wrong class that is the argmax most often there
    logits, eps = torch.tensor(curve["logits"]), torch.tensor(curve["epsilons"])
    win = logit_winners(curve)
    for side, name, text in ((eps < 0, "wins_negative", "wins for ε < 0"), (eps > 0, "wins_positive", "wins for ε > 0")):
        pred = logits[side].argmax(dim=1)
        counts = torch.bincount(pred[pred != 4], minlength=10)
        if counts.sum() == 0:
            assert win[name] is None
            assert not any(text in lab for lab in labels)
        else:
            assert counts[win[name]] == counts.max()
            assert labels[win[name]] == f"{win[name]} {text}"
    assert win["wins_positive"] is not None  # FGSM (ε > 0) does fool this model
    # the highlighted lines are drawn last, so they are visible
    body = _plot_body(chart)
    assert "4" in body and str(win["wins_positive"]) in body
    frac = f"{100 * curve['wrong_fraction_abs_eps_ge_1']:.0f}%"
    assert f"a wrong class wins at {frac}" in chart.replace("\n  ", " ")


def test_logit_chart_draws_every_class_with_its_digit():
    """Ten well-separated lines: every digit is visible in the plot and the winners are labelled."""
    eps = [i / 4 for i in range(-60, 61)]
    logits = [[(c - 4.5) * 10 + (c - 4.5) * e * (1 if c != 4 else -3) for c in range(10)] for e in eps]
    chart = logit_curve_chart({"digit": 4, "epsilons": eps, "logits": logits}, width=100, height=40)
    assert {str(c) for c in range(10)} <= set(_plot_body(chart))
    labels = _key_labels(chart)
    # 9 has the largest logit for ε > −10 (0 for ε < −10): the same wrong class wins on both sides
    assert labels == ["0", "1", "2", "3", "4 true class", "5", "6", "7", "8", "9 wins (wrong class)"]


def test_logit_chart_fits_80_columns(curve):
    chart = logit_curve_chart(curve, width=78, height=22)
    assert max(len(line) for line in chart.splitlines()) <= 78
    assert "\x1b[" not in chart  # colours off: plain text


def test_logit_winners_true_class_always_winning():
    eps = [-2.0, -1.0, 0.0, 1.0, 2.0]
    curve = {"digit": 1, "epsilons": eps, "logits": [[0.0, 5.0, e] for e in eps]}
    assert logit_winners(curve) == {"true": 1, "wins_negative": None, "wins_positive": None, "wrong_fraction_abs_eps_ge_1": 0.0}
    assert "true class" in logit_curve_chart(curve)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {},
        {"epsilons": [0, 1], "logits": [[1, 2]]},
        {"epsilons": [0, 1], "logits": [[1, 2], [1]]},
        {"epsilons": [0, 1], "logits": [[1, 2], [1, "x"]]},
        {"epsilons": [0, float("nan")], "logits": [[1, 2], [1, 2]]},
        {"epsilons": [1, 1], "logits": [[1, 2], [1, 2]]},
        {"epsilons": "0,1", "logits": [[1, 2], [1, 2]]},
    ],
)
def test_malformed_logit_curve_is_a_one_line_value_error(bad):
    with pytest.raises(ValueError) as e:
        logit_curve_chart(bad)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ P21
def _image_block(lines: list[str], heading: str) -> tuple[str, list[str]]:
    """(titles line, the 14 image rows) following the heading line that starts with ``heading``."""
    i = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = lines[i + 2 : i + 16]
    assert len(rows) == 14
    assert i + 16 == len(lines) or lines[i + 16] == ""  # a blank line, then the next role
    return lines[i + 1], rows


def test_weights_view_images_titles_and_localization(weights):
    lines = weights_view(weights, width=160)
    text = "\n".join(lines)
    assert text.startswith("P21: first-layer weights")
    for role, data in weights.items():
        assert f"{role}: localization {data['localization']:.3f}" in text
    # logistic regression: |w| and sign(w) side by side, 14 half-block rows for 28×28
    titles, rows = _image_block(lines, "logreg_3v7: localization")
    assert titles.split() == ["|w|", "sign(w)"]
    blank = halfblock([0.0] * 784, scale=1.0)
    expected = [line.rstrip() for line in side_by_side([blank, sign_image(bytes(v + 1 for v in weights["logreg_3v7"]["signs"][0]))], ["|w|", "sign(w)"])[1:]]
    assert [r[31:] for r in rows] == [e[31:] for e in expected]  # the sign image is exactly sign_image of the stored signs
    assert all(len(r) <= 28 + 3 + 28 for r in rows)
    # maxout: 16 stored filters, as many as fit in 160 columns (5) shown, each 28 wide and 14 rows high
    titles, rows = _image_block(lines, "maxout: localization")
    assert "16 filters, the first 5 shown" in text
    assert titles.split() == ["|w|", "#0", "|w|", "#1", "|w|", "#2", "|w|", "#3", "|w|", "#4"]
    assert all(len(r) <= 5 * 28 + 4 * 3 for r in rows)
    assert max(len(line) for line in lines) <= 160


def test_weights_view_at_80_columns(weights):
    lines = weights_view(weights, width=80)
    assert max(len(line) for line in lines) <= 80
    assert "16 filters, the first 2 shown" in "\n".join(lines)


def test_weights_view_magnitude_image_marks_the_large_weights():
    """A filter whose only large weights sit in the top-left 4×4 pixels: the |w| image is ink there only."""
    w = torch.full((1, 784), 0.001)
    w[0, [r * 28 + c for r in range(4) for c in range(4)]] = -1.0
    model = type("M", (torch.nn.Module,), {"first_layer_weight": lambda self: w})()
    lines = weights_view({"one": ex.weight_images(model)}, width=80)
    _titles, rows = _image_block(lines, "one: localization")
    img = [r[:28].ljust(28) for r in rows]
    assert img[0][:4] == "████" and img[1][:4] == "████"
    assert all(ch == " " for r, line in enumerate(img) for c, ch in enumerate(line) if r >= 2 or c >= 4)
    sign = [r[31:].ljust(28) for r in rows]
    assert sign[0][:4] == "    " and sign[5][10:14] == "████"  # negative blank, positive █


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {},
        {"maxout": [1, 2]},
        {"maxout": {"filters": []}},
        {"maxout": {"filters": [[0.5] * 783]}},
        {"maxout": {"filters": [[0.5] * 784], "signs": [[2] * 784]}},
        {"maxout": {"filters": [[0.5] * 784], "signs": [[1] * 784, [1] * 784]}},
        {"maxout": {"filters": [[None] * 784]}},
    ],
)
def test_malformed_weights_are_a_one_line_value_error(bad):
    with pytest.raises(ValueError) as e:
        weights_view(bad)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ runs show
def test_runs_show_draws_the_analyses(capsys, store, catalog_url, curve, weights, monkeypatch):
    def add(experiment: str, kind: str, data) -> int:  # noqa: ANN001
        run = store.create_run(name=f"quick:{experiment}", experiment=experiment, profile="quick", config_json=json.dumps({"analysis": experiment}), status="completed")
        store.set_artifact(run.id, kind, data)
        return int(run.id)

    lc = add("logit_curve", "logit_curve", curve)
    wt = add("weights", "weights", weights)
    bad_lc = add("logit_curve", "logit_curve", {"epsilons": [0, 1], "logits": "oops"})
    bad_wt = add("weights", "weights", {"maxout": {"filters": [[1, 2, 3]]}})

    monkeypatch.setenv("COLUMNS", "160")
    code, out, err = main_in_process(capsys, "runs", "show", str(lc), "--db", catalog_url)
    assert code == 0, err
    assert "P20: logits of a '4'" in out and "4 true class" in out
    assert re.search(r"^\s*-15\s+-10\s+-5\s+0\s+5\s+10\s+15\s*$", out, re.M)
    assert "P21" not in out

    code, out, err = main_in_process(capsys, "runs", "show", str(wt), "--db", catalog_url)
    assert code == 0, err
    assert f"logreg_3v7: localization {weights['logreg_3v7']['localization']:.3f}" in out
    assert "16 filters, the first 5 shown" in out
    assert max(len(line) for line in out.splitlines()) <= 160

    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = main_in_process(capsys, "runs", "show", str(wt), "--db", catalog_url)
    assert code == 0, err
    assert "16 filters, the first 2 shown" in out
    assert max(len(line) for line in out.splitlines()) <= 80

    for run_id, note in ((bad_lc, "(P20 logit curve not drawn: "), (bad_wt, "(P21 weight images not drawn: ")):
        code, out, err = main_in_process(capsys, "runs", "show", str(run_id), "--db", catalog_url)
        assert code == 0, err
        assert "Traceback" not in out + err
        assert sum(line.startswith(note) for line in out.splitlines()) == 1, out

    code, out, err = main_in_process(capsys, "runs", "show", "9999", "--db", catalog_url)
    assert code == 2
    assert err.startswith("adv-tui: error: no run with id 9999") and len(err.strip().splitlines()) == 1
