"""Short document numbers masked with at most half shown (M6): a passport of nine characters was
stored masked as E123*5678, eight of nine in clear; `mask_id` now keeps two and two (E1*****78).
Existing citizens with a document other than a resident ID get their mask recomputed from the
encrypted number (keys as in 0023: handed over by `yuyue db upgrade`, else from the settings).

Revision ID: 0030
Revises: 0023
Create Date: 2026-12-07 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from yuyue.kit import crypto
from yuyue.kit.masking import mask_id
from yuyue.migrate import rewrite_rows

revision: str = "0030"
down_revision: str | None = "0023"  # needs the keys' handling of 0023, nothing newer
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    rewrite_rows(
        op.get_bind(),
        op.get_context().config,
        "citizens",
        "id_enc",
        lambda secret, enc: {"id_masked": mask_id(crypto.decrypt(secret, enc))} if enc else {},
        where="id_type <> 'resident_id'",
    )


def downgrade() -> None:
    """The shorter masks stay: they hide more, and the old ones cannot be told from them."""
