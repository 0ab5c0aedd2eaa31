"""Rule G19, sold_out_fast: the sell-out moments the watch computes in SQL
(`watch.service._sold_out_moments`) are those of the rule's own definition, `rules.sold_out_minutes`,
on both backends, including the cases a day sold out through the API never shows: bookings made
before the release, cancelled before it or after, several seats at once, a seat freed and one taken
at the same moment, on-site bookings (never counted) and bookings made after the line."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from sqlalchemy import select

from tests.conftest import Api
from tests.ids import resident_id
from yuyue.catalogue.service import slot_id
from yuyue.clock import at
from yuyue.models import Booking, Citizen, Slot
from yuyue.watch import rules, service

RELEASE = at(date(2026, 12, 1), "18:00")
LINE = timedelta(minutes=30)
DAYS = (date(2026, 12, 15), date(2026, 12, 16), date(2026, 12, 17))


class Planted:
    """Bookings of one (service, day): (made, quantity, channel, cancelled at or None)."""

    def __init__(self) -> None:
        self.rows: list[tuple[datetime, int, str, datetime | None]] = []

    def add(
        self, minute: float, quantity: int = 1, channel: str = "web", cancel: float | None = None
    ) -> None:
        made = RELEASE + timedelta(minutes=minute)
        self.rows.append(
            (made, quantity, channel, None if cancel is None else RELEASE + timedelta(minutes=cancel))
        )

    def expected(self, seats: int) -> float | None:
        """The rule's own answer: `rules.sold_out_minutes` on the events of the bookings in time."""
        events: list[tuple[datetime, int]] = []
        for made, quantity, channel, cancelled in self.rows:
            if channel == "onsite" or made > RELEASE + LINE:
                continue
            events.append((max(made, RELEASE), quantity))
            if cancelled is not None:
                events.append((max(cancelled, RELEASE), -quantity))
        return rules.sold_out_minutes(RELEASE, events, seats)


def planted_cases(services: list[int]) -> dict[tuple[int, date], tuple[Planted, int]]:
    cases: dict[tuple[int, date], tuple[Planted, int]] = {}
    # 2 seats: 2 booked 10 minutes before the release and cancelled 5 before it; at the release the
    # freed seats count first, so the day sells out at +4 minutes, not at the release
    early = Planted()
    early.add(-10, 2, cancel=-5)
    early.add(3)
    early.add(4)
    cases[(services[0], DAYS[0])] = (early, 2)
    # 3 seats: at +2 one is freed and one taken; freed first, so not sold out until +6
    tie = Planted()
    tie.add(1)
    tie.add(1, cancel=2)
    tie.add(2)
    tie.add(6)
    cases[(services[0], DAYS[1])] = (tie, 3)
    # 2 seats: on-site bookings do not count, nor one made after the line
    late = Planted()
    late.add(1, channel="onsite")
    late.add(2, 2, channel="onsite")
    late.add(5)
    late.add(31)
    cases[(services[0], DAYS[2])] = (late, 2)
    # generated days: moments on whole minutes (ties), before and after the release, some cancelled
    generator = random.Random(23)
    for sid in services[1:]:
        for day in DAYS:
            planted = Planted()
            for _ in range(generator.randint(5, 25)):
                minute = generator.randint(-15, 40)
                cancel = minute + generator.randint(0, 30) if generator.random() < 0.3 else None
                channel = generator.choice(("web", "web", "wechat", "api", "onsite"))
                planted.add(minute, generator.randint(1, 3), channel, cancel)
            total = sum(q for _, q, c, _ in planted.rows if c != "onsite")
            cases[(sid, day)] = (planted, generator.randint(1, max(1, total)))
    return cases


async def test_g19_sell_out_moments_in_sql_are_those_of_the_rule(api: Api) -> None:
    await api.hall()
    services = [(await api.service(name=f"事项{i}", department="户政"))["id"] for i in range(5)]
    await api.login(resident_id(1))
    cases = planted_cases(services)
    async with api.app.state.sessionmaker() as session:
        citizen_id = (await session.execute(select(Citizen.id))).scalar_one()
        for sid, day in cases:
            start = at(day, "09:00")
            end = start + timedelta(hours=1)
            session.add(
                Slot(id=slot_id(sid, start), service_id=sid, day=day, start=start, end=end, capacity=99)
            )
        await session.flush()
        n = 0
        for (sid, day), (planted, _) in cases.items():
            start = at(day, "09:00")
            slot, end = slot_id(sid, start), start + timedelta(hours=1)
            for made, quantity, channel, cancelled in planted.rows:
                n += 1
                session.add(
                    Booking(
                        number=f"T{n:08d}",
                        citizen_id=citizen_id,
                        service_id=sid,
                        hall_id="hall-a",
                        slot_id=slot,
                        slot_day=day,
                        slot_start=start,
                        slot_end=end,
                        quantity=quantity,
                        channel=channel,
                        business_types=[],
                        status="booked" if cancelled is None else "cancelled",
                        live_key=f"test:{n}",
                        rebooked=False,
                        created_at=made,
                        updated_at=made if cancelled is None else cancelled,
                    )
                )
        await session.commit()
        asked = [(sid, day, seats, RELEASE, RELEASE + LINE) for (sid, day), (_, seats) in cases.items()]
        found = await service._sold_out_moments(session, asked)
    got = {key: (moment - RELEASE).total_seconds() / 60 for key, moment in found.items()}
    expected = {key: planted.expected(seats) for key, (planted, seats) in cases.items()}
    assert got == {key: minutes for key, minutes in expected.items() if minutes is not None}
    assert got[(services[0], DAYS[0])] == 4 and got[(services[0], DAYS[1])] == 6
    assert (services[0], DAYS[2]) not in got
    sold = sum(1 for minutes in expected.values() if minutes is not None)
    assert 5 <= sold <= len(cases) - 2, sold  # the generated days both sell out and do not
