"""The admin principal of a request: `AdminDep` gives a route the authenticated admin (`Acting`),
or answers `401 unauthenticated`. Every admin route of every domain takes it from here."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from yuyue.auth.service import Acting, acting_admin
from yuyue.db import Db
from yuyue.kit.http import bearer, settings_of


async def current_admin(request: Request, db: Db) -> Acting:
    return await acting_admin(db, settings_of(request).effective_secret, bearer(request))


AdminDep = Annotated[Acting, Depends(current_admin)]
