"""The scheduled jobs of a `yuyue worker` that has been running, for bench/rush.py: the release at
18:00 (rules G10, G11) runs here, in its own process as in production, not inside a web worker
answering bookings. No outbox delivery (the lean reference delivers nothing either) and no start-up
catch-up of the day before (the set-up already ran what came due).

    python bench/_jobs.py    # YUYUE_DATABASE_URL and YUYUE_ENV=test from the environment
"""

from __future__ import annotations

# isort: off
import _venv  # noqa: F401 - first: runs this script under the project's .venv
# isort: on

import asyncio


def main() -> None:
    import yuyue.domains  # noqa: F401 - registers every domain's jobs
    from yuyue.clock import clock
    from yuyue.config import get_settings
    from yuyue.db import make_engine, make_sessionmaker
    from yuyue.jobs import service
    from yuyue.jobs.service import run_due, seconds_to_next_due

    settle = getattr(service, "SETTLE_S", None)  # decision 0105; None: an earlier version, run as it ran

    settings = get_settings()
    clock.settable = True

    async def run() -> None:
        engine = make_engine(settings, pool_size=2)
        maker = make_sessionmaker(engine)
        await clock.refresh(engine, force=True)
        last = clock.now()
        while True:  # yuyue.jobs.service.loop, without its catch-up of the last day
            await clock.refresh(engine)
            now = clock.now()
            if settle is None:
                await run_due(maker, last, now)
            else:
                await run_due(maker, last, now, settle)
            last = max(last, now)
            await asyncio.sleep(seconds_to_next_due(clock.now(), 0.5))

    asyncio.run(run())


if __name__ == "__main__":
    main()
