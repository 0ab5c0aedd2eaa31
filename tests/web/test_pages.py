"""The citizen portal over HTTP (issue 8), on SQLite and PostgreSQL: the T10 flow through HTML forms,
the cookie session, CSRF, my bookings, errors in plain Chinese, receipts. The pages call the same
booking service as the API, so these tests check the page layer: forms, redirects, messages."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import text

from tests.conftest import START, Api, raw
from tests.ids import resident_id
from tests.web.conftest import csrf, form_login, post
from yuyue.errors import TITLES
from yuyue.web.service import MESSAGES, message_for

DAY = "2026-12-03"  # Thursday, open for city-policy booking from START (Tue 10:00)
NUMBER = re.compile(r"/bookings/(I\d+)\?done=")


async def setup(api: Api, **service: object) -> tuple[dict, dict, dict]:
    hall = await api.hall()
    svc = await api.service(**service)
    slot = next(s for s in await api.slots(svc["id"], DAY) if s["status"] == "open")
    return hall, svc, slot


async def book_via_form(api: Api, slot_id: str, **extra: str) -> str:
    confirm = await api.client.get(f"/confirm?slot={slot_id}")
    assert confirm.status_code == 200, confirm.text
    key = re.search(r'name="form_key" value="([^"]+)"', confirm.text)
    assert key
    response = await post(api, "/book", {"slot_id": slot_id, "form_key": key.group(1), **extra})
    assert response.status_code == 303, response.text
    match = NUMBER.search(response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


def assert_page(response, status: int) -> None:
    assert response.status_code == status, response.text[:400]
    assert response.headers["content-type"].startswith("text/html")
    assert 'lang="zh-CN"' in response.text and "Traceback" not in response.text
    assert '"code"' not in response.text  # never raw problem JSON on a page


async def test_home_shows_notice_and_halls_need_it_t10(api: Api) -> None:
    home = await api.client.get("/")
    assert_page(home, 200)
    assert "预约须知" in home.text and 'name="agree"' in home.text and "required" in home.text
    # rule T10: the notice comes first; without accepting it the hall list sends you back to it
    skipped = await api.client.get("/halls")
    assert skipped.status_code == 303 and skipped.headers["location"].startswith("/?notice=1")
    again = await api.client.get(skipped.headers["location"])
    assert "请先阅读并勾选同意预约须知" in again.text
    accepted = await api.client.get("/halls?agree=1")
    assert_page(accepted, 200)
    assert (await api.client.get("/halls")).status_code == 200  # remembered for the session


async def test_hall_finder_by_district_search_and_item(api: Api) -> None:
    await api.client.post(
        "/api/v1/admin/units",
        json={"id": "th", "name": "天河区", "kind": "district", "parent_id": "platform"},
        headers=api.admin(),
    )
    await api.hall("th-hall", parent="th", kind="district_hall", name="天河区政务服务中心")
    await api.hall("city", name="市政务服务中心", address="广州市越秀区某路2号")
    await api.service("th-hall", name="居民身份证申领")
    await api.service("th-hall", name="社会保障卡申领", department="人社")
    await api.service("city", name="企业设立登记", department="市场监管")
    await api.client.get("/halls?agree=1")

    def names(page: str) -> list[str]:
        return re.findall(r'<span class="ds-choice-title">([^<]+)</span>', page)

    assert names((await api.client.get("/halls?under=th")).text) == ["天河区政务服务中心"]
    assert names((await api.client.get("/halls?under=platform")).text) == ["市政务服务中心"]
    assert names((await api.client.get("/halls?q=越秀")).text) == ["市政务服务中心"]
    for typed in ("社保", "社保卡", "sbk", "SBK"):  # short names and pinyin initials (issue 20)
        found = (await api.client.get(f"/halls?item={typed}")).text
        assert names(found) == ["天河区政务服务中心"], typed
        assert "可办：社会保障卡申领" in found, typed
    assert names((await api.client.get("/halls?item=社卡保")).text) == []  # not in order: no match
    by_item = (await api.client.get("/halls?item=身份证")).text
    assert names(by_item) == ["天河区政务服务中心"] and "可办：居民身份证申领" in by_item
    hall = await api.client.get("/halls/th-hall")
    assert_page(hall, 200)
    assert "公安户政" in hall.text and "居民身份证申领" in hall.text and "020-12345" in hall.text


async def test_calendar_shows_slots_remaining_and_when_days_open_g10(api: Api) -> None:
    _, svc, slot = await setup(api)
    page = await api.client.get(f"/services/{svc['id']}")
    assert_page(page, 200)
    assert f'href="/confirm?slot={slot["id"]}"' in page.text
    assert f"余 {slot['remaining']}" in page.text
    # rule G10: at Tue 10:00 the 10th working day after Monday (12-14) opens today at 18:00
    assert "12月14日 周一" in page.text and "2026年12月1日（周二） 18:00 开放" in page.text
    assert "休息日，不办理" in page.text  # the weekend


async def test_whole_flow_through_forms_books_once_t10(api: Api) -> None:
    hall, svc, slot = await setup(api)
    # the confirm step needs a login and comes back to it afterwards
    anonymous = await api.client.get(f"/confirm?slot={slot['id']}")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=%2Fconfirm")
    login = await form_login(
        api, resident_id(1), name="张三丰", phone="13812345678", next_path=f"/confirm?slot={slot['id']}"
    )
    assert login.status_code == 303 and login.headers["location"] == f"/confirm?slot={slot['id']}"
    cookie = login.headers["set-cookie"]
    assert (
        "yuyue_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    )
    confirm = await api.client.get(login.headers["location"])
    assert_page(confirm, 200)
    # masked personal data only (docs/api.md), never the full numbers
    assert "张**" in confirm.text and "4401**********" + resident_id(1)[-4:] in confirm.text
    assert (
        "138****5678" in confirm.text
        and resident_id(1) not in confirm.text
        and "13812345678" not in confirm.text
    )
    key = re.search(r'name="form_key" value="([^"]+)"', confirm.text).group(1)
    body = {"slot_id": slot["id"], "form_key": key, "business_types": "换领"}
    first = await post(api, "/book", body)
    again = await post(api, "/book", body)  # a double tap answers the first booking again
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    number = NUMBER.search(first.headers["location"]).group(1)
    assert number == f"I{hall['code']}2026120300001"
    rows = await raw(api, "SELECT channel, status, business_types FROM bookings")
    assert len(rows) == 1 and rows[0][0] == "web" and rows[0][1] == "booked"
    success = await api.client.get(first.headers["location"])
    assert_page(success, 200)
    for expected in (
        "预约成功",
        number,
        "广州市天河区测试路1号",
        "020-12345",
        "2026年12月3日（周四） 08:00–10:00",  # check-in window (city: 60 min before → slot end)
        "2026年12月3日（周四） 08:00",  # cancel deadline (rule G13: slot end − 2 h)
        f"/bookings/{number}/receipt",
        f"/bookings/{number}/receipt?format=pdf",
    ):
        assert expected in success.text, expected


async def test_forms_without_csrf_change_nothing(api: Api) -> None:
    _, _, slot = await setup(api)
    await csrf(api)
    refused = await api.client.post(
        "/login", data={"name": "张三", "id_number": resident_id(1), "phone": "13800138000"}
    )
    assert_page(refused, 403)
    assert "页面已过期或来源不明" in refused.text and "yuyue_session" not in refused.headers.get(
        "set-cookie", ""
    )
    await form_login(api, resident_id(1))
    forged = await api.client.post("/book", data={"slot_id": slot["id"], "csrf": "0" * 64})
    assert_page(forged, 403)
    assert await raw(api, "SELECT id FROM bookings") == []


async def test_my_bookings_cancel_with_confirmation_t8_g13(api: Api) -> None:
    _, _, slot = await setup(api)
    await form_login(api, resident_id(1))
    number = await book_via_form(api, slot["id"])
    mine = await api.client.get("/bookings")
    assert_page(mine, 200)
    assert number in mine.text and "已预约" in mine.text and "取消截止" in mine.text
    ask = await api.client.get(f"/bookings/{number}/cancel")
    assert_page(ask, 200)
    assert "确定取消这个预约吗" in ask.text and "2026年12月3日（周四） 08:00" in ask.text
    assert (await raw(api, "SELECT status FROM bookings"))[0][0] == "booked"  # asking changes nothing
    done = await post(api, f"/bookings/{number}/cancel")
    assert done.status_code == 303 and done.headers["location"] == f"/bookings/{number}?done=cancelled"
    assert (await raw(api, "SELECT status FROM bookings"))[0][0] == "cancelled"
    page = await api.client.get(done.headers["location"])
    assert "已取消预约" in page.text and "已取消" in page.text
    history = (await api.client.get("/bookings")).text
    assert "没有待办理的预约" in history and number in history.split("历史预约")[1]


async def test_too_late_to_cancel_says_what_happens_now_g13(api: Api) -> None:
    _, _, slot = await setup(api)
    await form_login(api, resident_id(1))
    number = await book_via_form(api, slot["id"])
    await api.set_clock("2026-12-03T08:30:00+08:00")  # past slot end − 2 h
    detail = await api.client.get(f"/bookings/{number}")
    assert "已过取消截止时间" in detail.text and f"/bookings/{number}/cancel" not in detail.text
    late = await post(api, f"/bookings/{number}/cancel")
    assert_page(late, 422)
    assert "已经过了取消截止时间" in late.text and "请按原预约时间到大厅办理" in late.text
    assert "取消截止时间是 2026年12月3日（周四） 08:00" in late.text
    assert (await raw(api, "SELECT status FROM bookings"))[0][0] == "booked"


async def test_reschedule_through_the_calendar_keeps_the_number(api: Api) -> None:
    _, svc, slot = await setup(api)
    await form_login(api, resident_id(1))
    number = await book_via_form(api, slot["id"])
    calendar = await api.client.get(f"/services/{svc['id']}?reschedule={number}")
    assert_page(calendar, 200)
    target = re.findall(rf'href="/bookings/{number}/reschedule\?slot=([0-9-]+)"', calendar.text)
    # the current slot is shown, marked, and not offered again (issue 20)
    assert target and slot["id"] not in target
    assert '<span class="slot current">09:00–10:00<span>当前预约</span></span>' in calendar.text
    new_slot = target[0]
    ask = await api.client.get(f"/bookings/{number}/reschedule?slot={new_slot}")
    assert_page(ask, 200)
    moved = await post(api, f"/bookings/{number}/reschedule", {"slot_id": new_slot})
    assert moved.headers["location"] == f"/bookings/{number}?done=rescheduled"
    assert (await raw(api, "SELECT slot_id, number FROM bookings"))[0] == (new_slot, number)


async def test_special_reason_rebook_once_t9_g14(api: Api) -> None:
    _, svc, slot = await setup(api)
    await form_login(api, resident_id(1))
    number = await book_via_form(api, slot["id"])
    await api.set_clock("2026-12-03T09:30:00+08:00")  # the 09:00 slot has begun: missed
    mine = await api.client.get("/bookings")
    assert f"/services/{svc['id']}?rebook={number}" in mine.text
    calendar = await api.client.get(f"/services/{svc['id']}?rebook={number}")
    today = re.findall(rf'href="/bookings/{number}/rebook\?slot=({svc["id"]}-20261203[0-9]+)"', calendar.text)
    assert today[0] == f"{svc['id']}-202612030900"  # on site today: every slot not yet ended
    refused = await post(api, f"/bookings/{number}/rebook", {"slot_id": today[0], "reason": ""})
    assert_page(refused, 422)
    done = await post(api, f"/bookings/{number}/rebook", {"slot_id": today[0], "reason": "路上堵车"})
    assert done.status_code == 303, done.text
    new_number = NUMBER.search(done.headers["location"]).group(1)
    statuses = dict(await raw(api, "SELECT number, status FROM bookings"))
    assert statuses == {number: "excused", new_number: "booked"}
    page = (await api.client.get("/bookings")).text
    assert "已免责" in page and f"?rebook={new_number}" not in page  # a rebook cannot be rebooked


async def test_receipt_for_the_cookie_session_html_and_pdf(api: Api) -> None:
    _, _, slot = await setup(api)
    await form_login(api, resident_id(1))
    number = await book_via_form(api, slot["id"])
    html = await api.client.get(f"/bookings/{number}/receipt")
    assert html.status_code == 200 and "预约回执" in html.text and "<svg" in html.text and number in html.text
    pdf = await api.client.get(f"/bookings/{number}/receipt?format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    # another citizen sees nothing, not even that the number exists
    await form_login(api, resident_id(2))
    other = await api.client.get(f"/bookings/{number}/receipt")
    assert_page(other, 404)
    assert "没有找到" in other.text
    # logged out: the session itself ends, so even a kept copy of the cookie opens nothing
    kept = api.client.cookies.get("yuyue_session")
    assert kept
    await post(api, "/logout")
    out = await api.client.get(f"/bookings/{number}/receipt")
    assert out.status_code == 303 and out.headers["location"].startswith("/login")
    api.client.cookies.set("yuyue_session", kept)
    replayed = await api.client.get(f"/bookings/{number}/receipt")
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/login")


async def test_full_slot_offers_another_day(api: Api) -> None:
    _, svc, slot = await setup(api, daily_capacity=7)  # 1 seat per slot
    assert (await api.book(await api.login(resident_id(9)), slot["id"])).status_code == 201
    await form_login(api, resident_id(1))
    calendar = await api.client.get(f"/services/{svc['id']}")
    assert f"/confirm?slot={slot['id']}" not in calendar.text
    assert re.search(r'<span class="slot full">09:00–10:00<span>已约满</span>', calendar.text)
    confirm = await api.client.get(f"/confirm?slot={slot['id']}")
    key = re.search(r'name="form_key" value="([^"]+)"', confirm.text).group(1)
    full = await post(api, "/book", {"slot_id": slot["id"], "form_key": key})
    assert_page(full, 409)
    assert "这个时段已经约满了" in full.text and "换一个还有余号的时段或日期" in full.text
    # the waiting list of that day is a link; "重新选择" goes back one step, to the calendar
    day = slot["id"].split("-")[1][:8]
    assert f'href="/waitlist/join?service={svc["id"]}&amp;date={day[:4]}-{day[4:6]}-{day[6:]}"' in full.text
    assert f'<a class="button" href="/services/{svc["id"]}">重新选择</a>' in full.text
    # elder mode turned on from this answer to a form post comes back to the calendar, not to a 405
    assert f'name="next" value="/services/{svc["id"]}"' in full.text
    assert len(await raw(api, "SELECT id FROM bookings")) == 1


async def test_the_form_books_off_site_only_g10(api: Api) -> None:
    """docs/rules.md "On-site booking": the portal books channel `web`; a forged `channel=onsite` field is
    not read, so today's slots (on-site only) stay closed to it and nothing is booked; the form's
    quantity is bounded as the API's body is."""
    _, svc, _ = await setup(api)
    today = (await api.slots(svc["id"], "2026-12-01"))[1]  # 10:00–11:00, under way at START
    await form_login(api, resident_id(3))
    confirm = await api.client.get(f"/confirm?slot={today['id']}")
    key = re.search(r'name="form_key" value="([^"]+)"', confirm.text)
    forged = {"slot_id": today["id"], "channel": "onsite", "form_key": key.group(1) if key else ""}
    refused = await post(api, "/book", forged)
    assert_page(refused, 422)
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 0
    slot = next(s for s in await api.slots(svc["id"], DAY) if s["status"] == "open")
    too_many = await post(api, "/book", {"slot_id": slot["id"], "quantity": "100"})
    assert_page(too_many, 422)
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 0


async def test_ban_in_force_is_shown_with_its_end_and_reason_g15(api: Api) -> None:
    _, _, slot = await setup(api)
    await form_login(api, resident_id(1))
    async with api.app.state.engine.begin() as conn:
        citizen_id = (await conn.execute(text("SELECT id FROM citizens"))).scalar_one()
        await conn.execute(
            text(
                "INSERT INTO bans (citizen_id, unit_id, until, reason, source, created_at) "
                "VALUES (:c, 'platform', :u, '同一天爽约两个不同事项', 'penalty', :t)"
            ),
            {"c": citizen_id, "u": date(2026, 12, 11), "t": START.replace(tzinfo=None)},
        )
    mine = await api.client.get("/bookings")
    assert (
        "暂停预约至 2026年12月11日（周五）（含当天）" in mine.text and "同一天爽约两个不同事项" in mine.text
    )
    confirm = await api.client.get(f"/confirm?slot={slot['id']}")
    key = re.search(r'name="form_key" value="([^"]+)"', confirm.text).group(1)
    banned = await post(api, "/book", {"slot_id": slot["id"], "form_key": key})
    assert_page(banned, 403)
    assert "暂停预约至 2026年12月11日（周五）（含当天）" in banned.text


async def test_login_errors_are_plain_chinese_and_next_is_same_site(api: Api) -> None:
    good = resident_id(1)
    bad = await form_login(api, good[:-1] + ("1" if good[-1] != "1" else "2"))  # wrong check digit
    assert_page(bad, 422)
    assert "证件号码不正确" in bad.text and 'aria-invalid="true"' in bad.text
    phone = await form_login(api, resident_id(1), phone="12345")
    assert_page(phone, 422)
    assert "手机号码应为11位数字（您填了5位）" in phone.text
    assert 'aria-describedby="phone-hint phone-error"' in phone.text
    assert f'value="{resident_id(1)}"' in phone.text  # the form is kept as typed
    empty = await form_login(api, "", name="", phone="")
    assert_page(empty, 422)
    for message in ("请填写姓名", "请填写居民身份证号码", "请填写手机号码"):
        assert message in empty.text, message
    assert empty.text.count('aria-invalid="true"') == 3
    evil = await form_login(api, resident_id(1), next_path="//evil.example/")
    assert evil.status_code == 303 and evil.headers["location"] == "/bookings"
    page = await api.client.get("/login")
    assert "用广东政务服务网登录" in page.text and "disabled" in page.text and "尚未接入" in page.text


async def test_elder_mode_toggle_is_remembered(api: Api) -> None:
    assert 'class="elder"' not in (await api.client.get("/")).text
    on = await post(api, "/elder", {"on": "1", "next": "/halls"})
    assert on.status_code == 303 and on.headers["location"] == "/halls"
    assert "yuyue_elder=1" in on.headers["set-cookie"]
    page = (await api.client.get("/")).text
    assert '<html lang="zh-CN" class="elder">' in page and 'aria-pressed="true"' in page
    off = await post(api, "/elder", {"on": "0", "next": "https://evil.example/"})
    assert off.headers["location"] == "/"
    assert 'class="elder"' not in (await api.client.get("/")).text


async def test_every_error_code_has_a_message_and_a_next_step(api: Api) -> None:
    api_md = {
        "slot_full", "already_booked", "daily_limit", "booking_cap", "banned", "not_open_yet",
        "booking_closed", "cancel_too_late", "not_cancellable", "not_rebookable", "quantity_exceeds_max",
        "invalid_id_number", "invalid_uscc", "validation_error", "idempotency_key_reused",
        "unauthenticated", "forbidden", "not_found", "rate_limited", "no_booking", "checkin_too_early",
        "checkin_too_late", "not_eligible", "walk_in_not_allowed", "invalid_ticket_state",
    }  # fmt: skip
    for code in sorted(api_md | set(TITLES)):
        message = message_for(code)
        assert code in MESSAGES, code
        assert message.title and message.next_step and message.title != message.next_step, code
        assert not re.search(r"[A-Za-z]{4,}", message.title + message.next_step), code  # Chinese, not codes
    unknown = await api.client.get("/bookings/I000000000000000")
    assert unknown.status_code == 303  # not logged in: to the login page first
    await form_login(api, resident_id(1))
    missing = await api.client.get("/bookings/I000000000000000")
    assert_page(missing, 404)
    bad_param = await api.client.get("/services/notanumber")
    assert_page(bad_param, 422)
    assert "填写的内容有误" in bad_param.text


async def test_static_assets_are_served_and_nothing_else(api: Api) -> None:
    css = await api.client.get("/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "font-size: 18px" in css.text and "html.elder { font-size: 24px; }" in css.text
    js = await api.client.get("/static/portal.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    for path in ("/static/..%2Fapi.py", "/static/api.py", "/static/.hidden.css", "/static/nope.css"):
        assert (await api.client.get(path)).status_code == 404, path


async def test_join_and_leave_the_waiting_list_when_a_day_is_full_g11(api: Api) -> None:
    _, svc, _ = await setup(api, daily_capacity=7)  # 1 seat per slot
    others = [await api.login(resident_id(50 + i)) for i in range(7)]
    for headers, slot in zip(others, await api.slots(svc["id"], DAY), strict=True):
        assert (await api.book(headers, slot["id"])).status_code == 201
    await form_login(api, resident_id(1))
    calendar = await api.client.get(f"/services/{svc['id']}")
    assert f"/waitlist/join?service={svc['id']}&amp;date={DAY}" in calendar.text
    ask = await api.client.get(f"/waitlist/join?service={svc['id']}&date={DAY}")
    assert_page(ask, 200)
    assert "2026年12月3日（周四）" in ask.text
    joined = await post(api, "/waitlist/join", {"service_id": str(svc["id"]), "date": DAY})
    assert joined.status_code == 303, joined.text
    mine = await api.client.get(joined.headers["location"])
    assert "已加入预约排队" in mine.text and "排在第 1 位" in mine.text
    entry_id = (await raw(api, "SELECT id FROM waitlist_entries"))[0][0]
    # a seat freed by a cancel goes to the queue at once (rule G11), shown as a booking of mine
    booked = (await api.client.get("/api/v1/appointments", headers=others[0])).json()[0]["number"]
    assert (
        await api.client.post(f"/api/v1/appointments/{booked}/cancel", headers=others[0])
    ).status_code == 200
    mine = (await api.client.get("/bookings")).text
    assert "已分配号源" in mine and "已为您预约" in mine
    again = await post(api, "/waitlist/join", {"service_id": str(svc["id"]), "date": "2026-12-04"})
    assert_page(again, 409)
    assert "还有余号" in again.text
    # leaving: a second entry on a full day, then out
    async with api.app.state.engine.begin() as conn:
        await conn.execute(text("UPDATE waitlist_entries SET status = 'waiting', booking_number = NULL"))
    left = await post(api, f"/waitlist/{entry_id}/leave")
    assert (
        left.status_code == 303 and "已退出预约排队" in (await api.client.get(left.headers["location"])).text
    )
    assert (await raw(api, "SELECT status FROM waitlist_entries"))[0][0] == "left"


async def test_unknown_page_is_a_plain_chinese_404_but_the_api_stays_json(api: Api) -> None:
    """Issue 8 item 4: a person who follows a dead link gets a page, never raw JSON."""
    html = {"Accept": "text/html,application/xhtml+xml"}
    page = await api.client.get("/no/such/page", headers=html)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert message_for("not_found").title in page.text and message_for("not_found").next_step in page.text
    assert '"code"' not in page.text and "problem" not in page.text
    wrong_method = await api.client.delete("/", headers=html)
    assert wrong_method.status_code == 405 and wrong_method.headers["content-type"].startswith("text/html")
    for path in ("/api/v1/no-such-thing", "/no/such/page"):
        machine = await api.client.get(
            path, headers={"Accept": "application/json"} if "api" not in path else html
        )
        assert machine.status_code == 404
        assert machine.headers["content-type"].startswith("application/problem+json"), path
        assert machine.json()["code"] == "not_found"
