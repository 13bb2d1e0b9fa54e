"""Finding runs by what they are: the newest run of an experiment, as one indexed query.

Every run row carries the key of the experiment its config describes (``runs.identity``, see
:mod:`tui_adv.config.identity`) and the rule that computed it. A catalog upgraded from schema 5, or a
row written under another rule (the config model changed since), is brought up to date here, the first
time a lookup needs it: the stale rows' keys are recomputed from their stored config and written back.
When the catalog cannot be written (a read-only file), the keys are used from memory for the lookup,
so a read-only catalog finds the same runs.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from sqlalchemy import bindparam, or_, text, update
from sqlmodel import Session, col, select

from ..choices import RunStatus
from ..config.identity import IDENTITY_RULE, identity, identity_key
from .schema import Run

RECHECK_S = 30.0  # how often a long-lived store (the dashboard) looks for rows of another rule again


def identity_fields(config_json: str | None) -> dict[str, Any]:
    """The ``identity`` / ``identity_rule`` fields of a row with this config (no key for a config that
    is not a JSON object: a damaged row is no experiment)."""
    return {"identity": identity_key(config_json) if identity(config_json) else None, "identity_rule": IDENTITY_RULE}


class LookupMixin:
    """Run look-ups by experiment identity (mixed into :class:`~.store.Store`)."""

    _identities_checked: float | None = None
    _unwritten_identities: dict[int, str | None] = {}  # keys computed but not stored (read-only catalog)

    def refresh_identities(self) -> int:
        """Recompute the identity of every row stamped with another rule (or none); returns how many.
        Rows are written back when the catalog can be written, else kept in memory for lookups."""
        stale = self._read(
            lambda s: s.connection()
            .execute(text("SELECT id, config_json FROM runs WHERE identity_rule IS NULL OR identity_rule != :rule"), {"rule": IDENTITY_RULE})
            .all()
        )
        keys = {int(rid): identity_fields(cj)["identity"] for rid, cj in stale}
        self._identities_checked = time.monotonic()
        if not keys:
            self._unwritten_identities = {}
            return 0
        stmt = update(Run).where(col(Run.id) == bindparam("rid")).values(identity=bindparam("key"), identity_rule=IDENTITY_RULE)

        def write(s: Session) -> None:  # updated_at untouched: nothing a reader shows has changed
            s.connection().execute(stmt, [{"rid": rid, "key": key} for rid, key in keys.items()])

        try:
            self._write(write)
            self._unwritten_identities = {}
        except Exception:  # noqa: BLE001 - a catalog this process cannot write: the keys serve from memory
            self._unwritten_identities = keys
        return len(keys)

    def _fresh_identities(self) -> dict[int, str | None]:
        if self._identities_checked is None or time.monotonic() - self._identities_checked > RECHECK_S:
            self.refresh_identities()
        return self._unwritten_identities

    def newest_run(self, config_json: str | None = None, **where: Any) -> Run | None:
        """The newest run (in ``status``, default completed) of the experiment ``config_json``
        describes, or, without a config, the newest one labelled ``experiment`` (and ``profile``);
        ``where`` takes the filters of :meth:`runs_like`."""
        runs = self.runs_like(config_json, limit=1, **where)
        return runs[0] if runs else None

    def runs_like(
        self,
        config_json: str | None = None,
        *,
        experiment: str | None = None,
        profile: str | None = None,
        status: Sequence[str] = (RunStatus.COMPLETED,),
        with_checkpoint: bool = False,
        limit: int | None = None,
    ) -> list[Run]:
        """The runs of an experiment in ``status``, newest first. ``with_checkpoint``: only rows that name a
        checkpoint (the caller checks that the file is there)."""
        stmt = select(Run).where(col(Run.status).in_(list(status)))
        if config_json is not None:
            want = identity_fields(config_json)["identity"]
            if want is None:
                return []
            extra = [rid for rid, key in self._fresh_identities().items() if key == want]
            stmt = stmt.where(or_(col(Run.identity) == want, col(Run.id).in_(extra)) if extra else col(Run.identity) == want)
        if experiment is not None:
            stmt = stmt.where(col(Run.experiment) == experiment)
        if profile is not None:
            stmt = stmt.where(col(Run.profile) == profile)
        if with_checkpoint:
            stmt = stmt.where(col(Run.checkpoint_path).is_not(None))
        stmt = stmt.order_by(col(Run.id).desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        return self._read(lambda s: self._load_runs(s, stmt))

    def run_keys(self, status: Sequence[str] = (RunStatus.COMPLETED,)) -> list[tuple[int, str | None, str, str | None]]:
        """(id, identity key, experiment, profile) of every run in ``status``, newest first: one light
        query (no config or summary text) for a reader that resolves many experiments at once (the
        scorecard's :class:`~tui_adv.measure.Ctx`)."""
        extra = self._fresh_identities()
        stmt = select(Run.id, Run.identity, Run.experiment, Run.profile).where(col(Run.status).in_(list(status))).order_by(col(Run.id).desc())
        rows = self._read(lambda s: list(s.exec(stmt).all()))
        return [(int(rid), extra.get(int(rid), key), exp, prof) for rid, key, exp, prof in rows]
