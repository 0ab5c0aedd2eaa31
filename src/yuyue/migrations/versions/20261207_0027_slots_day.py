"""ix_slots_day: slots by day alone, for the statement that reads the released days' slots of every
service at once (the watch's sold-out-fast check, rule G19), which scanned the whole table
(decision 0101: EXPLAIN on 1.4 M slots, a parallel sequential scan of 14,300 pages, 220–300 ms,
became an index scan of 242 pages, 14–26 ms)

Revision ID: 0027
Revises: 0001
Create Date: 2026-12-07 03:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0001"  # its own branch: needs slots (0001) only
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_slots_day", "slots", ["day"])


def downgrade() -> None:
    op.drop_index("ix_slots_day", table_name="slots")
