"""item_synonyms: the words people type for an item, kept by platform admins and used by the hall
finder's item search; citizens.elder_mode: elder mode remembered per account (issue 20)

Revision ID: 0024
Revises: 0001
Create Date: 2026-12-07 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0001"  # its own branch: needs citizens (0001) only
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "item_synonyms",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("term", sa.String(50), nullable=False, unique=True),
        sa.Column("means", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    # null: never chosen on this account (the browser's cookie decides)
    op.add_column("citizens", sa.Column("elder_mode", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("citizens") as batch:
        batch.drop_column("elder_mode")
    op.drop_table("item_synonyms")
