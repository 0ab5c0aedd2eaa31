"""bookings.cancelled_by: who cancelled a booking (docs/api.md "Bookings"): `citizen`, `hall` (a closed
day, docs/rules.md "A closed day that has bookings") or `staff`; every cancel so far was the citizen's

Revision ID: 0020
Revises: 0001
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0001"  # its own branch: needs bookings (0001) only
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("cancelled_by", sa.String(8), nullable=True))
    op.execute("UPDATE bookings SET cancelled_by = 'citizen' WHERE status = 'cancelled'")


def downgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("cancelled_by")
