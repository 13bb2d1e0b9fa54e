"""Finding a step's finished run in a large catalog: the indexed identity query against a full scan.

    python benchmarks/lookup.py [--runs 5000] [--repeats 7] [--json]

A fresh SQLite catalog gets ``--runs`` completed runs, each a real suite config (the quick profile's
softmax, maxout and rbf steps with the seed varied, so every row is its own experiment). Then, in one
process and interleaved round by round:

- ``query``: ``find_completed(store, key, profile, config_json)``, what the suite and the scorecard do
  now (one indexed ``SELECT`` on ``runs.identity``);
- ``scan``: what they did before schema 6: load every completed run, re-validate each config and
  compare identities in Python (written out here, it is no longer in the package);
- ``backfill``: the one-off cost on a catalog upgraded from schema 5, where every row's key is NULL
  and the first look-up computes and writes them all.

Each round looks up the same 10 configs (half present, half absent). Prints the fastest round and the
median per look-up, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from tui_adv.catalog import Store  # noqa: E402
from tui_adv.catalog.lookup import identity_fields  # noqa: E402
from tui_adv.catalog.schema import Run, utcnow  # noqa: E402
from tui_adv.choices import RunStatus  # noqa: E402
from tui_adv.config.identity import identity  # noqa: E402
from tui_adv.reproduce import find_completed, step_config, suite  # noqa: E402


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def configs(n: int) -> list[str]:
    steps = [s for s in suite("quick") if s.key in ("softmax", "maxout", "rbf")]
    out = []
    for i in range(n):
        cfg = step_config(steps[i % len(steps)], "quick")
        out.append(cfg.model_copy(update={"seed": 1000 + i}).to_json())
    return out


def fill(store: Store, cfgs: list[str]) -> None:
    now = utcnow()
    with Session(store.engine) as s:
        for i, cj in enumerate(cfgs):
            s.add(Run(name=f"bulk-{i}", experiment="softmax", profile="quick", config_json=cj, status=RunStatus.COMPLETED,
                      created_at=now, started_at=now, finished_at=now, **identity_fields(cj)))
        s.commit()


def scan(store: Store, config_json: str) -> Run | None:
    """find_completed before schema 6: every completed run loaded, each config validated again."""
    identity.cache_clear()  # a fresh process (each reproduce / report) starts with an empty cache
    want = identity(config_json)
    return next((r for r in store.list_runs(status=[RunStatus.COMPLETED]) if identity(r.config_json) == want), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="adv-lookup-"))
    cfgs = configs(args.runs + 5)
    stored, absent = cfgs[: args.runs], cfgs[args.runs :]
    probes = stored[:: max(1, args.runs // 5)][:5] + absent
    t0 = time.perf_counter()
    store = Store(str(tmp / "runs.db"))
    fill(store, stored)
    log(f"catalog of {args.runs} completed runs in {time.perf_counter() - t0:.1f} s: {tmp / 'runs.db'}")

    # the answers agree before anything is timed
    for cj in probes:
        a, b = find_completed(store, "x", "quick", cj), scan(store, cj)
        assert (a and a.id) == (b and b.id), "query and scan disagree"

    rounds: dict[str, list[float]] = {"query": [], "scan": [], "backfill": []}
    for r in range(args.repeats):
        t = time.perf_counter()
        for cj in probes:
            find_completed(store, "x", "quick", cj)
        rounds["query"].append((time.perf_counter() - t) / len(probes))
        t = time.perf_counter()
        for cj in probes:
            scan(store, cj)
        rounds["scan"].append((time.perf_counter() - t) / len(probes))
        with store.engine.begin() as conn:  # as a catalog upgraded from schema 5 leaves them
            conn.execute(text("UPDATE runs SET identity = NULL, identity_rule = NULL"))
        fresh = Store(store.url)
        identity.cache_clear()
        t = time.perf_counter()
        find_completed(fresh, "x", "quick", probes[0])
        rounds["backfill"].append(time.perf_counter() - t)
        fresh.close()
        log(f"round {r + 1}: query {1e3 * rounds['query'][-1]:.2f} ms · scan {1e3 * rounds['scan'][-1]:.1f} ms · backfill {rounds['backfill'][-1]:.2f} s")

    out = {"runs": args.runs}
    for k, v in rounds.items():
        out[f"{k}_fastest_ms"] = round(1e3 * min(v), 3)
        out[f"{k}_median_ms"] = round(1e3 * statistics.median(v), 3)
    log(
        f"per look-up over {args.runs} runs: query {out['query_fastest_ms']:.2f} ms fastest / {out['query_median_ms']:.2f} ms median; "
        f"scan {out['scan_fastest_ms']:.0f} / {out['scan_median_ms']:.0f} ms; one-off backfill {out['backfill_fastest_ms'] / 1e3:.2f} / {out['backfill_median_ms'] / 1e3:.2f} s"
    )
    if args.json:
        print(json.dumps(out))
    store.close()


if __name__ == "__main__":
    main()
