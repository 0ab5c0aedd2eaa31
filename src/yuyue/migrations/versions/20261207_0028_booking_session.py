"""bookings.session_ref: the login session a booking was made through (issue 23, rule G15's hoarding
evidence: "many bookings created in seconds through one session or partner"): `s:<tag>` the
citizen's own session, `p:<client id>:<tag>` a session a partner obtained (`p:<client id>` a partner
token without one), or the door that needs none (`staff`, `kiosk`, `waitlist`); `<tag>` is the first
16 hex digits of the SHA-256 of the session id, never the id itself. NULL for bookings made before

Revision ID: 0028
Revises: 0001
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0001"  # its own branch: needs bookings (0001) only
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("session_ref", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("session_ref")
