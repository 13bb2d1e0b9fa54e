"""Catalog URLs and the one-line errors that name them (always without a password)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..safe import expand_user, redact_url, scrub_secrets

ENV_DB = "ADV_TUI_DB"
DEFAULT_DB = "runs.db"


class CatalogLocked(UserError):
    """Another process has held the catalog's write lock for longer than this process waits."""


class ClaimLost(UserError):
    """The run row is no longer this process's: another process resumed it, or it was marked interrupted."""

    exit_code = 1


def resolve_db_url(db: str | None = None) -> str:
    """``--db`` > ``$ADV_TUI_DB`` > ``./runs.db``. A plain path means a SQLite file."""
    value = db or os.environ.get(ENV_DB) or DEFAULT_DB
    if "://" in value:
        return value
    return f"sqlite:///{expand_user(value)}"


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_path(url: str) -> Path | None:
    rest = url.split("///", 1)[1] if "///" in url else ""
    rest = rest.split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def _friendly(url: str, e: Exception) -> UserError:
    text_ = str(getattr(e, "orig", e)).strip()
    msg = scrub_secrets(text_.splitlines()[0].strip()) if text_ else type(e).__name__
    where = _sqlite_path(url) or _redact(url) if _is_sqlite(url) else _redact(url)
    password = _password(url)
    if password:
        msg = msg.replace(password, "***")
    if not _is_sqlite(url) and ("connection failed" in msg or "could not connect" in msg or "timeout expired" in msg
                                or "Connection refused" in msg or "could not translate host name" in msg):
        return UserError(f"cannot reach the catalog server {where} ({msg}); is the server running, and is --db / $ADV_TUI_DB right?")
    if "file is not a database" in msg or "malformed" in msg:
        return UserError(f"catalog {where} is corrupt or not a SQLite database ({msg}); move it aside or pass --db to use another")
    if "readonly" in msg or "unable to open" in msg:
        return UserError(f"cannot write the catalog {where} ({msg}); check the path and its permissions, or pass --db")
    return UserError(f"catalog {where}: {msg}")


def _password(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).password or None
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can parse: nothing to take out
        return None


def _redact(url: str) -> str:
    """The URL without its password, for every message that shows it."""
    return redact_url(url)

