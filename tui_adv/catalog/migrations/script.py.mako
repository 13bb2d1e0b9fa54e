"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
    # keep schema_info in step (an older adv-tui reads it to refuse a newer catalog), and add the
    # revision to REVISIONS in tui_adv/catalog/migrate.py with SCHEMA_VERSION bumped in schema.py
    op.execute("UPDATE schema_info SET version = N WHERE id = 1")


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
