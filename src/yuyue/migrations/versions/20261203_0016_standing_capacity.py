"""Standing capacity changes (rule G20): capacity_requests.date_to may be null (from date_from on);
capacity_periods keeps the daily capacity that days before an approved standing change keep

Revision ID: 0016
Revises: 0004
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0004"  # its own branch: needs capacity_requests (0004) and services (0001)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("capacity_requests") as batch:
        batch.alter_column("date_to", existing_type=sa.Date(), nullable=True)
    op.create_table(
        "capacity_periods",
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("daily_capacity", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_capacity_periods_service_id_services")
        ),
        sa.PrimaryKeyConstraint("service_id", "until", name=op.f("pk_capacity_periods")),
    )


def downgrade() -> None:
    op.drop_table("capacity_periods")
    op.execute("UPDATE capacity_requests SET date_to = date_from WHERE date_to IS NULL")
    with op.batch_alter_table("capacity_requests") as batch:
        batch.alter_column("date_to", existing_type=sa.Date(), nullable=False)
