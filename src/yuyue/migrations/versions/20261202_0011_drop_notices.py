"""drop notices: the no-show and ban SMS are queued in the outbox (`messages`, dedup keys
`no_show:<number>` and `banned:<ban id>`); nothing read this table (issue 5)

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0008"  # the on-site branch (0003 → 0006 → 0008), which made the table
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notices_citizen_id"))
    op.drop_table("notices")


def downgrade() -> None:
    """The table as 0003 made it, empty: the rows it held were never read."""
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("dedup_key", sa.String(length=100), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["citizen_id"], ["citizens.id"], name=op.f("fk_notices_citizen_id_citizens")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_notices_dedup_key")),
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notices_citizen_id"), ["citizen_id"], unique=False)
