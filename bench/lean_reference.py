"""The lean reference (issue 21): the bare transaction of a booking on yuyue's own schema, as a raw
ASGI app over asyncpg, with none of yuyue's other rules. bench/rush.py starts it on the same database
in the same run and drives it with the same load generator; yuyue's committed/s is reported as a
ratio of this one's.

    uvicorn lean_reference:app --app-dir bench --workers 2 --loop uvloop --http httptools
    (LEAN_DATABASE_URL, LEAN_POOL; `python bench/lean_reference.py --port P --workers N` does the same)

What one request does, `POST /api/v1/appointments` with `Authorization: Bearer <citizen id>` and
`{"slot_id": …, "channel": "web"}`: one statement in autocommit, prepared once per connection by
asyncpg,

    WITH seat AS (UPDATE slots SET booked = booked + 1 WHERE id = $slot
                   AND booked + 1 <= capacity - capacity * 10 / 100 RETURNING booked),
         counter AS (INSERT INTO booking_counters … FROM seat ON CONFLICT DO UPDATE SET n = n + 1
                     RETURNING n),                             -- the per-hall-day number (rule M12)
         booked AS (INSERT INTO bookings … FROM counter RETURNING id, number),  -- uq_bookings_live_key
         sms AS (INSERT INTO messages … FROM booked JOIN citizens …)            -- the outbox row
    SELECT id, number FROM booked

then `201 {"id", "number"}` (or `409 slot_full`, `409 already_booked` from the unique index). It does
not check a token, a session, a ban, the horizon, the live-booking cap or anything else: what it
measures is the floor of a booking in Python on this machine (HTTP parsing, one round trip, a commit).
Slots are read once at start (ids `lean-*`, made by rush.py, as pgbench's `pgb-*`).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from datetime import date, datetime
from typing import Any

import asyncpg

BOOK = """
WITH seat AS (
    UPDATE slots SET booked = booked + 1
     WHERE id = $1 AND booked + 1 <= capacity - (capacity * 10) / 100 RETURNING booked
), counter AS (
    INSERT INTO booking_counters (hall_id, day, n) SELECT $2, $3::date, 1 FROM seat
    ON CONFLICT (hall_id, day) DO UPDATE SET n = booking_counters.n + 1 RETURNING n
), booked AS (
    INSERT INTO bookings (number, citizen_id, service_id, hall_id, slot_id, slot_day, slot_start,
                          slot_end, quantity, channel, business_types, company_uscc, company_name,
                          status, live_key, rebook_of, rebooked, reason, created_at, updated_at)
    SELECT $4 || lpad(n::text, 5, '0'), $5, $6, $15, $1, $3::date, $7, $8, 1, $9, '[]', NULL, NULL,
           'booked', $10, NULL, false, NULL, $11, $11
      FROM counter
    RETURNING id, number, slot_start
), sms AS (
    INSERT INTO messages (idem_key, kind, channel, template, params, phone_enc, phone_masked,
                          citizen_id, booking_number, unit_path, status, attempts, next_attempt_at,
                          created_at, updated_at)
    SELECT $12, 'booked', 'sms', 'booked',
           json_build_object('number', b.number, 'start', b.slot_start, 'hall', $13::text),
           c.phone_enc, c.phone_masked, c.id, b.number, $14, 'pending', 0, $11, $11, $11
      FROM booked b JOIN citizens c ON c.id = $5
)
SELECT id, number FROM booked
"""

SLOTS = """
SELECT s.id, s.service_id, s.day, s.start, s."end", sv.hall_id, u.path, u.name, coalesce(u.code, '00')
  FROM slots s JOIN services sv ON sv.id = s.service_id JOIN units u ON u.id = sv.hall_id
 WHERE s.id LIKE 'lean-%'
"""

HEADERS_201 = [(b"content-type", b"application/json")]


class Lean:
    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.slots: dict[str, tuple[Any, ...]] = {}

    async def startup(self) -> None:
        url = os.environ["LEAN_DATABASE_URL"]
        size = int(os.environ.get("LEAN_POOL", "8"))
        name = os.environ.get("LEAN_APP_NAME", "lean")
        self.pool = await asyncpg.create_pool(
            url, min_size=size, max_size=size, server_settings={"application_name": name}
        )
        async with self.pool.acquire() as conn:
            for row in await conn.fetch(SLOTS):
                self.slots[row[0]] = tuple(row)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.startup()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self.pool is not None:
                        await self.pool.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["path"] == "/readyz":
            await self.answer(send, 200, {"ok": True})
            return
        citizen = 0
        for name, value in scope["headers"]:
            if name == b"authorization":
                citizen = int(value[7:])
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = json.loads(body)
        slot = self.slots.get(request["slot_id"])
        if slot is None:
            await self.answer(send, 404, {"code": "not_found"})
            return
        slot_id, service_id, day, start, end, hall_id, path, hall_name, code = slot
        now = datetime.now()
        assert self.pool is not None
        try:
            row = await self.pool.fetchrow(
                BOOK,
                slot_id,
                "lean",
                day,
                f"L{code}{day:%Y%m%d}",
                citizen,
                service_id,
                start,
                end,
                request["channel"],
                f"lean:{secrets.token_hex(8)}",
                now,
                secrets.token_hex(16),
                hall_name,
                path,
                hall_id,
            )
        except asyncpg.UniqueViolationError:
            await self.answer(send, 409, {"code": "already_booked"})
            return
        if row is None:
            await self.answer(send, 409, {"code": "slot_full"})
            return
        await self.answer(send, 201, {"id": row[0], "number": row[1]})

    @staticmethod
    async def answer(send: Any, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        headers = [*HEADERS_201, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


app = Lean()


async def seed(url: str, service_id: int, slots: int, day: date) -> list[str]:
    """The reference's own slots (`lean-N`) of `service_id` on `day`: plenty of seats."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO slots (id, service_id, day, start, "end", capacity, booked)
            SELECT 'lean-' || g, $1, $2::date, $2::date + time '09:00', $2::date + time '10:00',
                   100000000, 0
              FROM generate_series(1, $3) AS g
            ON CONFLICT (id) DO NOTHING
            """,
            service_id,
            day,
            slots,
        )
    finally:
        await conn.close()
    return [f"lean-{g}" for g in range(1, slots + 1)]


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    uvicorn.run(
        "lean_reference:app",
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        log_level="warning",
        app_dir=os.path.dirname(os.path.abspath(__file__)),
    )


if __name__ == "__main__":
    main()
