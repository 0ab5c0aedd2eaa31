"""handset delivery reports on messages, found by provider and provider_ref (issue 7 item 2)

Revision ID: 0013
Revises: 0002
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("delivery_status", sa.String(length=16)),
    ("delivery_code", sa.String(length=100)),
    ("delivery_detail", sa.String(length=200)),
    ("delivery_reported_at", sa.DateTime()),
    ("delivery_received_at", sa.DateTime()),
)


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("messages", sa.Column(name, kind, nullable=True))
    op.create_index("ix_messages_provider_ref", "messages", ["provider", "provider_ref"])


def downgrade() -> None:
    op.drop_index("ix_messages_provider_ref", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
