"""supply and oversight: admin sessions, lockouts, capacity requests, waiting list, stats rollups

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-25 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "status = 'waiting'"


def upgrade() -> None:
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["admin_id"], ["admins.id"], name=op.f("fk_admin_sessions_admin_id_admins")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_sessions")),
    )
    op.create_index("ix_admin_sessions_admin_id", "admin_sessions", ["admin_id"])
    op.create_table(
        "admin_lockouts",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_admin_lockouts")),
    )
    op.create_table(
        "capacity_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("hall_id", sa.String(length=64), nullable=False),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column("daily_capacity", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("overdue_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_capacity_requests_service_id_services")
        ),
        sa.ForeignKeyConstraint(["hall_id"], ["units.id"], name=op.f("fk_capacity_requests_hall_id_units")),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["admins.id"], name=op.f("fk_capacity_requests_requested_by_admins")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["admins.id"], name=op.f("fk_capacity_requests_decided_by_admins")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_capacity_requests")),
    )
    op.create_index("ix_capacity_requests_hall_id", "capacity_requests", ["hall_id"])
    op.create_index("ix_capacity_requests_status_overdue", "capacity_requests", ["status", "overdue_at"])
    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("hall_id", sa.String(length=64), nullable=False),
        sa.Column("dates", sa.JSON(), nullable=True),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("booking_number", sa.String(length=24), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizens.id"], name=op.f("fk_waitlist_entries_citizen_id_citizens")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_waitlist_entries_service_id_services")
        ),
        sa.ForeignKeyConstraint(["hall_id"], ["units.id"], name=op.f("fk_waitlist_entries_hall_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
    )
    op.create_index("ix_waitlist_service_status_id", "waitlist_entries", ["service_id", "status", "id"])
    op.create_index("ix_waitlist_citizen", "waitlist_entries", ["citizen_id", "created_at"])
    op.create_index(
        "uq_waitlist_waiting",
        "waitlist_entries",
        ["citizen_id", "service_id"],
        unique=True,
        sqlite_where=sa.text(WAITING),
        postgresql_where=sa.text(WAITING),
    )
    op.create_table(
        "stats_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("hall_id", sa.String(length=64), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "released",
                "booked",
                "seats",
                "cancelled",
                "checked_in",
                "served",
                "no_show",
                "waitlist",
                "wait_sum_s",
                "wait_n",
            )
        ),
        sa.PrimaryKeyConstraint("day", "service_id", "channel", name=op.f("pk_stats_daily")),
    )
    op.create_index("ix_stats_daily_hall_day", "stats_daily", ["hall_id", "day"])
    op.create_table(
        "stats_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rolled_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_stats_days")),
    )


def downgrade() -> None:
    op.drop_table("stats_days")
    op.drop_index("ix_stats_daily_hall_day", table_name="stats_daily")
    op.drop_table("stats_daily")
    op.drop_index("uq_waitlist_waiting", table_name="waitlist_entries")
    op.drop_index("ix_waitlist_citizen", table_name="waitlist_entries")
    op.drop_index("ix_waitlist_service_status_id", table_name="waitlist_entries")
    op.drop_table("waitlist_entries")
    op.drop_index("ix_capacity_requests_status_overdue", table_name="capacity_requests")
    op.drop_index("ix_capacity_requests_hall_id", table_name="capacity_requests")
    op.drop_table("capacity_requests")
    op.drop_table("admin_lockouts")
    op.drop_index("ix_admin_sessions_admin_id", table_name="admin_sessions")
    op.drop_table("admin_sessions")
