"""The citizen portal (issue 8): server-rendered pages at `/`, working without JavaScript.

Routes parse the form, check the CSRF token, call the SAME service functions as the API routes
(yuyue.booking.commands, yuyue.identity.service) and commit once; every error is a page in plain
Chinese with a next step (web/service.py MESSAGES), never JSON or a trace. The flow follows rule T10:
notice → hall → department/item → date and slot → confirm → success page and receipt.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import segno
from cryptography.fernet import InvalidToken
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.booking import commands, idempotency, rules, views
from yuyue.booking.availability import availability as booking_availability
from yuyue.booking.receipt import REMINDERS, default_font, receipt_rows, render_receipt_pdf
from yuyue.booking.schemas import MAX_QUANTITY
from yuyue.catalogue.service import get_unit, hall_services, parse_slot_id, service_info
from yuyue.clock import clock
from yuyue.config import Settings
from yuyue.db import Db, rollback_request
from yuyue.errors import DomainError, NotFound, Unauthenticated, ValidationFailed
from yuyue.identity import service as identity
from yuyue.kit import crypto
from yuyue.kit.http import settings_of
from yuyue.ops.logging import log
from yuyue.ops.replicas import ReadDb
from yuyue.policy.service import horizon_end
from yuyue.waitlist import service as waitlist
from yuyue.web import service as web

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
env.globals.update(
    cn_date=web.cn_date,
    cn_datetime=web.cn_datetime,
    cn_span=web.cn_span,
    STATUS_TEXT=web.STATUS_TEXT,
    WAIT_STATUS_TEXT=web.WAIT_STATUS_TEXT,
    ID_TYPES=web.ID_TYPES,
    LOGIN_FIELDS=web.LOGIN_FIELDS,
)
env.globals["ds"] = env.get_template("ds.html").module  # the design system's macros (ds.css)


class PageRoute(APIRoute):
    """Turns every failure of a page route into an HTML error page (issue 8 item 4). Other page
    packages (yuyue.console) subclass it and override `error_response` with their own page."""

    @staticmethod
    def error_response(request: Request, exc: DomainError) -> Response:
        return error_page(request, exc)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        on_error = self.error_response

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except DomainError as exc:
                if not exc.keep_writes:
                    await rollback_request(request)  # an error page commits nothing
                return on_error(request, exc)
            except RequestValidationError:
                await rollback_request(request)
                return on_error(request, ValidationFailed("bad parameters"))
            except Exception as exc:
                await rollback_request(request)
                log.error("page_error", error=type(exc).__name__, exc_info=exc)
                return on_error(request, DomainError("unexpected", code="internal_error", status=500))

        return guarded


router = APIRouter(include_in_schema=False, route_class=PageRoute)


# --- rendering ----------------------------------------------------------------------------------


def secret_of(request: Request) -> str:
    return settings_of(request).effective_secret


def csrf_seed(request: Request) -> str:
    """The CSRF seed of this browser (its cookie), or a new one kept for the answer to set."""
    seed = getattr(request.state, "csrf_seed", None) or request.cookies.get(web.CSRF_COOKIE)
    if not seed or len(seed) > 64:
        seed = web.new_csrf_seed()
    request.state.csrf_seed = seed
    return str(seed)


def set_cookie(
    response: Response,
    request: Request,
    name: str,
    value: str,
    max_age: int | None,
    *,
    samesite: Literal["lax", "strict"] = "lax",
) -> None:
    """A page cookie: HTTP only, secure in production, for the whole site (portal and console)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite=samesite,
        secure=settings_of(request).production,
        path="/",
    )


async def citizen_check_of(request: Request, db: AsyncSession) -> identity.SessionCheck | None:
    """The session cookie's citizen and login, if its session is still open (identity.service)."""
    try:
        return await identity.citizen_session(db, secret_of(request), request.cookies.get(web.SESSION_COOKIE))
    except Unauthenticated:
        return None


async def citizen_id_of(request: Request, db: AsyncSession) -> int | None:
    """The citizen of the session cookie, if its session is still open (identity.service)."""
    check = await citizen_check_of(request, db)
    return None if check is None else check.citizen_id


def page_here(request: Request) -> str:
    """Where the elder-mode toggle comes back to: this page, or for the answer to a form post (which
    cannot be asked for again with GET) the page the form was on."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    back = getattr(request.state, "back", None)
    if back:
        return str(back)
    return referer_path(request) or "/"


def referer_path(request: Request) -> str | None:
    """The same-site page this request came from (Referer), as a path; None when absent or foreign."""
    referer = request.headers.get("referer") or ""
    if not referer:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(referer)
    if parts.netloc and parts.netloc != request.url.netloc:
        return None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return web.safe_next(path, "") or None


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    seed = csrf_seed(request)
    elder = request.cookies.get(web.ELDER_COOKIE) == "1"
    page = env.get_template(template).render(
        elder=elder,
        elder_hint=request.cookies.get(ELDER_HINT_COOKIE) == "1" and web.ELDER_COOKIE not in request.cookies,
        logged_in=web.citizen_of(secret_of(request), request.cookies.get(web.SESSION_COOKIE)) is not None,
        csrf=web.csrf_token(secret_of(request), seed),
        here=page_here(request),
        production=settings_of(request).production,
        **context,
    )
    response = HTMLResponse(page, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    if request.cookies.get(web.CSRF_COOKIE) != seed:
        set_cookie(response, request, web.CSRF_COOKIE, seed, None)
    return response


ELDER_HINT_COOKIE = "yuyue_elder_hint"


def error_page(request: Request, exc: DomainError) -> HTMLResponse:
    """The error page: the message for the code, its facts (dates), and links to the next step;
    "重新选择" goes back one step (the page the route named, else the page the request came from)."""
    status = exc.status if 400 <= exc.status < 600 else 500
    error = web.error_view(exc)
    back = getattr(request.state, "back", None) or (
        referer_path(request) if request.method != "GET" else None
    )
    links = web.error_links(
        exc.code, getattr(request.state, "service_id", None), getattr(request.state, "day", None)
    )
    return render(request, "error.html", status=status, error=error, back=back, links=links)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def login_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    from urllib.parse import quote

    return redirect(f"/login?next={quote(here, safe='')}")


async def checked_form(request: Request) -> dict[str, list[str]]:
    """The posted form, after the CSRF check; nothing runs when the check fails."""
    form = web.parse_form(await request.body())
    if not web.csrf_ok(secret_of(request), request.cookies.get(web.CSRF_COOKIE), web.field(form, "csrf")):
        raise DomainError("csrf token missing or wrong", code="csrf_failed", status=403)
    return form


# --- static files -------------------------------------------------------------------------------


@router.get("/static/{name}")
async def static(name: str) -> Response:
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        raise NotFound("no such file")
    return Response(
        path.read_bytes(),
        media_type=STATIC_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=3600"},
    )


# --- the booking flow (rule T10) ----------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    """The notice to accept before booking (rule T10), then the way in."""
    return render(request, "home.html", need_agree=request.query_params.get("notice") == "1")


@router.get("/halls", response_class=HTMLResponse)
async def halls(
    request: Request,
    db: ReadDb,
    agree: Annotated[str, Query(max_length=1)] = "",
    under: Annotated[str, Query(max_length=64)] = "",
    q: Annotated[str, Query(max_length=50)] = "",
    item: Annotated[str, Query(max_length=50)] = "",
) -> Response:
    """Choose a hall: by district, by name or address, or by the item to handle."""
    accepted = agree == "1" or request.cookies.get("yuyue_notice") == "1"
    if not accepted:
        return redirect("/?notice=1#notice")
    near = await web.home_area(db, await citizen_id_of(request, db))
    found = await web.find_halls(db, under or None, q.strip(), item.strip(), near)
    groups = await web.districts(db)
    response = render(
        request,
        "halls.html",
        halls=found,
        groups=groups,
        under=under,
        q=q,
        item=item,
    )
    if agree == "1":
        set_cookie(response, request, "yuyue_notice", "1", None)
    return response


@router.get("/halls/{hall_id}", response_class=HTMLResponse)
async def hall(request: Request, hall_id: str, db: ReadDb) -> Response:
    """The hall's departments and items."""
    unit = await get_unit(db, hall_id)
    offered = await hall_services(db, hall_id)
    departments: dict[str, list[Any]] = {}
    for svc, department in offered:
        departments.setdefault(department, []).append(svc)
    return render(
        request,
        "hall.html",
        hall=unit,
        kind=web.KIND_TEXT.get(unit.kind, ""),
        mode_text=web.MODE_TEXT.get(unit.mode or "", ""),
        departments=departments,
    )


@router.get("/services/{service_id}", response_class=HTMLResponse)
async def service_days(
    request: Request,
    service_id: int,
    db: Db,
    reads: ReadDb,
    reschedule: Annotated[str, Query(max_length=32)] = "",
    rebook: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    """Days and hourly slots with seats left; days not open yet say when they open (rules G10, T6, M4).
    The slots come from a replica when one is fresh (decision 0090); the booking being changed from
    the primary (the citizen's own writes)."""
    info = await service_info(reads, service_id)
    if not info.active:
        raise NotFound("service not found")
    now = clock.now()
    changing = None
    start = None
    if reschedule or rebook:
        citizen_id = await citizen_id_of(request, db)
        if citizen_id is None:
            return login_redirect(request)
        changing = views.as_json(await views.get_booking(db, citizen_id, reschedule or rebook))
        if changing["service_id"] != service_id:
            raise NotFound("booking not found")
        if rebook:
            start = now.date()  # rules T9, G14: a rebook may take today's slots on site
    if start is not None:
        ctx = await rules.context(reads, service_id)
        availability = await booking_availability(
            reads, service_id, start, horizon_end(ctx.policy.knobs, ctx.calendar, now.date())
        )
    else:
        availability = await booking_availability(reads, service_id, None, None)
    days = web.calendar_days(availability, now)
    for day in days:
        for slot in day["slots"]:
            today_onsite = (
                bool(rebook) and day["date"] == now.date().isoformat() and web.moment(slot["end"]) > now
            )
            # the booking being moved: its own slot is shown, marked, and not offered again
            slot["current"] = bool(reschedule) and changing is not None and slot["id"] == changing["slot_id"]
            slot["choosable"] = (slot["status"] == "open" or today_onsite) and not slot["current"]
    elder = request.cookies.get(web.ELDER_COOKIE) == "1"
    if elder:  # elder mode: simpler steps, only what can be chosen
        days = [d for d in days if any(s["choosable"] for s in d["slots"])]
    return render(
        request,
        "service.html",
        info=info,
        days=days,
        reschedule=reschedule,
        rebook=rebook,
        changing=changing,
        any_full=any(d["state"] == "full" for d in days),
        waitlist=True,
    )


async def _slot_facts(db: AsyncSession, slot_id: str) -> tuple[Any, Any]:
    ctx, spec = await rules.resolve_slot(db, slot_id)
    return ctx.info, spec


@router.get("/confirm", response_class=HTMLResponse)
async def confirm(request: Request, db: Db, slot: Annotated[str, Query(max_length=40)]) -> Response:
    """Check the details before submitting: item, hall, time, name, masked ID and phone."""
    citizen_id = await citizen_id_of(request, db)
    if citizen_id is None:
        return login_redirect(request)
    info, spec = await _slot_facts(db, slot)
    citizen = await identity.get_citizen(db, citizen_id)
    return render(
        request,
        "confirm.html",
        info=info,
        spec=spec,
        span=web.cn_span(spec.start.isoformat(), spec.end.isoformat()),
        applicant={
            "name": citizen.name_masked,
            "id_number": citizen.id_masked,
            "phone": citizen.phone_masked,
            "id_type": web.ID_TYPES.get(citizen.id_type, citizen.id_type),
        },
        form_key=secrets.token_urlsafe(16),
    )


@router.post("/book", response_class=HTMLResponse)
async def book(request: Request, db: Db) -> Response:
    """Submit a booking: the same booking.commands.book as POST /api/v1/appointments, channel web;
    the form's one-time key makes a double click answer the first booking (Idempotency-Key rules)."""
    form = await checked_form(request)
    check = await citizen_check_of(request, db)
    if check is None:
        return login_redirect(request)
    citizen_id = check.citizen_id
    quantity_text = web.field(form, "quantity", 3) or "1"
    if not quantity_text.isdigit() or not 1 <= int(quantity_text) <= MAX_QUANTITY:  # as the API's body
        raise ValidationFailed(f"quantity must be a whole number from 1 to {MAX_QUANTITY}")
    types = tuple(sorted({v.strip()[:50] for v in form.get("business_types", []) if v.strip()}))
    slot_text = web.field(form, "slot_id", 40)
    web.remember_slot(request.state, slot_text, "/services/{service_id}")
    req = rules.BookRequest(
        slot_id=slot_text,
        channel="web",
        quantity=int(quantity_text),
        business_types=types,
    )
    key = web.field(form, "form_key", 64)
    body = {"slot_id": req.slot_id, "quantity": req.quantity, "business_types": list(types)}

    async def run(keyed: idempotency.Keyed | None) -> tuple[int, dict[str, Any]]:
        return 201, await commands.book(db, citizen_id, req, rules.Caller(session=check, keyed=keyed))

    fingerprint = idempotency.request_hash("POST /book", body)
    _, answer = await idempotency.idempotent(db, citizen_id, f"web:{key}" if key else None, fingerprint, run)
    return redirect(f"/bookings/{answer['number']}?done=booked")


# --- my bookings --------------------------------------------------------------------------------


@router.get("/bookings", response_class=HTMLResponse)
async def my_bookings(request: Request, db: Db) -> Response:
    """Upcoming and past bookings with status, and any ban in force (rules T11, M9, G15)."""
    citizen_id = await citizen_id_of(request, db)
    if citizen_id is None:
        return login_redirect(request)
    now = clock.now()
    upcoming, past = web.split_bookings(map(views.as_json, await views.list_bookings(db, citizen_id)), now)
    bans = []
    for ban in await identity.bans_in_force(db, citizen_id):
        unit = await get_unit(db, ban.unit_id)
        bans.append({"until": ban.until, "reason": ban.reason, "unit": unit.name})
    citizen = await identity.get_citizen(db, citizen_id)
    entries = []
    for entry in await waitlist.mine(db, citizen_id):
        if entry.status in ("waiting", "allocated"):
            view = asdict(await waitlist.entry_view(db, entry))
            view["service_name"] = (await service_info(db, entry.service_id)).name
            entries.append(view)
    return render(
        request,
        "bookings.html",
        entries=entries,
        done=request.query_params.get("done", ""),
        upcoming=upcoming,
        past=past,
        bans=bans,
        no_shows=await identity.no_show_count(db, citizen_id),
        name=citizen.name_masked,
        rebookable={b["number"] for b in upcoming + past if web.rebookable(b, now)},
    )


@router.get("/bookings/{number}", response_class=HTMLResponse)
async def booking_page(request: Request, number: str, db: Db, done: str = "") -> Response:
    """One booking; right after booking it is the success page (number, address, hotline, check-in
    window, cancel deadline, receipt)."""
    citizen_id = await citizen_id_of(request, db)
    if citizen_id is None:
        return login_redirect(request)
    view = views.as_json(await views.get_booking(db, citizen_id, number[:32]))
    info = await service_info(db, view["service_id"])
    now = clock.now()
    return render(
        request,
        "booking.html",
        b=view,
        info=info,
        done=done if done in ("booked", "cancelled", "rescheduled", "rebooked") else "",
        can_change=view["status"] == "booked" and now <= web.moment(view["cancel_deadline"]),
        can_rebook=web.rebookable(view, now),
    )


@router.get("/bookings/{number}/receipt")
async def receipt(request: Request, number: str, db: Db, format: str = "html") -> Response:
    """The receipt of GET /api/v1/appointments/{number}/receipt for the cookie session, by the same
    renderer (HTML print view, or `?format=pdf`)."""
    citizen_id = await citizen_id_of(request, db)
    if citizen_id is None:
        return login_redirect(request)
    if format not in ("html", "pdf"):
        raise ValidationFailed("format must be html or pdf")
    view = views.as_json(await views.get_booking(db, citizen_id, number[:32]))
    info = await service_info(db, view["service_id"])
    hall_facts = {"name": info.hall_name, "address": info.hall_address, "hotline": info.hall_hotline}
    if format == "pdf":
        pdf = render_receipt_pdf(view, hall_facts, settings_of(request).pdf_font or default_font())
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="receipt-{view["number"]}.pdf"'},
        )
    # the receipt as a page of the site: header, back link, print and PDF buttons, elder mode; the
    # same rows as the PDF and the API's print view (booking/receipt.py)
    return render(
        request,
        "receipt_page.html",
        number=view["number"],
        booking_status=view["status"],
        status_text=web.STATUS_TEXT.get(view["status"], view["status"]),
        qr_svg=Markup(segno.make(view["number"], error="m").svg_inline(scale=4)),  # noqa: S704
        rows=receipt_rows(view, hall_facts),
        reminders=REMINDERS,
    )


@router.get("/bookings/{number}/cancel", response_class=HTMLResponse)
async def cancel_form(request: Request, number: str, db: Db) -> Response:
    """Ask before cancelling, with the deadline (rules G13, T8, M8)."""
    citizen_id = await citizen_id_of(request, db)
    if citizen_id is None:
        return login_redirect(request)
    view = views.as_json(await views.get_booking(db, citizen_id, number[:32]))
    return render(request, "cancel.html", b=view)


@router.post("/bookings/{number}/cancel", response_class=HTMLResponse)
async def cancel(request: Request, number: str, db: Db) -> Response:
    await checked_form(request)
    citizen_id = await citizen_id_of(request, db)
    if citizen_id is None:
        return login_redirect(request)
    view = await commands.cancel(db, citizen_id, number[:32])
    return redirect(f"/bookings/{view['number']}?done=cancelled")


@router.get("/bookings/{number}/{action}", response_class=HTMLResponse)
async def change_form(
    request: Request, number: str, action: str, db: Db, slot: Annotated[str, Query(max_length=40)] = ""
) -> Response:
    """Confirm a reschedule, or a special-reason rebook (rules T9, G14), to the chosen slot."""
    if action not in ("reschedule", "rebook"):
        raise NotFound("no such page")
    citizen_id = await citizen_id_of(request, db)
    if citizen_id is None:
        return login_redirect(request)
    view = views.as_json(await views.get_booking(db, citizen_id, number[:32]))
    if not slot:
        return redirect(f"/services/{view['service_id']}?{action}={view['number']}")
    parsed = parse_slot_id(slot)
    if parsed is None or parsed[0] != view["service_id"]:
        raise NotFound("slot not found")
    info, spec = await _slot_facts(db, slot)
    return render(
        request,
        "change.html",
        b=view,
        action=action,
        info=info,
        spec=spec,
        span=web.cn_span(spec.start.isoformat(), spec.end.isoformat()),
    )


@router.post("/bookings/{number}/{action}", response_class=HTMLResponse)
async def change(request: Request, number: str, action: str, db: Db) -> Response:
    if action not in ("reschedule", "rebook"):
        raise NotFound("no such page")
    form = await checked_form(request)
    check = await citizen_check_of(request, db)
    if check is None:
        return login_redirect(request)
    citizen_id, caller = check.citizen_id, rules.Caller(session=check)
    slot_id = web.field(form, "slot_id", 40)
    web.remember_slot(request.state, slot_id, f"/services/{{service_id}}?{action}={number[:32]}")
    if action == "reschedule":
        view = await commands.reschedule(db, citizen_id, number[:32], slot_id, caller)
        return redirect(f"/bookings/{view['number']}?done=rescheduled")
    reason = web.field(form, "reason", 200)
    if not reason:
        raise ValidationFailed("reason is required")
    view = await commands.rebook(db, citizen_id, number[:32], slot_id, reason, caller)
    return redirect(f"/bookings/{view['number']}?done=rebooked")


# --- login, logout, elder mode ------------------------------------------------------------------


PROVINCIAL = ("guangdong", "oidc")  # the provincial unified identity, or a city's own OIDC provider
LOGIN_COOKIE = "yuyue_login"
ID_TOKEN_COOKIE = "yuyue_idt"  # noqa: S105 - a cookie name. OIDC: the ID token, encrypted, for the provider's end-session at logout


def provincial_provider(settings: Settings) -> str | None:
    return next((p for p in PROVINCIAL if p in settings.providers), None)


def provincial_login_url(settings: Settings) -> str | None:
    """The page that starts the provincial (广东政务服务网) login, when a provider is configured;
    otherwise the button stays disabled with an explanation."""
    return "/login/provincial" if provincial_provider(settings) else None


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


@router.get("/login/provincial")
async def provincial_start(
    request: Request, next: Annotated[str, Query(max_length=500)] = "/bookings"
) -> Response:
    """Rule T2/G8: off to the configured provider (authorisation code; PKCE and nonce for OIDC). The
    state is also kept in this browser's cookie, so a callback started elsewhere (login CSRF) fails."""
    settings = settings_of(request)
    provider = provincial_provider(settings)
    if provider is None:
        raise NotFound("no provincial login is configured")
    start = await identity.start_login(settings, provider)
    response = RedirectResponse(start.authorize_url, status_code=303)
    value = f"{provider}|{_state_hash(start.state)}|{web.safe_next(next, '/bookings')}"
    set_cookie(response, request, LOGIN_COOKIE, value, settings.login_state_ttl_s)
    return response


@router.get("/login/callback")
async def provincial_callback(
    request: Request,
    db: Db,
    code: Annotated[str, Query(max_length=2000)] = "",
    state: Annotated[str, Query(max_length=4000)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Where the provider sends the citizen back (YUYUE_LOGIN_REDIRECT_URI): finish the login with
    identity.service.finish_login (signature, audience, nonce, real-name check, single-use state)."""
    settings = settings_of(request)
    provider, _, rest = (request.cookies.get(LOGIN_COOKIE) or "").partition("|")
    expected, _, target = rest.partition("|")
    if error or not code or not state or provider not in PROVINCIAL:
        raise Unauthenticated("the login was cancelled or did not start here", code="login_failed")
    if not secrets.compare_digest(expected, _state_hash(state)):
        raise Unauthenticated("the login did not start in this browser", code="login_failed")
    result = await identity.finish_login(db, settings, provider, code, state)
    response = redirect(web.safe_next(target, "/bookings"))
    set_cookie(response, request, web.SESSION_COOKIE, result.token, settings.token_ttl_s)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    await account_elder_mode(response, request, db, result.citizen_id)
    if result.id_token:
        hint = crypto.encrypt(settings.effective_secret, result.id_token)
        set_cookie(response, request, ID_TOKEN_COOKIE, hint, settings.token_ttl_s)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: Annotated[str, Query(max_length=500)] = "/bookings") -> Response:
    return render(
        request,
        "login.html",
        dev_login="dev" in settings_of(request).providers and not settings_of(request).production,
        next=web.safe_next(next, "/bookings"),
        provincial=provincial_login_url(settings_of(request)),
        form={"name": "", "id_type": "resident_id", "id_number": "", "phone": ""},
        errors={},
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, db: Db) -> Response:
    """The development login (non-production): the same identity.service calls as
    POST /api/v1/auth/dev/login; the token goes into the HttpOnly session cookie."""
    settings = settings_of(request)
    if settings.production or "dev" not in settings.providers:
        raise NotFound("not found")
    form = await checked_form(request)
    values = {
        "name": web.field(form, "name", 50),
        "id_type": web.field(form, "id_type", 32) or "resident_id",
        "id_number": web.field(form, "id_number", 32),
        "phone": web.field(form, "phone", 20),
    }
    target = web.safe_next(web.field(form, "next", 500), "/bookings")
    errors = web.login_errors(values)
    try:
        if errors:
            raise ValidationFailed("login form: " + ", ".join(sorted(errors)))
        who = identity.verify_identity(
            values["name"], values["id_type"], values["id_number"], values["phone"]
        )
    except DomainError as exc:
        if not errors:  # what verify_identity found beyond the form checks (a future birth date)
            errors[web.login_field(exc) or "id_number"] = web.error_view(exc)["title"]
        return render(
            request,
            "login.html",
            dev_login=True,
            status=exc.status,
            next=target,
            provincial=provincial_login_url(settings),
            form=values,
            errors=errors,
        )
    result = await identity.login(db, settings, who, "dev")
    response = redirect(target)
    set_cookie(response, request, web.SESSION_COOKIE, result.token, settings.token_ttl_s)
    chosen = await account_elder_mode(response, request, db, result.citizen_id)
    age = web.age_on(who.id_type, who.id_number, clock.today())
    if not chosen and age is not None and age >= 60 and web.ELDER_COOKIE not in request.cookies:
        set_cookie(response, request, ELDER_HINT_COOKIE, "1", None)  # suggest elder mode (issue 20)
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request, db: Db) -> Response:
    """Ends the session itself (identity.service.logout), not only the cookie; after an OIDC login
    the browser goes on to the provider's end-session endpoint (RP-initiated logout), so the next
    person at a shared computer pressing "log in" is not let in as this citizen."""
    await checked_form(request)
    settings = settings_of(request)
    token = request.cookies.get(web.SESSION_COOKIE)
    if web.citizen_of(secret_of(request), token) is not None:
        try:
            await identity.logout(db, secret_of(request), token)
        except Unauthenticated:
            pass
    target = "/"
    sealed = request.cookies.get(ID_TOKEN_COOKIE)
    if sealed and "oidc" in settings.providers:
        try:
            id_token: str | None = crypto.decrypt(settings.effective_secret, sealed)
        except (InvalidToken, ValueError):
            id_token = None
        target = await identity.provider_logout_url(settings, id_token) or "/"
    response = redirect(target)
    response.delete_cookie(web.SESSION_COOKIE, path="/")
    response.delete_cookie(ID_TOKEN_COOKIE, path="/")
    return response


ELDER_TTL_S = int(timedelta(days=365).total_seconds())


def remember_elder(response: Response, request: Request, on: bool) -> None:
    set_cookie(response, request, web.ELDER_COOKIE, "1" if on else "0", ELDER_TTL_S)
    response.delete_cookie(ELDER_HINT_COOKIE, path="/")


async def account_elder_mode(response: Response, request: Request, db: AsyncSession, citizen_id: int) -> bool:
    """At login: the account's own choice of elder mode, when it has one, becomes this browser's
    (issue 20: remembered per account, not only per browser). True when it had one."""
    on = await identity.elder_mode_of(db, citizen_id)
    if on is None:
        return False
    remember_elder(response, request, on)
    return True


@router.post("/elder", response_class=HTMLResponse)
async def elder(request: Request, db: Db) -> Response:
    """长辈模式: larger type and targets, simpler steps; remembered for a year in this browser and,
    for a logged-in citizen, on the account (the next login anywhere starts in it)."""
    form = await checked_form(request)
    response = redirect(web.safe_next(web.field(form, "next", 500), "/"))
    on = web.field(form, "on", 1) == "1"
    remember_elder(response, request, on)
    citizen_id = await citizen_id_of(request, db)
    if citizen_id is not None:
        await identity.set_elder_mode(db, citizen_id, on)
    return response


# --- waiting list (rules G11, G12) --------------------------------------------------------------


@router.get("/waitlist/join", response_class=HTMLResponse)
async def waitlist_form(
    request: Request, db: Db, service: int, date: Annotated[str, Query(max_length=10)] = ""
) -> Response:
    """Ask before queueing for a full day (or any day) of a service."""
    if await citizen_id_of(request, db) is None:
        return login_redirect(request)
    info = await service_info(db, service)
    day = web.parse_day(date) if date else None
    return render(request, "waitlist.html", info=info, day=day)


@router.post("/waitlist/join", response_class=HTMLResponse)
async def waitlist_join(request: Request, db: Db) -> Response:
    """The same waitlist.service.join as POST /api/v1/waitlist, channel web."""
    form = await checked_form(request)
    check = await citizen_check_of(request, db)
    if check is None:
        return login_redirect(request)
    citizen_id = check.citizen_id
    service_text, date_text = web.field(form, "service_id", 10), web.field(form, "date", 10)
    if not service_text.isdigit():
        raise ValidationFailed("service_id must be a number")
    dates = [web.parse_day(date_text)] if date_text else None
    await waitlist.join(db, citizen_id, int(service_text), dates, "web", login=check.login)
    return redirect("/bookings?done=waiting#waitlist")


@router.post("/waitlist/{entry_id}/leave", response_class=HTMLResponse)
async def waitlist_leave(request: Request, entry_id: int, db: Db) -> Response:
    await checked_form(request)
    citizen_id = await citizen_id_of(request, db)
    if citizen_id is None:
        return login_redirect(request)
    await waitlist.leave(db, citizen_id, entry_id)
    return redirect("/bookings?done=left#waitlist")
