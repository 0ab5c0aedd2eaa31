"""Helpers of the console tests: log in through the console's HTML form (cookie session), post a
console form with its CSRF token, as a browser would."""

from __future__ import annotations

import re

import httpx

from tests.conftest import ADMIN_PASSWORD, Api

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


async def csrf(api: Api, path: str = "/admin/login") -> str:
    page = await api.client.get(path)
    match = CSRF.search(page.text)
    assert match, page.text[:500]
    return match.group(1)


async def console_login(
    api: Api,
    username: str = "root",
    password: str = ADMIN_PASSWORD,
    role: str = "admin",
    next_path: str = "/admin",
) -> httpx.Response:
    """Log in through the console form; the client keeps the `yuyue_console` cookie."""
    token = await csrf(api)
    return await api.client.post(
        "/admin/login",
        data={"csrf": token, "role": role, "username": username, "password": password, "next": next_path},
    )


async def post(api: Api, path: str, data: dict[str, str] | None = None) -> httpx.Response:
    """POST a console form with the session's CSRF token."""
    token = await csrf(api)
    return await api.client.post(path, data={"csrf": token, **(data or {})})
