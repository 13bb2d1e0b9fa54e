"""Reading configs: TOML files and ``--set`` overrides validated into :class:`RunConfig`, with errors
that name the key, in one line."""

from __future__ import annotations

import copy
import functools
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import UserError
from .schema import RunConfig

def _fmt_loc(loc: tuple) -> str:
    # a key with a newline or other control character is shown quoted, so the error stays one line
    return ".".join(str(p) if str(p).isprintable() else repr(p) for p in loc if not (isinstance(p, str) and p.startswith("function-")))


MAX_PROBLEMS = 8  # problems named in one error line; the rest are counted


def format_validation_error(err: ValidationError, source: str) -> str:
    parts = []
    errors = err.errors()
    for e in errors[:MAX_PROBLEMS]:
        loc = _fmt_loc(e["loc"])
        if len(loc) > 80:
            loc = loc[:79] + "…"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "finite_number":
            msg = "must be a finite number (not inf or nan)"
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = len(errors) - MAX_PROBLEMS
    tail = f"; … and {more} more problem{'s' if more > 1 else ''}" if more > 0 else ""
    return f"invalid config {source}: " + "; ".join(parts) + tail


# a number written with a bare leading dot (".25", "-.5"), which TOML rejects but people type
_BARE_DOT = re.compile(r"(?<![\w.\"'])([+-]?)\.(\d)")


def parse_value(text: str) -> Any:
    """Read an override's value as TOML (numbers, booleans, arrays, quoted strings); else a bare string.

    Numbers with a bare leading dot are accepted too: ``[0,.1,.25]`` reads as ``[0, 0.1, 0.25]``.
    """
    for candidate in (text, _BARE_DOT.sub(r"\g<1>0.\2", text)):
        try:
            return tomllib.loads(f"v = {candidate}")["v"]
        except tomllib.TOMLDecodeError:
            continue
    return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    data = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set expects KEY=VALUE (e.g. train.epochs=5), got {item!r}")
        key, _, value = item.partition("=")
        path = [p for p in key.strip().split(".") if p]
        if not path:
            raise UserError(f"--set expects KEY=VALUE, got {item!r}")
        node = data
        for p in path[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise UserError(f"--set {key}: {p} is not a table")
            node = nxt
        node[path[-1]] = parse_value(value.strip())
    return data


def validate(raw: dict, source: str = "<config>") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise UserError(format_validation_error(e, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"malformed TOML in {p}: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read config {p}: {e}") from None
    raw.setdefault("name", p.stem)
    return validate(apply_overrides(raw, overrides or []), str(p))


PACKAGE = Path(__file__).resolve().parents[1]  # tui_adv/


def shipped_config_dirs() -> list[Path]:
    """Where the shipped configs are: the checkout's ``configs/`` beside the package, else where
    ``pip install .`` or a wheel put them (``<prefix>/share/adv-tui/configs``, the user base for
    ``--user``)."""
    import site
    import sys

    candidates = [PACKAGE.parent / "configs", Path(sys.prefix) / "share" / "adv-tui" / "configs"]
    try:
        candidates.append(Path(site.getuserbase()) / "share" / "adv-tui" / "configs")
    except Exception:  # noqa: BLE001 - no user base (embedded interpreters)
        pass
    out: list[Path] = []
    for d in candidates:
        if d.is_dir() and d not in out and any(d.glob("*.toml")):
            out.append(d)
    return out


def config_dir() -> Path:
    """The directory of the shipped configs (the first of :func:`shipped_config_dirs`)."""
    dirs = shipped_config_dirs()
    return dirs[0] if dirs else PACKAGE.parent / "configs"


def resolve_config_path(arg: str | Path) -> Path:
    """A config argument as a file: the path itself when it exists, else a shipped config of that name
    (``softmax``, ``softmax.toml`` or ``configs/softmax.toml`` from any directory)."""
    p = Path(arg).expanduser()
    if p.is_file():
        return p
    name = p.name if p.suffix == ".toml" else p.name + ".toml"
    if not p.is_absolute() and (len(p.parts) == 1 or p.parts[0] == "configs"):
        for d in shipped_config_dirs():
            if (d / name).is_file():
                return d / name
    return p


def config_from_json(text: str) -> RunConfig:
    return validate(json.loads(text), "<stored run config>")


@functools.lru_cache(maxsize=4096)
def dataset_of(config_json: str | None) -> str:
    """The dataset of a stored run config (``data.dataset``): "mnist" for a config stored before the key
    existed, an analysis run's config, or one that cannot be read."""
    try:
        raw = json.loads(config_json or "")
    except (TypeError, ValueError):
        return "mnist"
    data = raw.get("data") if isinstance(raw, dict) else None
    name = data.get("dataset") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name.isprintable() and name else "mnist"
