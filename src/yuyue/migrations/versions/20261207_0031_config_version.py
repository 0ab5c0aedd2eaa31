"""config_version: every write to a table the catalogue, policy and calendar caches read bumps
`platform_state['config_version']` in the writer's own transaction, so an app process learns of a
change by reading one row instead of reloading everything each cache TTL (issue 21, decision 0103).
PostgreSQL only: statement-level triggers (a multi-row write bumps it once). On SQLite (one
process) the caches keep their plain TTL.

Revision ID: 0031
Revises: 0022
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0031"
down_revision: str | None = "0022"  # after extra_supply and calendar_years (0022), capacity_periods (0016)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table behind `catalogue.service`, `policy.service` and `calendar.service`'s caches.
TABLES = (
    "services",
    "units",
    "departments",
    "capacity_periods",
    "extra_supply",
    "policies",
    "calendar_days",
    "calendar_years",
    "closures",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION yuyue_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO platform_state (key, value) VALUES ('config_version', '1')
            ON CONFLICT (key) DO UPDATE SET value = (platform_state.value::bigint + 1)::text;
            RETURN NULL;
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION yuyue_config_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER config_changed ON {table}")
    op.execute("DROP FUNCTION yuyue_config_changed()")
