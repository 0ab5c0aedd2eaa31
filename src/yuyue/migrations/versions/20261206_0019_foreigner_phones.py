"""foreigner_phones: which travel documents each confirmed phone holds (issue 19: one phone, at most
YUYUE_FOREIGNER_DOCUMENTS_PER_PHONE documents); both as keyed hashes, never in clear

Revision ID: 0019
Revises: 0005
Create Date: 2026-12-06 21:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0005"  # its own branch: beside the identity tables
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "foreigner_phones",
        sa.Column("phone_hash", sa.String(64), nullable=False),
        sa.Column("id_type", sa.String(32), nullable=False),
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("phone_hash", "id_type", "id_hash", name=op.f("pk_foreigner_phones")),
    )


def downgrade() -> None:
    op.drop_table("foreigner_phones")
