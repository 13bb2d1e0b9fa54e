"""Schema upgrades through Alembic.

The revisions live in ``tui_adv/catalog/migrations/versions`` (package data). Revision ``000N`` is the
schema version N that ``schema_info`` records; catalogs made before Alembic (schema_info only, or no
version table at all = version 1) are recognised by that table and stamped with the matching revision
before anything runs, so they upgrade in place without losing a row. ``schema_info`` is kept in step
with the head revision, so an older adv-tui refuses a newer catalog instead of misreading it.

Opening a catalog (:func:`ensure_schema`):

- fresh (no ``runs`` table): every table is created from the models and stamped at head;
- at head: nothing is written (missing tables are created);
- older, SQLite: upgraded in place inside one locked transaction (all or nothing), and the store's
  ``notice`` says so in one line; older, a server (PostgreSQL): refused with one line naming
  ``adv-tui db upgrade``, since other hosts may still run the older adv-tui against it;
- newer than this adv-tui: refused with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect
from sqlmodel import SQLModel

from ..errors import UserError
from .schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from .store import Store

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# schema_info version → Alembic revision (``0001`` is the schema the version table called 1)
REVISIONS = {1: "0001", 2: "0002", 3: "0003", 4: "0004", 5: "0005", 6: "0006"}
HEAD = REVISIONS[SCHEMA_VERSION]
VERSION_OF = {rev: v for v, rev in REVISIONS.items()}
_PG_LOCK_KEY = 7_452_801  # pg_advisory_xact_lock key: one schema change at a time per server database


class NeedsUpgrade(UserError):
    """The catalog's schema is older than this adv-tui's and it is not upgraded on open."""


def _state(conn: Any) -> tuple[set[str], list[str], int | None]:
    """(tables, Alembic revisions stamped, schema_info version) of the catalog on ``conn``."""
    tables = set(inspect(conn).get_table_names())
    revs: list[str] = []
    version: int | None = None
    if "alembic_version" in tables:
        revs = [str(r) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars()]
    if "schema_info" in tables:
        row = conn.exec_driver_sql("SELECT version FROM schema_info WHERE id = 1").first()
        version = int(row[0]) if row and row[0] is not None else None
    return tables, revs, version


def current_revision(tables: set[str], revs: list[str], version: int | None) -> str | None:
    """Where the catalog is: its Alembic revision, else the one its schema_info version names (a catalog
    made before Alembic), else ``0001`` for a catalog older than the version table; None when fresh.
    When the two disagree the older one counts: every revision checks what is already there, so running
    one again changes nothing, while skipping one would leave a column missing."""
    if "runs" not in tables:
        return revs[0] if revs else None
    from_info = REVISIONS.get(version or 1, f"schema {version}")
    if revs and revs[0] in VERSION_OF and from_info in VERSION_OF:
        return min(revs[0], from_info, key=VERSION_OF.__getitem__)
    return revs[0] if revs else from_info


def _newer(store: Store, revs: list[str], version: int | None) -> UserError | None:
    if version is not None and version > SCHEMA_VERSION:
        return UserError(f"catalog {store.safe_url} has schema version {version}, newer than this adv-tui understands ({SCHEMA_VERSION}); upgrade adv-tui")
    unknown = [r for r in revs if r not in VERSION_OF]
    if unknown or len(revs) > 1:
        return UserError(f"catalog {store.safe_url} is at schema revision {','.join(revs)}, which this adv-tui does not know (head {HEAD}); upgrade adv-tui")
    return None


def _where(store: Store) -> str:
    from .urls import _sqlite_path

    return str(_sqlite_path(store.url) or store.safe_url)


def ensure_schema(store: Store, *, auto_upgrade: bool | None = None) -> str | None:
    """Bring the catalog to the head revision as the module docstring says; the one-line notice of an
    upgrade done in place, else None. ``auto_upgrade`` None: yes for SQLite, no for a server."""
    tables, revs, version = store._retry(lambda: _read_state(store))
    err = _newer(store, revs, version)
    if err:
        raise err
    cur = current_revision(tables, revs, version)
    missing = set(SQLModel.metadata.tables) - tables
    if cur == HEAD and revs and version == SCHEMA_VERSION and not missing:
        return None  # the common case: nothing to write, no lock taken
    if auto_upgrade is None:
        auto_upgrade = store.engine.dialect.name == "sqlite"
    if cur is not None and cur != HEAD and not auto_upgrade:
        raise NeedsUpgrade(
            f"catalog {_where(store)} has schema {cur} (version {VERSION_OF.get(cur, '?')}), older than this adv-tui's {HEAD}: "
            f"run `adv-tui db upgrade --db URL` once (other hosts' older adv-tui then refuse it until upgraded)"
        )
    before = store._retry(lambda: upgrade(store))
    if before is None or before == HEAD:
        return None
    return f"catalog {_where(store)}: schema upgraded in place from {before} (version {VERSION_OF.get(before, '?')}) to {HEAD} (version {SCHEMA_VERSION}), no row lost"


def _read_state(store: Store) -> tuple[set[str], list[str], int | None]:
    with store.engine.connect() as conn:
        return _state(conn)


def upgrade(store: Store) -> str | None:
    """One locked transaction: create a fresh catalog at head, or stamp a pre-Alembic one and run the
    revisions up to head, then create any table still missing. Returns the revision it found (None:
    fresh). Another process doing the same at the same moment waits for the lock, then finds it done."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock first: openers of one file go one at a time
        elif conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        tables, revs, version = _state(conn)  # again, under the lock
        err = _newer(store, revs, version)
        if err:
            raise err
        cur = current_revision(tables, revs, version)
        if cur is None:
            SQLModel.metadata.create_all(conn)
            _stamp(conn, HEAD)
        else:
            if cur not in VERSION_OF:
                raise UserError(f"catalog {store.safe_url} has schema version {version}, which this adv-tui does not know; upgrade adv-tui")
            if "schema_info" not in tables:  # older than the version table: version 1
                SQLModel.metadata.tables["schema_info"].create(conn)
            _set_version(conn, VERSION_OF[cur])
            if revs != [cur]:
                _alembic(conn, "stamp", cur)
            if cur != HEAD:
                _alembic(conn, "upgrade", HEAD)
            SQLModel.metadata.create_all(conn)  # tables added without a revision (checkfirst)
            _set_version(conn, SCHEMA_VERSION)
        conn.commit()
        return cur


def _set_version(conn: Any, version: int) -> None:
    if conn.exec_driver_sql(f"UPDATE schema_info SET version = {int(version)} WHERE id = 1").rowcount != 1:
        conn.exec_driver_sql(f"INSERT INTO schema_info (id, version) VALUES (1, {int(version)})")


def _stamp(conn: Any, rev: str) -> None:
    _set_version(conn, VERSION_OF[rev])
    _alembic(conn, "stamp", rev)


def alembic_config(conn: Any = None, url: str | None = None) -> Any:
    """An Alembic Config for the shipped revisions, bound to ``conn`` (or to ``url``)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def _alembic(conn: Any, what: str, rev: str) -> None:
    from alembic import command

    getattr(command, what)(alembic_config(conn), rev)


def status(store: Store) -> tuple[str | None, str]:
    """(the catalog's revision or None when empty, head) without changing anything."""
    tables, revs, version = store._retry(lambda: _read_state(store))
    err = _newer(store, revs, version)
    if err:
        raise err
    return current_revision(tables, revs, version), HEAD


def upgrade_to_head(store: Store) -> str:
    """``adv-tui db upgrade``: bring the catalog to head whatever its kind; one line saying what it did."""
    tables, revs, version = store._retry(lambda: _read_state(store))
    err = _newer(store, revs, version)
    if err:
        raise err
    cur = current_revision(tables, revs, version)
    if cur == HEAD and revs and version == SCHEMA_VERSION:
        store._retry(lambda: upgrade(store))  # tables added without a revision, if any
        return f"catalog {_where(store)}: already at schema {HEAD} (version {SCHEMA_VERSION}); nothing to do"
    before = store._retry(lambda: upgrade(store))
    if before is None:
        return f"catalog {_where(store)}: created at schema {HEAD} (version {SCHEMA_VERSION})"
    if before == HEAD:
        return f"catalog {_where(store)}: stamped at schema {HEAD} (version {SCHEMA_VERSION}); its tables were already current"
    return f"catalog {_where(store)}: upgraded from schema {before} (version {VERSION_OF.get(before, '?')}) to {HEAD} (version {SCHEMA_VERSION}), no row lost"
