"""Routes of the console's manage pages (issue 10 item 4): units and halls (catalogue, hours,
counters, closures, policy), capacity requests, waiting lists, alerts, bans, admins, audit.

Every page works without JavaScript. A GET reads through the scoped services (`unit_for`,
`list_requests`, `list_alerts`, `audit_log` …). A POST is: the CSRF check (`checked_form`, before
anything runs), the logged-in admin (`admin`), the form parsed into the API's own request model,
one call of the very service function the API route calls (it authorises by rules G3–G7 and
audits), one commit, and a 303 back to the page with `?done=` (issue 10 item 6). Refused for scope
(403, 404) or session (401): the console's error page, nothing changed. Any other problem (a rule
said no, a field is wrong): rolled back, and the page again with the message and what was typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin import accounts
from yuyue.admin import alerts as admin_alerts
from yuyue.admin import capacity as admin_capacity
from yuyue.admin.schemas import AdminIn, CapacityRequestIn, DecisionIn, ResolveIn, RetireIn
from yuyue.auth.service import Acting, authorise, may
from yuyue.booking.closures import citizens_to_text
from yuyue.calendar import files
from yuyue.calendar import service as calendar
from yuyue.catalogue import service as catalogue
from yuyue.catalogue.schemas import ServiceIn, ServicePatch, SynonymIn, UnitIn, UnitPatch
from yuyue.console.api import ConsoleRoute, admin, checked_form, redirect, render
from yuyue.console.manage import service as manage
from yuyue.console.manage.service import number, optional, text
from yuyue.db import Db
from yuyue.errors import DomainError, ValidationFailed
from yuyue.penalties import service as penalties
from yuyue.penalties.schemas import BanIn, LiftIn, LookupIn
from yuyue.policy import service as policy
from yuyue.waitlist import service as waitlist
from yuyue.web.api import secret_of

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
UnitId = Annotated[str, Path(min_length=1, max_length=64)]
Done = Annotated[str, Query(max_length=40)]
Page = Callable[..., Awaitable[Response]]

# Refusals that are not the form's fault: the error page, never the form again.
FATAL = ("unauthenticated", "forbidden", "not_found", "csrf_failed")


def recoverable(exc: DomainError) -> bool:
    return exc.code not in FATAL and exc.status < 500


async def act(
    request: Request,
    db: AsyncSession,
    change: Callable[[], Awaitable[Any]],
    done: str | Callable[[Any], str],
    page: Page,
    form: dict[str, list[str]],
    form_name: str,
) -> Response:
    """Run one change (parse + the domain service), commit, redirect; or the page with the problem."""
    try:
        answer = await change()
    except DomainError as exc:
        if not recoverable(exc):
            raise
        await db.rollback()
        return await page(
            status=exc.status, error=manage.problem_view(exc), sticky=manage.sticky(form, form_name)
        )
    return redirect(done(answer) if callable(done) else done)


def page_of(
    request: Request, template: str, who: Acting, status: int = 200, done: str = "", **context: Any
) -> HTMLResponse:
    context.setdefault("error", None)
    context.setdefault("sticky", {"form": "", "typed": {}})
    return render(
        request,
        template,
        status=status,
        who=who,
        done=manage.DONE_TEXT.get(done, ""),
        **manage.texts(),
        **context,
    )


# --- units and halls ---------------------------------------------------------------------------


@router.get("/admin/units", response_class=HTMLResponse)
async def units(request: Request, db: Db) -> Response:
    """The unit tree of the admin's subtree (their own unit at the root)."""
    who = await admin(request, db)
    return page_of(request, "manage/units.html", who, tree=manage.tree(await manage.scope_units(db, who)))


async def _unit_page(
    request: Request, db: AsyncSession, who: Acting, unit_id: str, status: int = 200, **extra: Any
) -> Response:
    context = await manage.unit_context(db, who, request.state.viewer.actor, unit_id)
    return page_of(request, "manage/unit.html", who, status=status, **context, **extra)


@router.get("/admin/units/{unit_id}", response_class=HTMLResponse)
async def unit_page(request: Request, unit_id: UnitId, db: Db, done: Done = "") -> Response:
    who = await admin(request, db)
    return await _unit_page(request, db, who, unit_id, done=done)


def _unit_form_page(request: Request, db: AsyncSession, who: Acting, unit_id: str) -> Page:
    async def page(**extra: Any) -> Response:
        return await _unit_page(request, db, who, unit_id, **extra)

    return page


@router.post("/admin/units/{unit_id}", response_class=HTMLResponse)
async def update_unit(request: Request, unit_id: UnitId, db: Db) -> Response:
    """Name, and for halls address, hotline, mode, opening hours and the number of counters."""
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        changes: dict[str, Any] = {"name": text(form, "name")}
        unit = await catalogue.unit_for(db, who, unit_id)
        if unit.kind in catalogue.HALL_KINDS:
            changes.update(manage.hall_fields(form))
        body = manage.validated(UnitPatch, changes)
        return await catalogue.update_unit_as(db, who, unit_id, body.model_dump(exclude_unset=True))

    page = _unit_form_page(request, db, who, unit_id)
    return await act(request, db, change, f"/admin/units/{unit_id}?done=unit_updated", page, form, "unit")


@router.post("/admin/units/{unit_id}/children", response_class=HTMLResponse)
async def create_child(request: Request, unit_id: UnitId, db: Db) -> Response:
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        data: dict[str, Any] = {
            "id": text(form, "id", 64),
            "name": text(form, "name"),
            "kind": text(form, "kind", 32),
            "parent_id": unit_id,
        }
        if data["kind"] in catalogue.HALL_KINDS:
            data.update(manage.hall_fields(form))
        body = manage.validated(UnitIn, data)
        return await catalogue.create_unit_as(db, who, body.model_dump())

    page = _unit_form_page(request, db, who, unit_id)
    return await act(
        request, db, change, lambda view: f"/admin/units/{view.id}?done=unit_created", page, form, "child"
    )


@router.post("/admin/units/{unit_id}/services", response_class=HTMLResponse)
async def create_service(request: Request, unit_id: UnitId, db: Db) -> Response:
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        types = manage.split_list(text(form, "business_types", 500))
        body = manage.validated(
            ServiceIn,
            {
                "hall_id": unit_id,
                "department": text(form, "department"),
                "name": text(form, "name"),
                "business_types": types,
                "daily_capacity": number(form, "daily_capacity"),
                "max_batch": number(form, "max_batch") or 1,
                "walk_in_allowed": manage.checked(form, "walk_in_allowed"),
            },
        )
        return await catalogue.create_service_as(db, who, body.model_dump())

    page = _unit_form_page(request, db, who, unit_id)
    done = f"/admin/units/{unit_id}?done=service_created#services"
    return await act(request, db, change, done, page, form, "service")


@router.post("/admin/services/{service_id}", response_class=HTMLResponse)
async def update_service(request: Request, service_id: Id, db: Db) -> Response:
    """Largest batch (rule G16), walk-ins (rule M2), open or withdrawn. Not the daily capacity:
    that changes only by capacity request (rule G20), so this form does not offer it, and a post
    that names it anyway is refused (`capacity_by_request`) with nothing changed."""
    form = await checked_form(request)
    who = await admin(request, db)
    current = await catalogue.service_for(db, who, service_id)  # scope first: 403 outside it

    async def change() -> Any:
        changes: dict[str, Any] = {"max_batch": number(form, "max_batch")}
        if "daily_capacity" in form:  # rule G20: by request only (the service refuses it)
            changes["daily_capacity"] = number(form, "daily_capacity")
        for box in manage.split_list(text(form, "checkboxes", 100)):  # the boxes this form shows
            if box in ("walk_in_allowed", "active"):
                changes[box] = manage.checked(form, box)
        body = manage.validated(ServicePatch, changes)
        return await catalogue.update_service_as(db, who, service_id, body.model_dump(exclude_none=True))

    page = _unit_form_page(request, db, who, current.hall_id)
    done = f"/admin/units/{current.hall_id}?done=service_updated#services"
    return await act(request, db, change, done, page, form, f"service-{service_id}")


@router.post("/admin/units/{unit_id}/closures", response_class=HTMLResponse)
async def add_closure(request: Request, unit_id: UnitId, db: Db) -> Response:
    """A closed day. When it has bookings, the page first asks to confirm, saying how many citizens
    will be cancelled and texted (docs/rules.md "A closed day that has bookings"); the form posted
    again with `confirm=1` sets it."""
    form = await checked_form(request)
    who = await admin(request, db)
    page = _unit_form_page(request, db, who, unit_id)
    if text(form, "confirm", 1) != "1":
        try:
            day = manage.day(form, "date")
            unit = await catalogue.unit_for(db, who, unit_id)
            authorise(who, "configure", unit.path)
            citizens = await citizens_to_text(db, day, [unit_id])
        except DomainError as exc:
            if not recoverable(exc):
                raise
            return await page(
                status=exc.status, error=manage.problem_view(exc), sticky=manage.sticky(form, "closure")
            )
        if citizens:
            ask = {"date": day.isoformat(), "note": text(form, "note"), "citizens": citizens}
            return await page(closure_confirm=ask)

    async def change() -> Any:
        return await calendar.set_closure(db, who, unit_id, manage.day(form, "date"), text(form, "note"))

    done = f"/admin/units/{unit_id}?done=closure_added#closures"
    return await act(request, db, change, done, page, form, "closure")


@router.post("/admin/units/{unit_id}/closures/{day}/remove", response_class=HTMLResponse)
async def remove_closure(request: Request, unit_id: UnitId, day: date, db: Db) -> Response:
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        await calendar.remove_closure(db, who, unit_id, day)

    page = _unit_form_page(request, db, who, unit_id)
    done = f"/admin/units/{unit_id}?done=closure_removed#closures"
    return await act(request, db, change, done, page, form, "closure")


# --- the national calendar from a file (issue 18, decision 0092) --------------------------------


async def _calendar_page(request: Request, who: Acting, status: int = 200, **extra: Any) -> Response:
    may = who.platform and who.level == 1  # rule G4: the national calendar is platform L1's
    extra.setdefault("preview", None)
    return page_of(request, "manage/calendar.html", who, status=status, may_import=may, **extra)


@router.get("/admin/calendar", response_class=HTMLResponse)
async def calendar_page(request: Request, db: Db, done: Done = "") -> Response:
    who = await admin(request, db)
    return await _calendar_page(request, who, done=done)


def _calendar_file(form: dict[str, list[str]]) -> tuple[str, str]:
    return text(form, "file", files.MAX_BYTES), text(form, "name")


@router.post("/admin/calendar/preview", response_class=HTMLResponse)
async def calendar_preview(request: Request, db: Db) -> Response:
    """What the file would change and which bookings it would cancel; nothing is written."""
    form = await checked_form(request)
    who = await admin(request, db)
    content, name = _calendar_file(form)

    async def page(**extra: Any) -> Response:
        return await _calendar_page(request, who, **extra)

    try:
        parsed = files.parse(content, name)
        preview = await calendar.import_calendar(db, who, parsed, name, apply=False)
    except DomainError as exc:
        if not recoverable(exc):
            raise
        return await page(
            status=exc.status, error=manage.problem_view(exc), sticky=manage.sticky(form, "calendar")
        )
    return await page(preview=preview.as_dict(), file_text=content, file_name=name)


@router.post("/admin/calendar/import", response_class=HTMLResponse)
async def calendar_import(request: Request, db: Db) -> Response:
    """The confirmed import: the overrides, the year covered, a new holiday's bookings cancelled."""
    form = await checked_form(request)
    who = await admin(request, db)
    content, name = _calendar_file(form)

    async def change() -> Any:
        parsed = files.parse(content, name)
        return await calendar.import_calendar(db, who, parsed, name or f"{parsed.kind} file", apply=True)

    async def page(**extra: Any) -> Response:
        return await _calendar_page(request, who, **extra)

    return await act(request, db, change, "/admin/calendar?done=calendar_imported", page, form, "calendar")


@router.post("/admin/units/{unit_id}/policy", response_class=HTMLResponse)
async def set_policy(request: Request, unit_id: UnitId, db: Db) -> Response:
    """A preset and the knobs set here; children inherit what they don't set (docs/policies.md)."""
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        preset, overrides = manage.policy_overrides(form)
        return await policy.set_policy(db, who, unit_id, preset, overrides)

    page = _unit_form_page(request, db, who, unit_id)
    done = f"/admin/units/{unit_id}?done=policy_set#policy"
    return await act(request, db, change, done, page, form, "policy")


# --- capacity requests (rule G20) ------------------------------------------------------------------


async def _capacity_page(
    request: Request, db: AsyncSession, who: Acting, status: int = 200, **extra: Any
) -> Response:
    context = await manage.capacity_context(db, who)
    extra.setdefault("chosen", "")
    return page_of(request, "manage/capacity.html", who, status=status, **context, **extra)


@router.get("/admin/capacity", response_class=HTMLResponse)
async def capacity(
    request: Request,
    db: Db,
    done: Done = "",
    service_id: Annotated[int | None, Query(ge=1)] = None,
    daily_capacity: Annotated[int | None, Query(ge=0, le=100000)] = None,
    date_from: Annotated[date | None, Query()] = None,
) -> Response:
    """The requests of the subtree and the form to ask for one (`?service_id=` picks the service:
    the hall page links here, since a service's capacity changes only this way, rule G20). An
    alert's remedy (issue 20) also fills in its suggested `daily_capacity` from `date_from`."""
    who = await admin(request, db)
    typed = {
        "daily_capacity": "" if daily_capacity is None else str(daily_capacity),
        "date_from": date_from.isoformat() if date_from else "",
    }
    sticky = {"form": "request", "typed": typed} if daily_capacity is not None else None
    extra: dict[str, Any] = {"sticky": sticky} if sticky else {}
    return await _capacity_page(request, db, who, done=done, chosen=str(service_id or ""), **extra)


def _capacity_form_page(request: Request, db: AsyncSession, who: Acting) -> Page:
    async def page(**extra: Any) -> Response:
        return await _capacity_page(request, db, who, **extra)

    return page


@router.post("/admin/capacity", response_class=HTMLResponse)
async def propose(request: Request, db: Db) -> Response:
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        body = manage.validated(
            CapacityRequestIn,
            {
                "service_id": number(form, "service_id"),
                "date_from": text(form, "date_from", 10),
                # rule G20: "standing" changes the daily capacity from date_from on (date_to null)
                "date_to": None
                if manage.checked(form, "standing")
                else text(form, "date_to", 10) or text(form, "date_from", 10),
                "daily_capacity": number(form, "daily_capacity"),
                "reason": text(form, "reason", 500),
                # rule G12's remedies (decision 0093): extended hours, extra days ("5+X")
                "hours": manage.parse_hours(text(form, "hours", 200)),
                "open_days": manage.checked(form, "open_days"),
            },
        )
        return await admin_capacity.propose_capacity(
            db,
            who,
            body.service_id,
            body.date_from,
            body.date_to,
            body.daily_capacity,
            body.reason,
            [period.model_dump() for period in body.hours] if body.hours else None,
            body.open_days,
        )

    page = _capacity_form_page(request, db, who)
    return await act(request, db, change, "/admin/capacity?done=requested", page, form, "request")


async def _decide(request: Request, db: AsyncSession, request_id: int, approve: bool) -> Response:
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        body = manage.validated(DecisionIn, {"note": optional(form, "note", 500)})
        return await admin_capacity.decide_request(db, who, request_id, approve, body.note)

    page = _capacity_form_page(request, db, who)
    done = "/admin/capacity?done=" + ("approved" if approve else "rejected")
    return await act(request, db, change, done, page, form, f"decide-{request_id}")


@router.post("/admin/capacity/{request_id}/approve", response_class=HTMLResponse)
async def approve(request: Request, request_id: Id, db: Db) -> Response:
    """Rules G4–G6, G20: by an admin allowed to approve it, never the requester; applied at once."""
    return await _decide(request, db, request_id, True)


@router.post("/admin/capacity/{request_id}/reject", response_class=HTMLResponse)
async def reject(request: Request, request_id: Id, db: Db) -> Response:
    return await _decide(request, db, request_id, False)


# --- waiting lists (rules G11, G12) ----------------------------------------------------------------


@router.get("/admin/waitlist", response_class=HTMLResponse)
async def waiting(
    request: Request,
    db: Db,
    service_id: Annotated[str, Query(max_length=12)] = "",
    status: Annotated[str, Query(max_length=12)] = "waiting",
) -> Response:
    """Services of the subtree with people waiting; one service's list in queue order."""
    who = await admin(request, db)
    counts = await waitlist.waiting_counts(db, who)
    entries: list[waitlist.AdminEntryView] | None = None
    chosen: catalogue.ServiceView | None = None
    if service_id:
        if not service_id.isdigit():
            raise ValidationFailed("service_id is a number")
        chosen = await catalogue.service_for(db, who, int(service_id))  # 403 outside the subtree
        entries = await waitlist.admin_entries(db, who, int(service_id), status)
    services = await catalogue.services_under(db, who.unit_path)
    return page_of(
        request,
        "manage/waitlist.html",
        who,
        counts=counts,
        entries=entries,
        chosen=chosen,
        entry_status=status,
        services=[{"id": s.id, "label": f"{hall.name} · {s.name}"} for s, _, hall in services],
        statuses=waitlist.ENTRY_STATUSES,
    )


# --- alerts --------------------------------------------------------------------------------------


async def _alerts_page(
    request: Request, db: AsyncSession, who: Acting, show: str = "open", status: int = 200, **extra: Any
) -> Response:
    context = await manage.alerts_context(db, who, show)
    return page_of(request, "manage/alerts.html", who, status=status, **context, **extra)


@router.get("/admin/alerts", response_class=HTMLResponse)
async def alerts(
    request: Request, db: Db, show: Annotated[str, Query(max_length=8)] = "open", done: Done = ""
) -> Response:
    who = await admin(request, db)
    return await _alerts_page(request, db, who, show, done=done)


@router.post("/admin/alerts/{alert_id}/resolve", response_class=HTMLResponse)
async def resolve(request: Request, alert_id: Id, db: Db) -> Response:
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        body = manage.validated(ResolveIn, {"note": text(form, "note", 500)})
        return await admin_alerts.resolve_alert_as(db, who, alert_id, body.note)

    async def page(**extra: Any) -> Response:
        return await _alerts_page(request, db, who, **extra)

    return await act(request, db, change, "/admin/alerts?done=resolved", page, form, f"alert-{alert_id}")


# --- citizens: lookup and bans (rule G15) --------------------------------------------------------


async def _bans_page(
    request: Request, db: AsyncSession, who: Acting, status: int = 200, **extra: Any
) -> Response:
    extra.setdefault("found", None)
    suspects = await manage.hoarding_suspects(db, secret_of(request), who)
    return page_of(
        request, "manage/bans.html", who, status=status, may_ban=manage.may_ban(who), **suspects, **extra
    )


@router.get("/admin/bans", response_class=HTMLResponse)
async def bans(request: Request, db: Db, done: Done = "") -> Response:
    who = await admin(request, db)
    return await _bans_page(request, db, who, done=done)


@router.post("/admin/bans", response_class=HTMLResponse)
async def lookup(request: Request, db: Db) -> Response:
    """An admin's explicit citizen lookup: unmasked, audited (docs/api.md "Administration"). The ID number
    travels in the POST body only, never in a URL."""
    form = await checked_form(request)
    who = await admin(request, db)
    try:
        body = manage.validated(
            LookupIn, {"id_type": text(form, "id_type", 32), "id_number": text(form, "id_number", 32)}
        )
        found = await penalties.lookup(db, secret_of(request), who, body.id_type, body.id_number)
    except DomainError as exc:
        if not (recoverable(exc) or exc.code == "not_found"):
            raise
        await db.rollback()
        view = manage.problem_view(exc)
        if exc.code == "not_found":
            view = {**view, "title": "没有找到这个证件的市民记录。", "next_step": "请核对证件类型和号码。"}
        return await _bans_page(
            request, db, who, status=exc.status, error=view, sticky=manage.sticky(form, "lookup")
        )
    liftable = await manage.ban_units(db, who, found.bans)
    return await _bans_page(request, db, who, found=found, liftable=liftable)


def _bans_form_page(request: Request, db: AsyncSession, who: Acting) -> Page:
    async def page(**extra: Any) -> Response:
        return await _bans_page(request, db, who, **extra)

    return page


CitizenRef = Annotated[str, Path(min_length=2, max_length=40)]


@router.post("/admin/bans/{citizen_ref}/add", response_class=HTMLResponse)
async def add_ban(request: Request, citizen_ref: CitizenRef, db: Db) -> Response:
    """Rule G15: a ban for deliberate slot hoarding over the halls under the admin's unit."""
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        body = manage.validated(
            BanIn, {"until": text(form, "until", 10), "reason": text(form, "reason", 500)}
        )
        secret = secret_of(request)
        return await penalties.add_ban(
            db, secret, who, citizen_ref, date.fromisoformat(body.until), body.reason
        )

    page = _bans_form_page(request, db, who)
    return await act(request, db, change, "/admin/bans?done=ban_added", page, form, f"ban-{citizen_ref}")


@router.post("/admin/bans/{citizen_ref}/{ban_id}/lift", response_class=HTMLResponse)
async def lift_ban(request: Request, citizen_ref: CitizenRef, ban_id: Id, db: Db) -> Response:
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        body = manage.validated(LiftIn, {"reason": text(form, "reason", 500)})
        await penalties.lift_ban(db, secret_of(request), who, citizen_ref, ban_id, body.reason)

    page = _bans_form_page(request, db, who)
    return await act(request, db, change, "/admin/bans?done=ban_lifted", page, form, f"lift-{ban_id}")


# --- item synonyms (issue 20): platform level ----------------------------------------------------


async def _synonyms_page(
    request: Request, db: AsyncSession, who: Acting, status: int = 200, **extra: Any
) -> Response:
    rows = [catalogue.synonym_view(row) for row in await catalogue.list_synonyms(db)]
    platform = await catalogue.get_unit(db, "platform")
    return page_of(
        request,
        "manage/synonyms.html",
        who,
        status=status,
        rows=rows,
        may_edit=may(who, "configure", platform.path),
        **extra,
    )


@router.get("/admin/synonyms", response_class=HTMLResponse)
async def synonyms(request: Request, db: Db, done: Done = "") -> Response:
    """The words people type for items, which the hall finder's item search understands."""
    who = await admin(request, db)
    return await _synonyms_page(request, db, who, done=done)


@router.post("/admin/synonyms", response_class=HTMLResponse)
async def add_synonym(request: Request, db: Db) -> Response:
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        body = manage.validated(
            SynonymIn, {"term": text(form, "term", 50), "means": text(form, "means", 100)}
        )
        return await catalogue.add_synonym(db, who, body.term, body.means)

    async def page(**extra: Any) -> Response:
        return await _synonyms_page(request, db, who, **extra)

    return await act(request, db, change, "/admin/synonyms?done=synonym_added", page, form, "synonym")


@router.post("/admin/synonyms/{synonym_id}/remove", response_class=HTMLResponse)
async def remove_synonym(request: Request, synonym_id: Id, db: Db) -> Response:
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        await catalogue.remove_synonym(db, who, synonym_id)

    async def page(**extra: Any) -> Response:
        return await _synonyms_page(request, db, who, **extra)

    done = "/admin/synonyms?done=synonym_removed"
    return await act(request, db, change, done, page, form, f"remove-{synonym_id}")


# --- admin accounts (rules G3, G7) -----------------------------------------------------------------


async def _admins_page(
    request: Request, db: AsyncSession, who: Acting, status: int = 200, **extra: Any
) -> Response:
    context = await manage.admins_context(db, who)
    return page_of(request, "manage/admins.html", who, status=status, **context, **extra)


@router.get("/admin/admins", response_class=HTMLResponse)
async def admin_accounts(request: Request, db: Db, done: Done = "") -> Response:
    who = await admin(request, db)
    return await _admins_page(request, db, who, done=done)


def _admins_form_page(request: Request, db: AsyncSession, who: Acting) -> Page:
    async def page(**extra: Any) -> Response:
        return await _admins_page(request, db, who, **extra)

    return page


@router.post("/admin/admins", response_class=HTMLResponse)
async def register(request: Request, db: Db) -> Response:
    """Rule G7: registered with name, title and mobile before the account opens."""
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        body = manage.validated(
            AdminIn,
            {
                "username": text(form, "username", 64),
                "password": manage.password(form),
                "name": text(form, "name", 100),
                "title": text(form, "title", 100),
                "phone": text(form, "phone", 20),
                "unit_id": text(form, "unit_id", 64),
                "level": number(form, "level"),
            },
        )
        return await accounts.register_admin(db, who, body.model_dump())

    page = _admins_form_page(request, db, who)
    return await act(request, db, change, "/admin/admins?done=registered", page, form, "register")


@router.post("/admin/admins/{admin_id}/retire", response_class=HTMLResponse)
async def retire(request: Request, admin_id: Id, db: Db) -> Response:
    """Rule G7: a replaced admin's account is closed for good; the reason is audited."""
    form = await checked_form(request)
    who = await admin(request, db)

    async def change() -> Any:
        body = manage.validated(RetireIn, {"reason": optional(form, "reason", 500)})
        return await accounts.retire_admin(db, who, admin_id, body.reason)

    page = _admins_form_page(request, db, who)
    return await act(request, db, change, "/admin/admins?done=retired", page, form, f"retire-{admin_id}")


# --- audit log -----------------------------------------------------------------------------------


def _optional_day(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{name}: not a date", fields=[manage.FIELD_TEXT["date"]]) from None


@router.get("/admin/audit", response_class=HTMLResponse)
async def audit(
    request: Request,
    db: Db,
    unit_id: Annotated[str, Query(max_length=64)] = "",
    from_: Annotated[str, Query(alias="from", max_length=10)] = "",
    to: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """Audit entries of a unit of the subtree (default: the admin's own), newest first."""
    who = await admin(request, db)
    units = await manage.scope_units(db, who)
    filters = {"unit_id": unit_id, "from": from_, "to": to}
    try:
        start, end = _optional_day(from_, "from"), _optional_day(to, "to")
    except ValidationFailed as exc:
        return page_of(
            request,
            "manage/audit.html",
            who,
            status=exc.status,
            error=manage.problem_view(exc),
            rows=[],
            units=units,
            filters=filters,
        )
    entries = await accounts.audit_log(db, who, unit_id or None, start, end)  # 403 outside the subtree
    names = {u.id: u for u in units}
    return page_of(
        request,
        "manage/audit.html",
        who,
        rows=manage.audit_rows(entries, names),
        units=units,
        filters=filters,
    )
