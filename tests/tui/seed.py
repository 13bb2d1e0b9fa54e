"""A deterministic catalog for the dashboard tests, snapshots, the benchmark and docs (no training)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

from sqlmodel import Session

from tui_adv.catalog.schema import LogLine, Sample, utcnow
from tui_adv.catalog.store import Store

T0 = datetime(2025, 3, 14, 9, 0, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=3)
EPS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]


def frozen_clock() -> datetime:
    return NOW


def _config(name: str, experiment: str, model: dict, train: dict | None = None, claims=(), eps=EPS) -> str:
    cfg = {
        "name": name,
        "description": f"{name} (seeded)",
        "claims": list(claims),
        "experiment": experiment,
        "seed": 0,
        "device": "auto",
        "profile": None,
        "data": {"pair": None, "validation": False, "train_limit": None, "test_limit": None},
        "model": model,
        "train": {"epochs": 10, "batch_size": 100, "optimizer": "sgd", "lr": 0.1, "momentum": 0.5, "mode": "clean", "alpha": 0.5, "epsilon": 0.25, **(train or {})},
        "sweep": {"enabled": True, "epsilons": list(eps), "labels": "true", "samples": 4, "sample_epsilons": [0.1, 0.25]},
    }
    return json.dumps(cfg, sort_keys=True)


def digit_image(kind: int, shift: int = 0) -> bytes:
    """A synthetic 28×28 'digit': a ring (even kinds) or a slanted stroke (odd), deterministic."""
    px = bytearray(784)
    for r in range(28):
        for c in range(28):
            if kind % 2 == 0:
                d = math.hypot((r - 14) / 9.0, (c - 14 - shift) / 6.0)
                v = max(0.0, 1.0 - abs(d - 1.0) * 4.0)
            else:
                x = c - (14 + shift) + (r - 14) * 0.35
                v = max(0.0, 1.0 - abs(x) / 2.2) if 4 <= r <= 24 else 0.0
            px[r * 28 + c] = int(round(255 * min(v, 1.0)))
    return bytes(px)


def sign_of(kind: int) -> bytes:
    return bytes(((r * 7 + c * 3 + kind) % 5 == 0) * 2 or ((r + c + kind) % 3 == 0) * 0 or 1 for r in range(28) for c in range(28))


def adversarial(clean: bytes, sign: bytes, eps: float) -> bytes:
    return bytes(int(min(255, max(0, v + (s - 1) * eps * 255))) for v, s in zip(clean, sign))


def _curve(clean_err: float, slope: float) -> list[dict]:
    pts = []
    for e in EPS:
        err = min(0.999, clean_err + (1 - clean_err) * (1 - math.exp(-slope * e)))
        pts.append({"epsilon": e, "accuracy": 1 - err, "error": err, "mean_confidence": 0.9 - 0.2 * e, "mean_confidence_wrong": 0.5 + e, "n": 10000, "n_wrong": int(err * 10000)})
    return pts


def seed_catalog(store: Store, *, heartbeat_now: bool = True) -> dict[str, int]:
    """Six runs covering every status; the running one has a fresh heartbeat so liveness keeps it."""
    ids: dict[str, int] = {}

    def add(key, name, experiment, model, status, *, start_min, dur_s, claims=(), train=None, clean=None, fgsm=None, progress=1.0,
            phase=None, epoch=10, device="cpu", error=None, slope=20.0, epochs=10, batch=0, batches=0):
        started = T0 + timedelta(minutes=start_min)
        finished = started + timedelta(seconds=dur_s) if status not in ("running", "queued") else None
        run = store.create_run(
            name=name, experiment=experiment, claims=",".join(claims), config_json=_config(name, experiment, model, train, claims),
            status=status, created_at=started, started_at=started, finished_at=finished,
            heartbeat_at=utcnow() if heartbeat_now and status == "running" else finished or started,
            pid=None, host="seed-host", device=device, seed=0, phase=phase, epoch=epoch, epochs=epochs, batch=batch, batches=batches,
            progress=progress, clean_error=clean, fgsm_error=fgsm, error=error,
        )
        rid = int(run.id)
        ids[key] = rid
        done_epochs = epoch if status != "completed" else epochs
        rows = []
        for ep in range(1, done_epochs + 1):
            rows += [
                ("train_loss", ep, 1.2 / ep + 0.25),
                ("train_error", ep, 0.3 / ep + 0.05),
                ("test_error", ep, 0.25 / ep + (clean or 0.08)),
                ("test_adv_error", ep, min(0.99, 0.9 - 0.03 * ep if "adv" not in experiment else 0.9 - 0.06 * ep)),
                ("lr", ep, 0.1),
            ]
        for step in range(0, done_epochs * 600 + 1, 60):
            rows.append(("batch_loss", step, 2.3 * math.exp(-step / 900) + 0.3 + 0.05 * math.sin(step / 50)))
        store.add_metrics(rid, rows)
        if status == "completed":
            store.add_sweep_points(rid, "fgsm", "true", _curve(clean or 0.08, slope))
            samples = []
            for i in range(4):
                for e in (0.1, 0.25):
                    c = digit_image(i, shift=i - 2)
                    s = sign_of(i)
                    samples.append(Sample(run_id=rid, idx=i, epsilon=e, label=i, clean=c, sign=s, adversarial=adversarial(c, s, e),
                                          clean_pred=i, clean_conf=0.97 - 0.05 * i, adv_pred=(i + 3) % 10, adv_conf=0.6 + e))
            store.add_samples(rid, samples)
        with Session(store.engine) as s:
            s.add(LogLine(run_id=rid, ts=started, message=f"data: 60000 train, 0 valid, 10000 test on {device}"))
            for ep in range(1, done_epochs + 1):
                s.add(LogLine(run_id=rid, ts=started + timedelta(seconds=20 * ep), message=f"epoch {ep}/{epochs}: train_loss={1.2 / ep + 0.25:.4g}"))
            s.commit()
        return rid

    add("softmax", "softmax", "softmax", {"kind": "softmax"}, "completed", start_min=0, dur_s=11, claims=("P01",), clean=0.0756, fgsm=0.9981, slope=30)
    add("maxout", "maxout", "maxout", {"kind": "maxout", "units": 240, "pieces": 5}, "completed", start_min=5, dur_s=312, claims=("P02",), clean=0.0112, fgsm=0.8943, slope=14, device="cuda")
    add("logreg", "logreg_3v7", "logreg", {"kind": "logistic"}, "failed", start_min=20, dur_s=3, claims=("P03",), progress=0.1, epoch=0, error="ValueError: seeded failure")
    add("cancel", "maxout_adv", "maxout_adv", {"kind": "maxout", "units": 240, "pieces": 5}, "cancelled", start_min=40, dur_s=95, train={"mode": "adversarial"}, progress=0.33, epoch=3, error="cancelled by the user")
    add("interrupted", "softmax", "softmax", {"kind": "softmax"}, "interrupted", start_min=70, dur_s=4, progress=0.2, epoch=2, error="the run's process is gone")
    add("running", "maxout_adv", "maxout_adv", {"kind": "maxout", "units": 240, "pieces": 5}, "running", start_min=150, dur_s=0, claims=("P06", "P09"), train={"mode": "adversarial"}, progress=0.405, phase="train", epoch=4, batch=300, batches=600, device="cuda")
    return ids


def seed_many(store: Store, n: int) -> None:
    """n small completed runs (bulk insert) for the 5,000-run history benchmark and test."""
    from sqlmodel import Session

    from tui_adv.catalog.schema import Run

    cfg = _config("bulk", "bulk", {"kind": "softmax"})
    with Session(store.engine) as s:
        for i in range(n):
            t = T0 - timedelta(minutes=n - i)
            s.add(Run(name=f"bulk-{i:05d}", experiment=["softmax", "maxout", "maxout_adv"][i % 3], config_json=cfg, status="completed",
                      created_at=t, started_at=t, finished_at=t + timedelta(seconds=30 + i % 50), device="cpu", progress=1.0,
                      clean_error=0.07 + (i % 13) / 1000, fgsm_error=0.9 + (i % 7) / 100, epochs=10, epoch=10, updated_at=t))
        s.commit()
