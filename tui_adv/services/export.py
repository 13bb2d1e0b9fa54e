"""A run exported as JSON (one document) or CSV (long format: one value a row), for ``adv-tui runs
export`` and the dashboard's export dialog alike."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..catalog.store import Store
from ..choices import ExportFormat
from ..errors import UserError
from .runs import run_document

CSV_HEADER = ["run_id", "table", "attack", "labels", "key", "step", "epsilon", "value"]
POINT_VALUES = ("accuracy", "error", "mean_confidence", "mean_confidence_wrong", "n")


def json_default(o: object) -> object:
    """Datetimes as ISO text (``json.dumps(default=…)``)."""
    from datetime import datetime

    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def export_text(store: Store, run_id: int, fmt: ExportFormat | str) -> str:
    run = store.get_run(run_id)
    if ExportFormat(fmt) is ExportFormat.JSON:
        doc = run_document(store, run)
        doc["metric_rows"] = [{"key": m.key, "step": m.step, "value": m.value} for m in store.metrics(run.id)]
        return json.dumps(doc, default=json_default, indent=2)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_HEADER)
    for m in store.metrics(run.id):
        w.writerow([run.id, "metric", "", "", m.key, m.step, "", m.value])
    for p in store.sweep_points(run.id):
        for key in POINT_VALUES:
            w.writerow([run.id, "sweep", p.attack, p.labels, key, "", p.epsilon, "" if getattr(p, key) is None else getattr(p, key)])
    return buf.getvalue()


def format_of(path: str | Path) -> ExportFormat:
    """The format a file name asks for: ``.csv`` or ``.json``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return ExportFormat.CSV
    if suffix == ".json":
        return ExportFormat.JSON
    raise UserError(f"the file name must end in .json or .csv, got {Path(path).name!r}")


def export_to_file(store: Store, run_id: int, path: Path, fmt: ExportFormat | str | None = None) -> Path:
    """Write the export of run ``run_id`` to ``path`` (format from its extension unless given)."""
    text = export_text(store, run_id, fmt or format_of(path))
    try:
        path.write_text(text)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    return path
