"""The module boundaries written down in pyproject.toml ([tool.importlinter], see docs/architecture.md)
hold: ``lint-imports`` passes on this tree, and the check can fail."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _lint_imports(config: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on this checkout's tui_adv (PYTHONPATH: not whichever copy is installed)."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, "--config", str(config), "--no-cache"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contracts_are_kept():
    p = _lint_imports(REPO / "pyproject.toml")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "0 broken" in p.stdout and "layers" in p.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The same contracts with the layers reversed fail: the check is not vacuous."""
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r'layers = \[\n(.*?)\n\]', text, re.S)
    assert block, "the layers contract is in pyproject.toml"
    reversed_layers = "\n".join(reversed(block.group(1).splitlines()))
    (tmp_path / "pyproject.toml").write_text(text.replace(block.group(1), reversed_layers))
    p = _lint_imports(tmp_path / "pyproject.toml")
    assert p.returncode != 0 and "BROKEN" in p.stdout.upper(), p.stdout[-2000:]


def test_the_dashboard_signals_and_spawns_nothing_itself():
    """Cancelling, exporting and launching go through tui_adv.services: no os.kill or subprocess in tui/."""
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / "tui_adv" / "tui").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bos\.kill\b|\bimport subprocess\b|\bsubprocess\.", line.split("#")[0])
    ]
    assert offenders == [], offenders
