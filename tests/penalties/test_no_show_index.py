"""The no-show sweep (rules G13, M12) runs every quarter hour and asks for the bookings still
`booked` whose slot has ended. Migration 0003's partial index `ix_bookings_booked_end` answers it
without reading the whole bookings table (a city keeps every booking it ever took). The question is
the one `penalties.service.mark_no_shows` asks (`no_show_candidates`); an index that no longer
serves it fails."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from tests.conftest import Api
from yuyue.penalties.service import no_show_candidates


async def test_the_sweeps_question_is_answered_by_the_live_bookings_index(
    api: Api, database_url: str
) -> None:
    engine = api.app.state.engine
    # The sweep's own statement (penalties.service.mark_no_shows), compiled for this database.
    sweep = no_show_candidates(datetime(2026, 12, 1, 18, 0))
    async with engine.connect() as conn:
        if database_url.startswith("postgresql"):
            await conn.execute(text("SET enable_seqscan = off"))  # the table is empty: force the choice
            plan = "\n".join(row[0] for row in await conn.execute(text(f"EXPLAIN {_sql(sweep, engine)}")))
        else:
            rows = await conn.execute(text(f"EXPLAIN QUERY PLAN {_sql(sweep, engine)}"))
            plan = "\n".join(str(row[-1]) for row in rows)
    assert "ix_bookings_booked_end" in plan, plan


def _sql(statement: object, engine: object) -> str:
    compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=engine.dialect,  # type: ignore[attr-defined]
        compile_kwargs={"literal_binds": True},
    )
    return str(compiled)
