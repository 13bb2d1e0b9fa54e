"""What the store reads back, checked: run rows sanitized field by field (a damaged row is shown as
damaged, never crashes a reader), sweep draws combined, and whether a recorded process is still the run."""

from __future__ import annotations

import json
import os
import types
import typing
from datetime import datetime, timezone
from typing import Any

from ..safe import printable
from .schema import STATUSES, Run


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True
    return True


POINT_FIELDS = ("epsilon", "accuracy", "error", "mean_confidence", "mean_confidence_wrong", "n")  # of a sweep point, as read


def combine_draws(per_draw: list[list[dict]]) -> list[dict]:
    """Points of several mask draws of one reading → their mean at each ε (over the draws that have that
    ε), with ``*_spread`` = half the range of error and accuracy. One draw is returned as it is."""
    if len(per_draw) == 1:
        return per_draw[0]
    by_eps: dict[float, list[dict]] = {}
    for pts in per_draw:
        for p in pts:
            by_eps.setdefault(round(float(p["epsilon"]), 9), []).append(p)
    out = []
    for eps, ps in sorted(by_eps.items()):
        def mean(k: str) -> float | None:
            vals = [p[k] for p in ps if p.get(k) is not None]
            return sum(vals) / len(vals) if vals else None

        m = {k: mean(k) for k in ("accuracy", "error", "mean_confidence", "mean_confidence_wrong")}
        errs = [p["error"] for p in ps]
        accs = [p["accuracy"] for p in ps]
        out.append({"epsilon": ps[0]["epsilon"], **m, "n": ps[0]["n"], "draws": len(ps),
                    "error_spread": (max(errs) - min(errs)) / 2, "accuracy_spread": (max(accs) - min(accs)) / 2})
    return out


_HAVE_PROC = os.path.exists("/proc/self/stat")


def process_start_time(pid: int | None) -> int | None:
    """When process ``pid`` started (field 22 of /proc/PID/stat: clock ticks since boot), or None when
    there is no such live process (a zombie counts as gone) or no /proc to ask."""
    if pid is None or not _HAVE_PROC:
        return None
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except (OSError, ValueError, OverflowError):
        return None
    # field 2 (the command name) is in parentheses and may itself hold spaces or ")"
    fields = raw[raw.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # fields[0] is field 3, the state
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def same_process(pid: int | None, start: int | None) -> bool:
    """Is the process a run row recorded (pid, and its start time when known) still the one running?

    A pid that now belongs to another process (its start time differs) or a zombie is not."""
    if pid is None or pid <= 0:
        return False
    if _HAVE_PROC:
        now = process_start_time(pid)
        return now is not None and (start is None or now == start)
    return pid_alive(pid)


# ------------------------------------------------------------------------------------------ damaged rows
def _field_kinds() -> dict[str, tuple[type, bool]]:
    """Run column → (python type, nullable), from the model's annotations."""
    out: dict[str, tuple[type, bool]] = {}
    hints = typing.get_type_hints(Run)
    for name in Run.model_fields:
        ann = hints.get(name)
        args = [a for a in typing.get_args(ann) if a is not type(None)] if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union else [ann]
        nullable = len(args) != len(typing.get_args(ann) or [ann]) or ann is None
        if len(args) == 1 and args[0] in (int, float, str, datetime):
            out[name] = (args[0], nullable)
    return out


_KINDS: dict[str, tuple[type, bool]] | None = None
_JSON_FIELDS = ("config_json", "summary_json", "versions_json")
_DEFAULTS = {int: 0, float: 0.0, str: ""}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _short(v: Any) -> str:
    return printable(repr(v), limit=40)


def _coerce(value: Any, kind: type) -> Any:
    """``value`` as ``kind``, or raise ValueError (SQLite stores whatever it was given)."""
    if kind is datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, str):
            dt = datetime.fromisoformat(value)
            return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
        raise ValueError("not a date")
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        raise ValueError("not text")
    if isinstance(value, bool):
        return kind(value)
    if kind is int:
        if isinstance(value, int) and -(2**63) <= value < 2**63:
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError("not an integer")
    if kind is float:
        if isinstance(value, (int, float)):
            return float(value)
        raise ValueError("not a number")
    return value


def sanitize_run(run: Run) -> Run:
    """Check every field of a run row read from the catalog; a field that is not what the schema says
    (text in a number column, an unparseable date, a JSON column that is not a JSON object) is replaced
    by an empty value and named in the row's damage list (:func:`~tui_adv.catalog.schema.damage_of`),
    so every reader can show the row as damaged instead of crashing on it."""
    global _KINDS
    if _KINDS is None:
        _KINDS = _field_kinds()
    damage: list[str] = []
    for name, (kind, nullable) in _KINDS.items():
        value = getattr(run, name, None)
        # what a damaged field reads as: empty where the column may be empty; a date that sorts first
        # for updated_at (pollers take the max of it); None for created_at (shown as "—")
        fallback = None if nullable or name == "created_at" else _EPOCH if kind is datetime else _DEFAULTS.get(kind)
        if value is None:
            if not nullable:
                damage.append(f"{name} is empty")
                setattr(run, name, fallback)
            continue
        try:
            good = _coerce(value, kind)
        except (ValueError, TypeError, OverflowError):
            damage.append(f"{name} {_short(value)} is {'not a date' if kind is datetime else 'not ' + ('text' if kind is str else 'a number')}")
            good = fallback
        if good is not value:
            setattr(run, name, good)
    for name in _JSON_FIELDS:
        value = getattr(run, name, None)
        if value is None:
            continue
        try:
            ok = isinstance(json.loads(value), dict)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            damage.append(f"{name} is not a JSON object")
            setattr(run, name, "{}" if name == "config_json" else None)
    if run.status not in STATUSES:
        damage.append(f"status {_short(run.status)} is unknown")
    if damage:
        run._damage = damage
    return run

