"""The console shell: `/admin` login and logout, the home page for each role, rendering and the
helpers every console area uses (`render`, `checked_form`, `viewer`, `admin`, `ConsoleRoute`).

Login calls the same services as `POST /api/v1/admin/login` and `POST /api/v1/staff/login` (argon2,
lockout after repeated failures for admins) and keeps the token in an HttpOnly cookie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin import accounts
from yuyue.auth.service import Acting
from yuyue.console import service as console
from yuyue.console.service import Viewer
from yuyue.db import Db
from yuyue.errors import DomainError, Forbidden, Unauthenticated
from yuyue.kit.http import client_address, settings_of
from yuyue.onsite.counters import list_counters
from yuyue.onsite.staff import get_hall, staff_login
from yuyue.web import service as web
from yuyue.web.api import PageRoute, csrf_seed, secret_of
from yuyue.web.api import set_cookie as page_cookie

TEMPLATES = Path(__file__).resolve().parent / "templates"
WEB_TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
# the console's own templates first; the portal's folder only for the shared design system (ds.html)
env = Environment(loader=FileSystemLoader([TEMPLATES, WEB_TEMPLATES]), autoescape=select_autoescape(["html"]))
env.globals.update(
    cn_date=web.cn_date,
    cn_datetime=web.cn_datetime,
    ROLES=console.ROLES,
    LEVEL_TEXT=console.LEVEL_TEXT,
    ID_TYPES=web.ID_TYPES,
    STATUS_TEXT=web.STATUS_TEXT,
)
env.globals["ds"] = env.get_template("ds.html").module  # the design system's macros (ds.css)


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    """The console's own session cookie is `SameSite=Strict`; the CSRF seed's is the portal's."""
    samesite: Literal["lax", "strict"] = "strict" if name == console.COOKIE else "lax"
    page_cookie(response, request, name, value, max_age, samesite=samesite)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A console page: the layout knows who is logged in (`viewer`, set by `viewer()`/`admin()`)."""
    seed = csrf_seed(request)
    page = env.get_template(template).render(
        csrf=web.csrf_token(secret_of(request), seed),
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        viewer=getattr(request.state, "viewer", None),
        elder=request.cookies.get(web.ELDER_COOKIE) == "1",  # 长辈模式, the portal's own switch
        my_unit=getattr(request.state, "unit_name", ""),
        production=settings_of(request).production,
        **context,
    )
    response = HTMLResponse(page, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    if request.cookies.get(web.CSRF_COOKIE) != seed:
        set_cookie(response, request, web.CSRF_COOKIE, seed, None)
    return response


def error_page(request: Request, exc: DomainError) -> Response:
    if isinstance(exc, Unauthenticated) and request.method == "GET":
        return login_redirect(request)
    status = exc.status if 400 <= exc.status < 600 else 500
    return render(request, "error.html", status=status, error=web.error_view(exc))


class ConsoleRoute(PageRoute):
    """Console failures are console pages (or the login page when the session has ended)."""

    @staticmethod
    def error_response(request: Request, exc: DomainError) -> Response:
        return error_page(request, exc)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def login_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"/admin/login?next={quote(here, safe='')}")


async def checked_form(request: Request) -> dict[str, list[str]]:
    """The posted form, after the CSRF check; nothing runs when the check fails."""
    form = web.parse_form(await request.body())
    if not web.csrf_ok(secret_of(request), request.cookies.get(web.CSRF_COOKIE), web.field(form, "csrf")):
        raise DomainError("csrf token missing or wrong", code="csrf_failed", status=403)
    return form


async def viewer(request: Request, db: AsyncSession) -> Viewer:
    """The logged-in console user (admin or clerk); raises `Unauthenticated` → the login page."""
    who = await console.viewer_of(db, secret_of(request), request.cookies.get(console.COOKIE))
    request.state.viewer = who
    unit_id = who.admin.unit_id if who.admin else who.hall_id
    request.state.unit_name = await console.unit_name(db, unit_id) if unit_id else ""
    return who


async def admin(request: Request, db: AsyncSession) -> Acting:
    """The logged-in admin; a clerk gets a `forbidden` page."""
    who = await viewer(request, db)
    if who.admin is None:
        raise Forbidden("this page is for administrators")
    return who.admin


router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)


@router.get("/admin", response_class=HTMLResponse)
async def home(request: Request, db: Db) -> Response:
    """The console's front page: what this user may open."""
    try:
        who = await viewer(request, db)
    except Unauthenticated:
        return redirect("/admin/login")
    context: dict[str, Any] = {}
    if who.kind == "staff" and who.hall_id is not None:
        context["hall"] = await get_hall(db, who.hall_id)
        context["counters"] = await list_counters(db, who.actor, who.hall_id)
    return render(request, "home.html", **context)


@router.get("/admin/login", response_class=HTMLResponse)
async def login_form(
    request: Request,
    next: Annotated[str, Query(max_length=500)] = "/admin",
    role: Annotated[str, Query(max_length=10)] = "admin",
) -> Response:
    return render(request, "login.html", next=web.safe_next(next, "/admin"), role=role, error=None)


@router.post("/admin/login", response_class=HTMLResponse)
async def login(request: Request, db: Db) -> Response:
    form = await checked_form(request)
    role = web.field(form, "role", 10)
    username = web.field(form, "username", 64)
    password = web.field(form, "password", 200)
    target = web.safe_next(web.field(form, "next", 500), "/admin")
    settings = settings_of(request)
    try:
        if role == "staff":
            token, _ = await staff_login(
                db,
                settings.effective_secret,
                settings.token_ttl_s,
                username,
                password,
                client_address(request),
            )
        else:
            token, _ = await accounts.login(
                db,
                settings.effective_secret,
                settings.token_ttl_s,
                username,
                password,
                client_address(request),
            )
    except DomainError as exc:
        return render(
            request, "login.html", status=exc.status, next=target, role=role, error=web.error_view(exc)
        )
    response = redirect(target)
    set_cookie(response, request, console.COOKIE, token, settings.token_ttl_s)
    return response


@router.post("/admin/logout", response_class=HTMLResponse)
async def logout(request: Request, db: Db) -> Response:
    await checked_form(request)
    try:
        who = await viewer(request, db)
    except Unauthenticated:
        who = None
    if who is not None and who.admin is not None:
        await accounts.logout(db, who.admin)  # the token is refused from now on
    response = redirect("/admin/login")
    response.delete_cookie(console.COOKIE, path="/")
    return response
