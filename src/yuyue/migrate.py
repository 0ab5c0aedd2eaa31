"""Run Alembic migrations programmatically (`yuyue db upgrade`), from the installed package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from yuyue.db import prepare_sqlite_folder

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return cfg


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Apply every branch (`heads`): a domain may add revisions on its own branch of 0001."""
    prepare_sqlite_folder(database_url)  # `var/` does not exist in a fresh clone
    command.upgrade(alembic_config(database_url), revision)


def revision(database_url: str, message: str) -> None:
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
