"""alerts.figure and alerts.suggestion: the figure an abnormal-figure alert is about and the capacity
request it suggests (rule G19, issue 23)

Revision ID: 0021
Revises: 0001
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0001"  # its own branch: needs only the alerts table
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("figure", sa.JSON(), nullable=True))
    op.add_column("alerts", sa.Column("suggestion", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("suggestion")
        batch.drop_column("figure")
