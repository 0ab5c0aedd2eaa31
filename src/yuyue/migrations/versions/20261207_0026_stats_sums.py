"""stats_hall_daily and stats_service_daily: `stats_daily` summed per (day, hall, channel) and per
(day, service), so a whole city's figures over a year read 10 and 4 times fewer rows (issue 21,
decision 0089); filled from the days already rolled up

Revision ID: 0026
Revises: 0004
Create Date: 2026-12-07 00:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0004"  # its own branch: needs stats_daily (0004) only
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = (
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


def _counts() -> list[sa.Column[int]]:
    return [sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS]


def upgrade() -> None:
    op.create_table(
        "stats_hall_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hall_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=24), nullable=False),
        *_counts(),
        sa.PrimaryKeyConstraint("day", "hall_id", "channel", name=op.f("pk_stats_hall_daily")),
    )
    op.create_index("ix_stats_hall_daily_hall_day", "stats_hall_daily", ["hall_id", "day"])
    op.create_table(
        "stats_service_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("hall_id", sa.String(length=64), nullable=False),
        *_counts(),
        sa.PrimaryKeyConstraint("day", "service_id", name=op.f("pk_stats_service_daily")),
    )
    op.create_index("ix_stats_service_daily_hall_day", "stats_service_daily", ["hall_id", "day"])
    sums = ", ".join(f"sum({name})" for name in COUNTS)
    names = ", ".join(COUNTS)
    op.execute(
        f"INSERT INTO stats_hall_daily (day, hall_id, channel, {names}) "
        f"SELECT day, hall_id, channel, {sums} FROM stats_daily GROUP BY day, hall_id, channel"
    )
    op.execute(
        f"INSERT INTO stats_service_daily (day, service_id, hall_id, {names}) "
        f"SELECT day, service_id, min(hall_id), {sums} FROM stats_daily GROUP BY day, service_id"
    )


def downgrade() -> None:
    op.drop_index("ix_stats_service_daily_hall_day", table_name="stats_service_daily")
    op.drop_table("stats_service_daily")
    op.drop_index("ix_stats_hall_daily_hall_day", table_name="stats_hall_daily")
    op.drop_table("stats_hall_daily")
