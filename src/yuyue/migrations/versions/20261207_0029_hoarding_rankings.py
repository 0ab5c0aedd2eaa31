"""hoarding_rankings: the 限制预约 page's hoarding suspects of each unit with an active admin, stored
by the nightly job `hoarding_rankings` so the page reads one row instead of ranking a city's
bookings on every visit (issue 23, rule G15's last clause)

Revision ID: 0029
Revises: 0001
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0001"  # its own branch: needs units (0001) only
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hoarding_rankings",
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("first", sa.Date(), nullable=False),
        sa.Column("last", sa.Date(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_hoarding_rankings_unit_id_units")),
        sa.PrimaryKeyConstraint("unit_id", name=op.f("pk_hoarding_rankings")),
    )


def downgrade() -> None:
    op.drop_table("hoarding_rankings")
