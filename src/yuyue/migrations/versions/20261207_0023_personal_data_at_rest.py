"""Less personal data in clear (issue 19, decision 0095): citizens' names encrypted (name_enc,
name_masked), their birth date dropped (read from the ID number when a rule needs it), admins'
mobile numbers encrypted (phone_enc, phone_masked). Existing rows are rewritten.

Encryption needs the platform's keys: `yuyue db upgrade` hands them over (`migrate.upgrade`); when
rows exist and none were handed over, they come from the settings (YUYUE_SECRET_KEY,
YUYUE_DATA_KEYS). An empty database needs none.

Revision ID: 0023
Revises: 0001
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from yuyue.kit import crypto
from yuyue.kit.masking import mask_name, mask_phone
from yuyue.migrate import data_secret, rewrite_rows

revision: str = "0023"
down_revision: str | None = "0001"  # its own branch: needs citizens and admins (0001) only
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _secret() -> str:
    return data_secret(op.get_context().config)


def _rewrite(table: str, source: str, change: Callable[[str, Any], dict[str, Any]]) -> None:
    """Every row of `table`, `source` column read, the columns `change` gives written, by id."""
    rewrite_rows(op.get_bind(), op.get_context().config, table, source, change)


def upgrade() -> None:
    op.add_column("citizens", sa.Column("name_enc", sa.Text(), nullable=True))
    op.add_column("citizens", sa.Column("name_masked", sa.String(length=40), nullable=True))
    op.add_column("admins", sa.Column("phone_enc", sa.Text(), nullable=True))
    op.add_column("admins", sa.Column("phone_masked", sa.String(length=20), nullable=True))
    _rewrite(
        "citizens",
        "name",
        lambda secret, name: {
            "name_enc": crypto.encrypt(secret, name or ""),
            "name_masked": mask_name(name or ""),
        },
    )
    _rewrite(
        "admins",
        "phone",
        lambda secret, phone: {
            "phone_enc": crypto.encrypt(secret, phone or ""),
            "phone_masked": mask_phone(phone) if phone else "",
        },
    )
    with op.batch_alter_table("citizens") as batch:
        batch.alter_column("name_enc", existing_type=sa.Text(), nullable=False)
        batch.alter_column("name_masked", existing_type=sa.String(length=40), nullable=False)
        batch.drop_column("name")
        batch.drop_column("birth_date")
    with op.batch_alter_table("admins") as batch:
        batch.alter_column("phone_enc", existing_type=sa.Text(), nullable=False)
        batch.alter_column("phone_masked", existing_type=sa.String(length=20), nullable=False)
        batch.drop_column("phone")


def downgrade() -> None:
    """Names and phones back in clear, and birth dates read again from the resident ID numbers."""
    from yuyue.kit.idnumbers import parse_resident_id

    op.add_column("citizens", sa.Column("name", sa.String(length=100), nullable=True))
    op.add_column("citizens", sa.Column("birth_date", sa.Date(), nullable=True))
    op.add_column("admins", sa.Column("phone", sa.String(length=20), nullable=True))

    def citizen(secret: str, value: Any) -> dict[str, Any]:
        name_enc, id_enc = value
        number = crypto.decrypt(secret, id_enc) if id_enc else ""
        resident = parse_resident_id(number) if number else None
        return {
            "name": crypto.decrypt(secret, name_enc) if name_enc else "",
            "birth_date": resident.birth_date if resident else None,
        }

    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, name_enc, id_enc FROM citizens ORDER BY id")).all()
    secret = _secret() if rows else ""
    for row_id, name_enc, id_enc in rows:
        bind.execute(
            sa.text("UPDATE citizens SET name = :name, birth_date = :birth_date WHERE id = :id"),
            {**citizen(secret, (name_enc, id_enc)), "id": row_id},
        )
    _rewrite("admins", "phone_enc", lambda secret, enc: {"phone": crypto.decrypt(secret, enc) if enc else ""})
    with op.batch_alter_table("citizens") as batch:
        batch.alter_column("name", existing_type=sa.String(length=100), nullable=False)
        batch.drop_column("name_masked")
        batch.drop_column("name_enc")
    with op.batch_alter_table("admins") as batch:
        batch.alter_column("phone", existing_type=sa.String(length=20), nullable=False)
        batch.drop_column("phone_masked")
        batch.drop_column("phone_enc")
