"""bureau systems: API clients bound to a unit; slots, bookings and figures pushed by bureaus' own
booking systems (rules G5, G6; decision 0080)

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ("released", "seats", "booked", "cancelled", "checked_in", "served", "no_show")


def upgrade() -> None:
    # No foreign key: SQLite cannot add one to an existing table without rebuilding it (and the
    # tables that refer to it). Units are never deleted; registration checks that the unit exists.
    op.add_column("api_clients", sa.Column("unit_id", sa.String(length=64), nullable=True))
    op.create_table(
        "bureau_slots",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("hall_id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=False),
        sa.Column("end", sa.DateTime(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name=op.f("fk_bureau_slots_client_id_api_clients")
        ),
        sa.ForeignKeyConstraint(["hall_id"], ["units.id"], name=op.f("fk_bureau_slots_hall_id_units")),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_bureau_slots_service_id_services")
        ),
        sa.PrimaryKeyConstraint("client_id", "external_id", name=op.f("pk_bureau_slots")),
    )
    op.create_index("ix_bureau_slots_client_day_service", "bureau_slots", ["client_id", "day", "service_id"])
    op.create_index("ix_bureau_slots_hall_day", "bureau_slots", ["hall_id", "day"])
    op.create_table(
        "bureau_bookings",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("slot_external_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id", "slot_external_id"],
            ["bureau_slots.client_id", "bureau_slots.external_id"],
            name="fk_bureau_bookings_slot_bureau_slots",
        ),
        sa.PrimaryKeyConstraint("client_id", "external_id", name=op.f("pk_bureau_bookings")),
    )
    op.create_index("ix_bureau_bookings_client_slot", "bureau_bookings", ["client_id", "slot_external_id"])
    op.create_table(
        "bureau_figures",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("hall_id", sa.String(length=64), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.PrimaryKeyConstraint("client_id", "day", "service_id", name=op.f("pk_bureau_figures")),
    )
    op.create_index("ix_bureau_figures_hall_day", "bureau_figures", ["hall_id", "day"])
    op.create_index("ix_bureau_figures_day", "bureau_figures", ["day"])


def downgrade() -> None:
    op.drop_index("ix_bureau_figures_day", table_name="bureau_figures")
    op.drop_index("ix_bureau_figures_hall_day", table_name="bureau_figures")
    op.drop_table("bureau_figures")
    op.drop_index("ix_bureau_bookings_client_slot", table_name="bureau_bookings")
    op.drop_table("bureau_bookings")
    op.drop_index("ix_bureau_slots_hall_day", table_name="bureau_slots")
    op.drop_index("ix_bureau_slots_client_day_service", table_name="bureau_slots")
    op.drop_table("bureau_slots")
    with op.batch_alter_table("api_clients") as batch:
        batch.drop_column("unit_id")
