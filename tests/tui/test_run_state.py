"""The dashboard's per-run state: one curve per attack reading, mask draws averaged as `runs show` does."""

from __future__ import annotations

import pytest

from tui_adv.catalog.schema import SweepPointRow
from tui_adv.tui.messages import RunDelta
from tui_adv.tui.screens.base import RunState


def _pt(eps, error, **reading):
    return SweepPointRow(run_id=1, attack="fgsm", labels="true", epsilon=eps, accuracy=1 - error, error=error, mean_confidence=0.9,
                         mean_confidence_wrong=0.8, n=100, n_wrong=int(100 * error), **reading)


def test_each_reading_is_one_curve_and_mask_draws_are_averaged():
    st = RunState()
    st.apply(RunDelta(run=None, sweep=[_pt(0.0, 0.02), _pt(0.25, 0.9), _pt(0.25, 0.95, clip=False)]))
    st.apply(RunDelta(run=None, sweep=[_pt(0.25, e, gradient="dropout", mask=m) for m, e in enumerate((0.6, 0.62, 0.64))]))
    curves = {key: pts for key, pts in st.sweep_points()}
    assert [k[2] for k in curves] == ["eval+clip", "dropout+clip ×3", "eval+noclip"]  # the default reading first
    by_short = {k[2]: (k[1], pts) for k, pts in curves.items()}
    desc, pts = by_short["dropout+clip ×3"]
    assert desc == "true labels, dropout gradient, mean of 3 mask draws"
    assert len(pts) == 1 and pts[0].error == pytest.approx(0.62) and pts[0].accuracy == pytest.approx(0.38)
    assert by_short["eval+noclip"][0] == "true labels, unclipped"
    assert [p.epsilon for p in by_short["eval+clip"][1]] == [0.0, 0.25]


def test_the_live_sweep_counter_counts_epsilons_not_readings():
    """The live screen's 'sweep k/n ε': k is how many ε the readings reached (it counted mask draws, so a
    sweep half done read 'sweep 1/12')."""
    from tui_adv.tui.model import sweep_done

    eps = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25]
    sweep = {("fgsm", "eval+clip"): {0: {e: object() for e in eps}},
             ("fgsm", "dropout+clip"): {m: {e: object() for e in eps[:4]} for m in range(3)}}
    assert sweep_done(sweep) == 6
    assert sweep_done({}) == 0


def test_durations_read_as_minutes_hours_then_days():
    from tui_adv.tui.model import fmt_seconds

    assert [fmt_seconds(s) for s in (None, -1, 11, 312, 3 * 3600 + 65)] == ["—", "—", "0:11", "5:12", "3:01:05"]
    assert fmt_seconds(628 * 86400 + 4 * 3600 + 59) == "628d 04h"  # not 15076:41:17
