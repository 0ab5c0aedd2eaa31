"""Helpers for the page tests: a citizen who logs in through the HTML form (cookie session)."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Api

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


async def csrf(api: Api, path: str = "/") -> str:
    page = await api.client.get(path)
    match = CSRF.search(page.text)
    assert match, page.text[:500]
    return match.group(1)


async def form_login(
    api: Api, id_number: str, name: str = "张三", phone: str = "13800138000", next_path: str = "/bookings"
) -> httpx.Response:
    token = await csrf(api, "/login")
    return await api.client.post(
        "/login",
        data={
            "csrf": token,
            "name": name,
            "id_type": "resident_id",
            "id_number": id_number,
            "phone": phone,
            "next": next_path,
        },
    )


async def post(api: Api, path: str, data: dict[str, str] | None = None) -> httpx.Response:
    """POST a page form with the session's CSRF token (read from the page, as a browser would)."""
    token = await csrf(api, "/")
    return await api.client.post(path, data={"csrf": token, **(data or {})})
