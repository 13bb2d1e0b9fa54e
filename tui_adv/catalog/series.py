"""A run's series in the catalog: metrics, sweep points, perturbation views, log lines and artifacts
(the store's methods for them; every write is one short owner-checked transaction)."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from sqlalchemy import delete
from sqlmodel import Session, col, select

from .rows import POINT_FIELDS, combine_draws
from .schema import Artifact, LogLine, Metric, Sample, SweepPointRow


class SeriesMixin:
    """Metric, sweep, sample, log and artifact rows of a run (mixed into :class:`~.store.Store`)."""

    def add_metrics(self, run_id: int, rows: Iterable[tuple[str, int, float]], *, owner: str | None = None) -> None:
        rows = list(rows)
        if not rows:
            return

        def add(s: Session) -> None:
            keys = {(k, st) for k, st, _ in rows}
            # idempotent: a resumed run rewrites a step instead of duplicating it
            for k, st in keys:
                s.exec(delete(Metric).where(Metric.run_id == run_id, Metric.key == k, Metric.step == st))
            s.add_all([Metric(run_id=run_id, key=k, step=int(st), value=float(v)) for k, st, v in rows])

        self._write(add, owner=(run_id, owner) if owner else None)

    def delete_metrics_after(
        self,
        run_id: int,
        step: int,
        keys_prefix: str = "",
        *,
        keys: Sequence[str] | None = None,
        exclude_keys: Sequence[str] | None = None,
        owner: str | None = None,
    ) -> None:
        """Delete a run's metric rows with ``step > step`` (optionally only ``keys``, or all but
        ``exclude_keys``). A resume uses it to drop what was written after the checkpoint."""

        def rm(s: Session) -> None:
            stmt = delete(Metric).where(Metric.run_id == run_id, Metric.step > step)
            if keys_prefix:
                stmt = stmt.where(col(Metric.key).startswith(keys_prefix))
            if keys is not None:
                stmt = stmt.where(col(Metric.key).in_(list(keys)))
            if exclude_keys:
                stmt = stmt.where(col(Metric.key).not_in(list(exclude_keys)))
            s.exec(stmt)

        self._write(rm, owner=(run_id, owner) if owner else None)

    def delete_sweeps(self, run_id: int, *, owner: str | None = None) -> None:
        """Delete a run's sweep points and perturbation views (a resumed run redoes its sweep)."""

        def rm(s: Session) -> None:
            s.exec(delete(SweepPointRow).where(SweepPointRow.run_id == run_id))
            s.exec(delete(Sample).where(Sample.run_id == run_id))

        self._write(rm, owner=(run_id, owner) if owner else None)

    def metrics(self, run_id: int, *, after_id: int = 0, keys: Sequence[str] | None = None) -> list[Metric]:
        def q(s: Session) -> list[Metric]:
            stmt = select(Metric).where(Metric.run_id == run_id, col(Metric.id) > after_id)
            if keys:
                stmt = stmt.where(col(Metric.key).in_(list(keys)))
            return list(s.exec(stmt.order_by(col(Metric.id))).all())

        return self._read(q)

    def latest_metrics(self, run_id: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in sorted(self.metrics(run_id), key=lambda m: (m.step, m.id)):
            out[m.key] = m.value
        return out

    # ------------------------------------------------------------------------------------ sweeps
    def add_sweep_points(
        self, run_id: int, attack: str, labels: str, points: Iterable[dict], *, gradient: str = "eval", clip: bool = True, cost: str = "train", mask: int = 0,
        owner: str | None = None,
    ) -> None:
        """Store points of one sweep, keyed by (attack, labels, gradient, clip, cost, mask draw, ε); a point
        written again replaces the old one (a resumed run redoes its sweep)."""
        pts = list(points)
        key = dict(attack=attack, labels=labels, gradient=gradient, clip=bool(clip), cost=cost, mask=int(mask))

        def add(s: Session) -> None:
            for p in pts:
                s.exec(delete(SweepPointRow).where(*(getattr(SweepPointRow, k) == v for k, v in key.items()), SweepPointRow.run_id == run_id,
                                                   SweepPointRow.epsilon == p["epsilon"]))
            s.add_all(
                [
                    SweepPointRow(
                        run_id=run_id,
                        **key,
                        **{k: p[k] for k in ("epsilon", "accuracy", "error", "mean_confidence", "mean_confidence_wrong", "n", "n_wrong")},
                    )
                    for p in pts
                ]
            )

        self._write(add, owner=(run_id, owner) if owner else None)

    def sweep_points(self, run_id: int, *, after_id: int = 0) -> list[SweepPointRow]:
        return self._read(
            lambda s: list(
                s.exec(
                    select(SweepPointRow)
                    .where(SweepPointRow.run_id == run_id, col(SweepPointRow.id) > after_id)
                    .order_by(col(SweepPointRow.attack), col(SweepPointRow.labels), col(SweepPointRow.gradient), col(SweepPointRow.clip).desc(),
                              col(SweepPointRow.cost), col(SweepPointRow.mask), col(SweepPointRow.epsilon))
                ).all()
            )
        )

    def sweeps(self, run_id: int, *, draws: bool = False) -> list[dict]:
        """Sweeps of a run, one per (attack, labels, gradient, clip, cost), points sorted by ε.

        A dropout-gradient reading drawn with several masks is one sweep whose points are the mean over
        the draws, each with ``error_spread`` / ``accuracy_spread`` (half the range) and ``masks`` = the
        number of draws; ``draws=True`` adds each draw's own points under ``"draws"``."""
        groups: dict[tuple, dict[int, list[dict]]] = {}
        for p in self.sweep_points(run_id):
            groups.setdefault((p.attack, p.labels, p.gradient, bool(p.clip), p.cost), {}).setdefault(int(p.mask), []).append(
                {k: getattr(p, k) for k in POINT_FIELDS}
            )
        out = []
        # the default reading (true labels, eval-mode gradient, clipped, training cost) first
        order = sorted(groups, key=lambda k: (k[0], k[1] != "true", k[1], k[2] != "eval", k[2], not k[3], k[4] != "train", k[4]))
        for key in order:
            (attack, labels, gradient, clip, cost), by_mask = key, groups[key]
            per_draw = [sorted(pts, key=lambda d: d["epsilon"]) for _m, pts in sorted(by_mask.items())]
            entry = {"attack": attack, "labels": labels, "gradient": gradient, "clip": clip, "cost": cost, "masks": len(per_draw),
                     "points": combine_draws(per_draw)}
            if draws and len(per_draw) > 1:
                entry["draws"] = per_draw
            out.append(entry)
        return out

    # ------------------------------------------------------------------------------------ samples, logs, artifacts
    def add_samples(self, run_id: int, samples: Iterable[Sample], *, owner: str | None = None) -> None:
        rows = list(samples)

        def add(s: Session) -> None:
            for r in rows:
                r.run_id = run_id
                s.exec(delete(Sample).where(Sample.run_id == run_id, Sample.idx == r.idx, Sample.epsilon == r.epsilon))
            s.add_all(rows)

        self._write(add, owner=(run_id, owner) if owner else None)

    def samples(self, run_id: int) -> list[Sample]:
        return self._read(
            lambda s: list(s.exec(select(Sample).where(Sample.run_id == run_id).order_by(col(Sample.epsilon), col(Sample.idx))).all())
        )

    def log(self, run_id: int, message: str, level: str = "info", *, owner: str | None = None) -> None:
        self._write(lambda s: s.add(LogLine(run_id=run_id, message=message, level=level)), owner=(run_id, owner) if owner else None)

    def logs(self, run_id: int, *, after_id: int = 0, limit: int | None = None) -> list[LogLine]:
        def q(s: Session) -> list[LogLine]:
            stmt = select(LogLine).where(LogLine.run_id == run_id, col(LogLine.id) > after_id).order_by(col(LogLine.id))
            if limit:
                stmt = stmt.limit(limit)
            return list(s.exec(stmt).all())

        return self._read(q)

    def set_artifact(self, run_id: int, kind: str, data: Any, *, owner: str | None = None) -> None:
        payload = json.dumps(data)

        def put(s: Session) -> None:
            s.exec(delete(Artifact).where(Artifact.run_id == run_id, Artifact.kind == kind))
            s.add(Artifact(run_id=run_id, kind=kind, data_json=payload))

        self._write(put, owner=(run_id, owner) if owner else None)

    def artifacts(self, run_id: int) -> dict[str, Any]:
        rows = self._read(lambda s: list(s.exec(select(Artifact).where(Artifact.run_id == run_id)).all()))
        return {a.kind: json.loads(a.data_json) for a in rows}

