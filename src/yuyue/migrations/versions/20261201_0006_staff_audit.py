"""audit by hall clerks: audit_log.staff_id (a clerk revealing a citizen's details at the counter)

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"  # its own branch: needs staff_accounts (0003) and audit_log (0001)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("staff_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_audit_log_staff_id_staff_accounts"), "staff_accounts", ["staff_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_audit_log_staff_id_staff_accounts"), type_="foreignkey")
        batch_op.drop_column("staff_id")
