"""services.foreigner_related: the business a foreigner login may book (rules T2/G8, decision 0065)

Revision ID: 0014
Revises: 0001
Create Date: 2026-12-02 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0001"  # its own branch: needs services (0001) only
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "services",
        sa.Column("foreigner_related", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("foreigner_related")
