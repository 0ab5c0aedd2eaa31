"""Run Alembic migrations programmatically (`yuyue db upgrade`), from the installed package."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from yuyue.db import prepare_sqlite_folder
from yuyue.kit import crypto

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


def data_secret(config: Config | None) -> str:
    """For a revision that rewrites personal data: the platform's secret with its data keys
    installed (the newest encrypts): those `upgrade` handed over, else the settings'."""
    attributes = config.attributes if config is not None else {}
    secret = attributes.get("yuyue_secret")
    if secret is None:
        from yuyue.config import get_settings  # only when rows exist and no keys were handed over

        settings = get_settings()
        crypto.configure(settings.data_key_list)
        return settings.effective_secret
    crypto.configure(list(attributes.get("yuyue_data_keys", ())))
    return str(secret)


def rewrite_rows(
    bind: sa.Connection,
    config: Config | None,
    table: str,
    source: str,
    change: Callable[[str, Any], dict[str, Any]],
    where: str = "TRUE",
) -> None:
    """For a revision that rewrites personal data: every row of `table` matching `where`, by id in
    batches, its `source` column read and the columns `change(secret, value)` gives written (none:
    the row is left). The secret is fetched only when a row exists (`data_secret`)."""
    secret: str | None = None
    last = 0
    while True:
        rows = bind.execute(
            sa.text(f"SELECT id, {source} FROM {table} WHERE id > :last AND ({where}) ORDER BY id LIMIT 500"),
            {"last": last},
        ).all()
        if not rows:
            return
        secret = secret or data_secret(config)
        for row_id, value in rows:
            last = row_id
            values = change(secret, value)
            if values:
                sets = ", ".join(f"{k} = :{k}" for k in values)
                bind.execute(sa.text(f"UPDATE {table} SET {sets} WHERE id = :id"), {**values, "id": row_id})


def revision(database_url: str, message: str) -> None:
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
