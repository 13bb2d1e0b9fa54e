"""The scorecard as table rows (the dashboard's Scorecard screen); ``adv-tui report`` prints the same
:func:`tui_adv.claims.scorecard` results through the CLI's renderer."""

from __future__ import annotations

from ..catalog.store import Store
from ..claims import scorecard

NO_SCORECARD = "no scorecard yet: run `adv-tui reproduce`"


def scorecard_rows(store: Store, profiles: list[str] | None = None) -> tuple[list[dict] | None, str]:
    """(rows, note): one dict a claim (:meth:`tui_adv.claims.Result.as_dict`), or None and why not."""
    rows = [r.as_dict() for r in scorecard(store, profiles)]
    if not rows:
        return None, f"{NO_SCORECARD} (no claim has a measured value)"
    return rows, ""


def row_run_ids(row: dict) -> list[int]:
    """The catalog runs a scorecard row was measured from."""
    out = []
    for x in row.get("runs") or []:
        try:
            out.append(int(x))
        except (TypeError, ValueError):
            pass
    return out
