"""The dashboard's own preferences (today: its theme), kept across restarts in one small JSON file.

The file is ``$ADV_TUI_CONFIG/settings.json`` (default: the user config directory, e.g.
``~/.config/adv-tui/settings.json``). It is only a preference: an unreadable, corrupt or unknown value
is ignored (the default theme is used), and a file that cannot be written costs nothing but the memory
of the choice. It is written atomically (a temporary file renamed over it), so two dashboards that
change theme at once leave one valid file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

ENV_CONFIG = "ADV_TUI_CONFIG"


def settings_path() -> Path:
    base = os.environ.get(ENV_CONFIG)
    if not base:
        from platformdirs import user_config_dir

        base = user_config_dir("adv-tui")
    return Path(base) / "settings.json"


def load_settings() -> dict[str, Any]:
    """The stored preferences; ``{}`` when there are none or the file is unreadable."""
    try:
        data = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def save_setting(key: str, value: Any) -> bool:
    """Store one preference beside the others; False (and nothing raised) when it cannot be written."""
    path = settings_path()
    data = load_settings()
    if data.get(key) == value:
        return True
    data[key] = value
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return False
    return True
