"""The headless core imports no UI library: textual and rich stay out of sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADLESS = [
    "tui_adv",
    "tui_adv.errors",
    "tui_adv.config",
    "tui_adv.core.data",
    "tui_adv.core.models",
    "tui_adv.core.attacks",
    "tui_adv.core.sweep",
    "tui_adv.core.train",
    "tui_adv.catalog",
    "tui_adv.catalog.schema",
    "tui_adv.catalog.store",
    "tui_adv.catalog.migrate",
    "tui_adv.grid",
    "tui_adv.runner",
    "tui_adv.views",
    "tui_adv.choices",
    "tui_adv.services",
    "tui_adv.services.runs",
    "tui_adv.services.export",
    "tui_adv.services.launch",
    "tui_adv.services.scorecard",
    "tui_adv.services.cancel",
    "tui_adv.lifecycle",
    "tui_adv.checkpoints",
    "tui_adv.measure",
    "tui_adv.run_sweep",
]
CODE = """
import importlib, json, pkgutil, sys
mods = json.loads(sys.argv[1])
import tui_adv.core
mods += ["tui_adv.core." + m.name for m in pkgutil.iter_modules(tui_adv.core.__path__)]
for m in mods:
    importlib.import_module(m)
print(json.dumps({"imported": mods, "ui": sorted(k for k in sys.modules if k.split(".")[0] in ("textual", "rich"))}))
"""


def _imports(mods: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", CODE, json.dumps(mods)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_headless_modules_import_no_ui():
    out = _imports(HEADLESS)
    assert "tui_adv.core.train" in out["imported"]
    assert out["ui"] == [], f"the headless core pulled in UI modules: {out['ui'][:10]}"


def test_the_check_can_fail():
    """The same probe does see rich when a module that uses it is imported (the CLI's progress bars)."""
    out = _imports(["tui_adv.progress"])
    assert any(m == "rich" or m.startswith("rich.") for m in out["ui"])

