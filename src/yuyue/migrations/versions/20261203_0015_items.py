"""Items (docs/rules.md "Items"): services.item_code; no-show marks keep their item and, per count of the
rule, the ban that used them up (G15's one-day and one-item counts are separate)

Revision ID: 0015
Revises: 0003
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0003"  # its own branch: needs services (0001) and no_show_marks (0003)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("services", sa.Column("item_code", sa.String(length=64), nullable=True))
    with op.batch_alter_table("no_show_marks") as batch:
        batch.add_column(sa.Column("item", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("item_ban_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_no_show_marks_item_ban_id_bans"), "bans", ["item_ban_id"], ["id"])
    # A ban of G15's one-item count used its no-shows for that count only: move its marks' ban there.
    op.execute(
        "UPDATE no_show_marks SET item_ban_id = ban_id, ban_id = NULL "
        "WHERE rule = 'city' AND ban_id IN (SELECT id FROM bans WHERE reason LIKE '%of one service%')"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE no_show_marks SET ban_id = item_ban_id WHERE ban_id IS NULL AND item_ban_id IS NOT NULL"
    )
    with op.batch_alter_table("no_show_marks") as batch:
        batch.drop_constraint(op.f("fk_no_show_marks_item_ban_id_bans"), type_="foreignkey")
        batch.drop_column("item_ban_id")
        batch.drop_column("item")
    with op.batch_alter_table("services") as batch:
        batch.drop_column("item_code")
