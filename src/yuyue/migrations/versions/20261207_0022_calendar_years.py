"""calendar_years: the years whose national calendar was imported from a file (issue 18, decision
0092); extra_supply and capacity_requests.hours/open_days: extended hours and extra days ("5+X") by
capacity request (rule G12, decision 0093)

Revision ID: 0022
Revises: 0001
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0016"  # after the standing capacity's change of capacity_requests
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calendar_years",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_calendar_years")),
    )
    op.add_column("capacity_requests", sa.Column("hours", sa.JSON(), nullable=True))
    op.add_column(
        "capacity_requests", sa.Column("open_days", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.create_table(
        "extra_supply",
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=True),
        sa.Column("open_day", sa.Boolean(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_extra_supply_service_id_services")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["capacity_requests.id"],
            name=op.f("fk_extra_supply_request_id_capacity_requests"),
        ),
        sa.PrimaryKeyConstraint("service_id", "day", name=op.f("pk_extra_supply")),
    )


def downgrade() -> None:
    op.drop_table("extra_supply")
    with op.batch_alter_table("capacity_requests") as batch:
        batch.drop_column("open_days")
        batch.drop_column("hours")
    op.drop_table("calendar_years")
