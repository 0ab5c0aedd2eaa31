"""`yuyue …` (Typer): serve, worker, db, demo, admin, calendar."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from yuyue.config import get_settings

app = typer.Typer(
    help="yuyue (预约): unified appointment platform for government service halls.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(help="Administrator accounts.", no_args_is_help=True)
calendar_app = typer.Typer(help="The national calendar.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(calendar_app, name="calendar")


@db_app.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Create or migrate the schema of YUYUE_DATABASE_URL (Alembic)."""
    from yuyue.migrate import upgrade

    settings = get_settings()
    upgrade(
        settings.database_url, revision, secret=settings.effective_secret, data_keys=settings.data_key_list
    )
    typer.echo("database is at the latest revision")


@app.command()
def demo() -> None:
    """Load the Guangzhou demo (idempotent): units, halls, services, policies, admins."""
    from yuyue.demo import load

    for line in asyncio.run(load(get_settings())):
        typer.echo(line)


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 1,
    no_jobs: Annotated[
        bool, typer.Option("--no-jobs", help="Do not run background jobs in-process.")
    ] = False,
) -> None:
    """The web service (API, pages); also runs the background jobs unless --no-jobs."""
    import uvicorn

    settings = get_settings()
    if settings.clock is not None:
        from yuyue.clock import clock
        from yuyue.db import make_engine

        async def apply() -> None:
            engine = make_engine(settings)
            await clock.store(engine, settings.clock)  # type: ignore[arg-type]
            await engine.dispose()

        asyncio.run(apply())
        os.environ["YUYUE_CLOCK_APPLIED"] = "1"
    if no_jobs:
        os.environ["YUYUE_NO_JOBS"] = "1"
    # The workers tune their garbage collector and keep their caches loaded (app.py lifespan).
    os.environ["YUYUE_SERVE"] = "1"
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="yuyue-metrics-")
    uvicorn.run(
        "yuyue.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,  # only the proxy's X-Forwarded-* count
        server_header=False,
        log_level="warning",
        # Idle keep-alive connections stay open longer than nginx keeps them (deploy/nginx/yuyue.conf,
        # upstream keepalive_timeout 60s), so the proxy always closes first: with uvicorn's default
        # of 5 s a request nginx sends on a connection uvicorn is closing fails (a 502 for a POST,
        # never retried; seen in bench/rush.py --hosts, issue 22).
        timeout_keep_alive=75,
    )


@app.command()
def worker() -> None:
    """Only the background jobs; several may run at once, with each other and with serve."""
    import yuyue.domains  # noqa: F401 - registers every domain's jobs
    from yuyue.clock import clock
    from yuyue.db import make_engine, make_sessionmaker
    from yuyue.jobs.service import loop
    from yuyue.kit import addresses
    from yuyue.notify.delivery import delivery_loop
    from yuyue.ops.logging import configure

    settings = get_settings()
    configure(settings.log_level, settings.log_json)
    clock.settable = not settings.production
    addresses.configure(settings.webhook_private_addresses)  # decision 0094

    async def main() -> None:
        engine = make_engine(settings, pool_size=2)

        async def refresh() -> None:
            await clock.refresh(engine)

        maker = make_sessionmaker(engine)
        try:
            await asyncio.gather(  # the scheduled jobs, and delivery of the outbox (issue 7)
                loop(maker, refresh, settings.jobs_interval_s),
                delivery_loop(maker, refresh, settings.effective_secret),
            )
        finally:
            await engine.dispose()

    asyncio.run(main())


@admin_app.command("create")
def admin_create(
    username: Annotated[str, typer.Option()],
    password: Annotated[str, typer.Option()],
    unit: Annotated[str, typer.Option()],
    level: Annotated[int, typer.Option(min=1, max=3)],
    name: Annotated[str, typer.Option(help="the administrator's registered name (rule G7)")],
    title: Annotated[str, typer.Option(help="their title or post (rule G7)")],
    phone: Annotated[str, typer.Option(help="their mobile number (rule G7)")],
) -> None:
    """Make an admin (the first one of a new database is made this way); rule G7: registered with
    name, title and mobile before the account opens."""
    from yuyue.admin.accounts import create_admin
    from yuyue.db import make_engine, make_sessionmaker
    from yuyue.errors import DomainError

    settings = get_settings()

    async def main() -> int:
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine)() as session:
                admin = await create_admin(
                    session,
                    username=username,
                    password=password,
                    name=name,
                    title=title,
                    phone=phone,
                    unit_id=unit,
                    level=level,
                )
                await session.commit()
                return admin.id
        finally:
            await engine.dispose()

    try:
        admin_id = asyncio.run(main())
    except DomainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"admin {username} created (id {admin_id})")


@calendar_app.command("import")
def calendar_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would change.")] = False,
) -> None:
    """Import a year's national holidays and swapped working days (the State Council's notice as a
    CSV `date,working_day,note` or an iCalendar file). Prints what changes and how many bookings of
    new holidays are cancelled (by the hall, texted); `--dry-run` changes nothing (decision 0092)."""
    from yuyue.calendar import files
    from yuyue.calendar.service import import_calendar
    from yuyue.db import make_engine, make_sessionmaker
    from yuyue.errors import DomainError

    settings = get_settings()

    async def main() -> dict[str, Any]:
        import yuyue.domains  # noqa: F401 - the subscribers that cancel a new holiday's bookings

        parsed = files.parse(file.read_bytes(), file.name)
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine)() as session:
                preview = await import_calendar(session, None, parsed, file.name, apply=not dry_run)
                await session.commit()
                return preview.as_dict()
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(main())
    except DomainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    for day in result["days"]:
        mark = "*" if day["changes"] else " "
        kind = "working" if day["working_day"] else "holiday"
        touched = f"  cancels {day['bookings']} booking(s)" if day["bookings"] else ""
        typer.echo(f"{mark} {day['date']} {kind:8} {day['note']}{touched}")
    verb, cancel = (
        ("imported", "cancelled") if result["applied"] else ("dry run, nothing changed", "to cancel")
    )
    typer.echo(
        f"{verb}: {result['year']}, {len(result['days'])} dates, {result['changed']} changed, "
        f"{result['bookings']} booking(s) of {result['citizens']} citizen(s) {cancel}"
    )


def main() -> None:
    app()
