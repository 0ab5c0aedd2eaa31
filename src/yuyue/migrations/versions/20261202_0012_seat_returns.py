"""seat_returns: seats a cancel or a reschedule freed and the waiting list left, held until a
random moment of the policy's window (issue 9 item 5, decision 0081)

Revision ID: 0012
Revises: 0001
Create Date: 2026-12-02 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0001"  # its own branch: needs slots and services (0001) only
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seat_returns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("slot_id", sa.String(length=40), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("seats > 0", name=op.f("ck_seat_returns_seats_positive")),
        sa.ForeignKeyConstraint(["slot_id"], ["slots.id"], name=op.f("fk_seat_returns_slot_id_slots")),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_seat_returns_service_id_services")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seat_returns")),
    )
    with op.batch_alter_table("seat_returns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seat_returns_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_seat_returns_slot_id"), ["slot_id"], unique=False)


def downgrade() -> None:
    """Seats still held go back to their slots before the table goes (no seat is lost)."""
    op.execute(
        "UPDATE slots SET booked = booked - "
        "(SELECT sum(r.seats) FROM seat_returns r WHERE r.slot_id = slots.id) "
        "WHERE id IN (SELECT slot_id FROM seat_returns)"
    )
    with op.batch_alter_table("seat_returns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seat_returns_slot_id"))
        batch_op.drop_index(batch_op.f("ix_seat_returns_due_at"))
    op.drop_table("seat_returns")
