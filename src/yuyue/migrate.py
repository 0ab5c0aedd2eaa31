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


def upgrade(
    database_url: str,
    revision: str = "heads",
    *,
    secret: str | None = None,
    data_keys: list[str] | tuple[str, ...] = (),
) -> None:
    """Apply every branch (`heads`): a domain may add revisions on its own branch of 0001. A
    revision that rewrites personal data (0023) encrypts with `secret` and `data_keys` (the
    settings' when not given)."""
    prepare_sqlite_folder(database_url)  # `var/` does not exist in a fresh clone
    config = alembic_config(database_url)
    if secret is not None:
        config.attributes["yuyue_secret"] = secret
        config.attributes["yuyue_data_keys"] = tuple(data_keys)
    command.upgrade(config, revision)


def revision(database_url: str, message: str) -> None:
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
