"""Alembic environment for the adv-tui catalog.

adv-tui runs it through :mod:`tui_adv.catalog.migrate` with an open connection (``config.attributes
["connection"]``, inside the transaction that holds the schema lock). Run by hand (``alembic -x`` is not
needed) it uses ``sqlalchemy.url`` from the config, else ``$ADV_TUI_DB``, else ``./runs.db``.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel, create_engine

import tui_adv.catalog.schema  # noqa: F401 - registers the tables on SQLModel.metadata
from tui_adv.catalog.urls import resolve_db_url


def _run(connection) -> None:  # noqa: ANN001 - a SQLAlchemy Connection
    context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(resolve_db_url(context.config.get_main_option("sqlalchemy.url")))
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


main()
