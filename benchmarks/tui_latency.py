"""Dashboard latency: keypress-to-screen while a real run trains, and opening the history on 5,000 runs.

    python benchmarks/tui_latency.py [--data-dir DIR] [--keys 60] [--runs 5000]

1. A real ``adv-tui run --headless`` process trains softmax on MNIST into a fresh catalog while a
   Pilot-driven dashboard (headless Textual, 160×48) follows it on the live screen and in the history.
   Each keypress is sent as the terminal driver sends it and timed until the first frame the app
   writes after the key's effect is in its state (cursor moved, tab switched, screen pushed/popped).
2. A catalog of 5,000 completed runs is created; the time from starting the app (catalog already
   open) to the history table showing its first page, and from ``make_app`` (opening the catalog)
   to the same point, are measured over several starts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summary(name: str, ms: list[float]) -> str:
    return f"{name:<34} n={len(ms):3d}  p50 {statistics.median(ms):6.1f} ms  p95 {pct(ms, .95):6.1f} ms  max {max(ms):6.1f} ms"


async def keypress_latency(db: str, data_dir: str | None, n_keys: int) -> list[str]:
    from textual import events
    from textual.widgets import DataTable, TabbedContent

    from tui_adv.catalog import Store
    from tui_adv.tui.app import make_app
    from tui_adv.tui.screens.detail import RunDetailScreen
    from tui_adv.tui.screens.dialogs import HelpScreen
    from tui_adv.tui.screens.live import LiveRunScreen
    from tui_adv.tui.screens.runs import RunsScreen

    argv = [sys.executable, "-m", "tui_adv.cli", "run", str(REPO / "configs" / "softmax.toml"), "--headless", "--db", db, "--quiet",
            "--device", "cpu", "--set", "train.epochs=300"]
    if data_dir:
        argv += ["--data-dir", data_dir]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # same session: dies with us on ctrl-c
    out: list[str] = []
    try:
        store = Store(db)
        app = make_app(store=store)
        async with app.run_test(size=(160, 48)) as pilot:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 120:  # wait for the run to be training
                runs = store.list_runs(limit=1)
                if runs and runs[0].status == "running" and runs[0].phase == "train" and runs[0].progress > 0.01:
                    break
                await pilot.pause(0.2)
            else:
                raise SystemExit("the background run did not start training within 120 s")
            while not (isinstance(app.screen, RunsScreen) and app.screen.loaded):
                await pilot.pause(0.05)
            print("· the run is training; timing keys", file=sys.stderr)

            frames: list[float] = []
            display = app._display

            def hooked(screen, renderable):  # noqa: ANN001 - every frame the app writes to the terminal
                display(screen, renderable)
                frames.append(time.perf_counter())

            app._display = hooked

            async def key_to_frame(key: str, done) -> float:  # noqa: ANN001
                """Send the key as the terminal driver would; stop the clock at the first frame written
                after the key's effect is in the app state."""
                char = key if len(key) == 1 else None
                event = events.Key(key, char)
                event.set_sender(app)
                t0 = time.perf_counter()
                app._driver.send_message(event)
                while not done():
                    if time.perf_counter() - t0 > 10:
                        rows = [r for r in getattr(app.screen_stack[1], "order", [])[:3]]
                        raise SystemExit(f"key {key!r} had no effect within 10 s (screen {app.screen!r}, focus {app.focused!r}, history rows {rows})")
                    await asyncio.sleep(0.0005)
                t_state = time.perf_counter()
                # the frame showing the change: either already written (the change and its frame can land
                # in the same loop turn before this coroutine looks) or the next one
                drawn = [f for f in frames if f >= t0]
                if not drawn:
                    n = len(frames)
                    while len(frames) == n and time.perf_counter() - t_state < 1.0:
                        await asyncio.sleep(0.0005)
                    drawn = [f for f in frames if f >= t0]
                if os.environ.get("BENCH_DEBUG"):
                    print(f"  {key}: {1000 * ((drawn[0] if drawn else t_state) - t0):.1f} ms", file=sys.stderr)
                return 1000 * ((drawn[0] if drawn else t_state) - t0)

            async def timed(steps) -> list[float]:  # noqa: ANN001
                ms = []
                for key, done in steps:
                    ms.append(await key_to_frame(key, done))
                    await asyncio.sleep(0.05)  # a human is not faster than 20 keys/s; polls keep arriving
                return ms

            def table():
                return app.screen.query_one(DataTable)

            hist = []
            for i in range(n_keys):
                key = "down" if i % 2 == 0 else "up"
                before = table().cursor_row
                hist.append(await key_to_frame(key, lambda: table().cursor_row != before))
                await asyncio.sleep(0.05)
            print("· history keys timed", file=sys.stderr)
            training = store.list_runs(limit=1)[0]
            print(f"· opening the live screen of run {training.id} ({training.status})", file=sys.stderr)
            app.push_screen(LiveRunScreen(int(training.id), run=training))
            t_open = time.monotonic()
            while not (isinstance(app.screen, LiveRunScreen) and app.screen.updates > 0):
                await pilot.pause(0.05)
                if time.monotonic() - t_open > 20:
                    raise SystemExit(f"the live screen did not open: {app.screen!r}, focus {app.focused!r}, cursor {table().cursor_row}")
            await pilot.pause(1.0)

            def tab():
                return app.screen.query_one(TabbedContent).active

            live_tabs = await timed([("k", lambda: tab() == "live-config"), ("g", lambda: tab() == "live-charts")] * (n_keys // 2))
            help_modal = await timed(
                [("question_mark", lambda: isinstance(app.screen, HelpScreen)), ("escape", lambda: isinstance(app.screen, LiveRunScreen))] * (n_keys // 4)
            )
            screen_switch = await timed(
                [("q", lambda: isinstance(app.screen, RunsScreen)), ("enter", lambda: isinstance(app.screen, (LiveRunScreen, RunDetailScreen)))] * (n_keys // 4)
            )
            run = store.get_run(store.list_runs(limit=1)[0].id)
            out.append(f"while run {run.id} trains ({run.status}, phase {run.phase}, {100 * run.progress:.0f}% done, catalog polled at 2 Hz):")
            out.append("  " + summary("history cursor (down/up)", hist))
            out.append("  " + summary("live screen tab switch (k/g)", live_tabs))
            out.append("  " + summary("help modal open/close (?/esc)", help_modal))
            out.append("  " + summary("back to history / open run (q/⏎)", screen_switch))
        store.close()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return out


def make_big_catalog(path: str, n: int) -> None:
    from sqlmodel import Session

    from tui_adv.catalog import Store
    from tui_adv.catalog.schema import Run

    store = Store(path)
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with Session(store.engine) as s:
        for i in range(n):
            t = t0 + timedelta(minutes=i)
            s.add(Run(name=f"run-{i:05d}", experiment=["softmax", "maxout", "maxout_adv"][i % 3], config_json='{"model": {"kind": "softmax"}}',
                      status="completed", created_at=t, started_at=t, finished_at=t + timedelta(seconds=30 + i % 50), device="cpu",
                      progress=1.0, clean_error=0.07 + (i % 13) / 1000, fgsm_error=0.9 + (i % 7) / 100, epochs=10, epoch=10, updated_at=t))
        s.commit()
    store.close()


async def history_open(db: str, repeats: int) -> list[str]:
    from textual.widgets import DataTable

    from tui_adv.tui.app import make_app
    from tui_adv.tui.screens.runs import RunsScreen

    with_catalog, app_only, query = [], [], []
    for _ in range(repeats):
        t_make = time.perf_counter()
        app = make_app(db=db)
        t_start = time.perf_counter()
        async with app.run_test(size=(160, 48)) as pilot:
            while not (isinstance(app.screen, RunsScreen) and app.screen.loaded and app.screen.query_one(DataTable).row_count):
                await pilot.pause(0.005)
            await pilot.pause(0)
            t_end = time.perf_counter()
            rows = app.screen.query_one(DataTable).row_count
            query.append(1000 * app.screen.first_page_s)
        app.store.close()
        with_catalog.append(1000 * (t_end - t_make))
        app_only.append(1000 * (t_end - t_start))
    return [
        f"history on a 5,000-run catalog (first page of {rows} rows shown, newest first):",
        "  " + summary("make_app (open catalog) → table", with_catalog),
        "  " + summary("app start → table", app_only),
        "  " + summary("page query (worker thread)", query),
    ]


def main() -> None:
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1)  # kill -USR1 PID dumps every thread's stack (a hung benchmark)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("ADV_TUI_DATA") or str(REPO.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--keys", type=int, default=60)
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ADV_TUI_CACHE", str(Path(tmp) / "cache"))
        os.environ.setdefault("ADV_TUI_CHECKPOINTS", str(Path(tmp) / "ckpt"))
        big = str(Path(tmp) / "big.db")
        t = time.perf_counter()
        make_big_catalog(big, args.runs)
        print(f"(built a {args.runs}-run catalog in {time.perf_counter() - t:.1f} s)")
        for line in asyncio.run(history_open(big, args.repeats)):
            print(line)
        live = str(Path(tmp) / "live.db")
        make_big_catalog(live, 20)  # some history around the run being trained
        for line in asyncio.run(keypress_latency(live, args.data_dir, args.keys)):
            print(line)


if __name__ == "__main__":
    main()
