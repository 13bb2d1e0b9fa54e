"""``adv-tui db``: the catalog's schema (Alembic migrations)."""

from __future__ import annotations

import typer

from .app import DbOpt, app, db_of

db_app = typer.Typer(help="Look after the catalog's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, db: DbOpt = None) -> None:
    """Apply the catalog's schema migrations (Alembic) up to this adv-tui's. A SQLite file is also
    upgraded when opened; a server catalog (PostgreSQL) only by this command, run once from any host."""
    from ..catalog.migrate import upgrade_to_head
    from ..catalog.store import Store

    store = Store(db_of(ctx, db), create=False)
    typer.echo(upgrade_to_head(store))
