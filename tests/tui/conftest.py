"""Fixtures for the dashboard tests: a seeded catalog (no training), a frozen clock, UTC local time."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from .seed import frozen_clock, seed_catalog

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _utc_local_time(monkeypatch, tmp_path):
    """'started' columns show local time: pin it, so snapshots are the same on every machine; each
    test has its own settings file, so a theme one test chose never reaches another's snapshot."""
    monkeypatch.setenv("ADV_TUI_CONFIG", str(tmp_path / "adv-tui-config"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def seeded(tmp_path):
    from tui_adv.catalog import Store

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    ids = seed_catalog(store)
    yield store, ids
    store.close()


@pytest.fixture
def make(seeded):
    """Factory for an app on the seeded catalog with a frozen clock and a fast poller."""
    from tui_adv.tui.app import make_app

    store, _ids = seeded

    def factory(**kw):
        kw.setdefault("clock", frozen_clock)
        kw.setdefault("poll_interval", 0.1)
        kw.setdefault("config_dirs", [REPO / "configs"])
        kw.setdefault("catalog_label", "runs.db")
        return make_app(store=store, **kw)

    return factory


async def wait_for(pilot, cond, timeout: float = 10.0, step: float = 0.05):
    """Pause the pilot until cond() is true (raises on timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if cond():
                return
        except Exception:  # noqa: BLE001 - the DOM may be mid-update
            pass
        await pilot.pause(step)
    raise AssertionError(f"condition not met within {timeout}s: {getattr(cond, '__name__', cond)}")


@pytest.fixture
def until():
    return wait_for
