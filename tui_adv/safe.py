"""Text that is safe to show: control characters stripped, database passwords redacted.

Catalog strings (run names, errors, log lines, hosts) come from whoever wrote the row, so nothing that
shows them may trust them: an ESC sequence in a run name would reach the terminal raw, a newline would
break a one-line message. The rich/Textual layers add markup escaping on top of :func:`printable`
(``tui_adv.cli`` and the dashboard render catalog strings as ``Text``/``Content`` or escaped markup).

No rich or textual import here: the headless core uses it too.
"""

from __future__ import annotations

import re
import unicodedata

# bidirectional overrides and isolates: invisible, and they reorder what follows them on the screen
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))
MAX_LINE = 2000  # an error line longer than this is cut (it is still one line)


def printable(value: object, *, multiline: bool = False, limit: int | None = None) -> str:
    """``str(value)`` without control characters (C0, DEL, C1, bidi controls).

    Single-line (the default): tabs and newlines become spaces. ``multiline=True`` keeps ``\\n`` and
    ``\\t`` (tracebacks, log blocks). ``limit`` cuts the result to that many characters (with ``…``)."""
    text = "" if value is None else str(value)
    out = []
    for ch in text:
        o = ord(ch)
        if ch in "\n\t" and multiline:
            out.append(ch)
        elif ch in "\n\t\r\v\f":
            out.append(" ")
        elif o < 0x20 or o == 0x7F or 0x80 <= o < 0xA0 or o in _BIDI or unicodedata.category(ch) == "Cs":
            continue
        else:
            out.append(ch)
    s = "".join(out)
    if limit is not None and len(s) > limit:
        s = s[: max(limit - 1, 0)] + "…"
    return s


# scheme://user:password@host → scheme://user:***@host (also inside longer text, e.g. a driver's error)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/?#@\s]*):(?P<pw>[^@\s]*)@")
# key=value DSN parameters: password=..., sslpassword=...
_DSN_PASSWORD = re.compile(r"(?P<head>\b(?:ssl)?password\s*=\s*)(?P<pw>'[^']*'|\"[^\"]*\"|[^\s&;]+)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """A database URL without its password (``postgresql://me:***@host/db``)."""
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        if u.password is not None:
            return u.render_as_string(hide_password=True)
        return scrub_secrets(url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can parse: scrub what looks like a password
        return scrub_secrets(url)


def scrub_secrets(text: str) -> str:
    """``text`` with every ``scheme://user:password@`` and ``password=…`` redacted."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:***@", text)
    return _DSN_PASSWORD.sub(lambda m: f"{m.group('head')}***", text)


def one_line(text: object, limit: int = MAX_LINE) -> str:
    """A message as one printable, secret-free line of at most ``limit`` characters."""
    return printable(scrub_secrets(" ".join(str(text).split())), limit=limit)


def expand_user(path: object):  # noqa: ANN201 - a pathlib.Path
    """``Path(path).expanduser()``, except that ``~name`` of a user who does not exist (or no home
    directory at all) stays as written instead of raising RuntimeError."""
    from pathlib import Path

    p = Path(path)
    try:
        return p.expanduser()
    except RuntimeError:
        return p
